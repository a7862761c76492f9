"""What a counsellor and a coordinator meet first in the console (issue 25), in real Chromium
against Lykta on 127.0.0.1: an accepted chat opens, the message box and the chat's actions
stay in view, canned responses carry the counsellor's name and stop at a gap, signing in
again starts away, the sign-in page is quiet, the focus ring is no error, times say their
zone, dates are written as the console's language writes them, and texts count properly.

One server and one browser for the module; the tests run in order (each sign-in of Anna is
a new session, which starts her away)."""

from __future__ import annotations

import colorsys
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Locator, Page, ViewportSize, expect

from app.demo import LINES_FILE
from app.kit.db import unit_of_work
from app.lines.service import read_lines_file
from app.models.enums import StaffRole
from app.settings import Settings
from app.staff.service import staff_service
from tests.conftest import FAST
from tests.support.browser import axe_violations, chromium, describe, screenshot
from tests.support.clients import SignedIn, VisitorClient, api, open_visitor, sign_in_session
from tests.support.console import sign_in_console
from tests.support.roster import local_now
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer, bound_socket, run_server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

# A laptop: after a few messages the message box and End used to be below the fold.
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
# The demo's own canned responses (config/lines.toml), and one with a gap to fill in.
DEMO_CANNED = [c.model_dump() for c in read_lines_file(LINES_FILE)[0].canned_responses]
WHERE = {"language": "en", "title": "Where", "text": "Are you in {city} right now?"}
IDS: dict[str, str] = {}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    path = tmp_path_factory.mktemp("first-meeting") / "lykta.db"
    shutil.copy(sqlite_template, path)
    sock = bound_socket()
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{path}",
        public_url=public_url,
        sign_in_rate_per_minute=100,
        **FAST,
    )
    async with run_server(settings, sock=sock) as running:
        rt = running.runtime
        await add_line(rt, canned_responses=[*DEMO_CANNED, WHERE])
        IDS["anna"] = await add_counsellor(rt, "anna", capacity=3)
        await add_staff(rt, "cora", StaffRole.coordinator)
        # A demo account, as `lykta demo` makes them (development only, no TOTP).
        async with unit_of_work(rt.sessionmaker) as session:
            await staff_service.create(
                session,
                username="demo",
                alias="Demo",
                role=StaffRole.coordinator,
                password=PASSWORD,
                demo=True,
            )
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cora(server: RunningServer) -> SignedIn:
    return await sign_in_session(server, "cora", PASSWORD)


async def new_page(browser: Browser, **options: Any) -> AsyncIterator[Page]:
    """A page in a context of its own; script errors on it fail the test."""
    settings: dict[str, Any] = {"viewport": LAPTOP, "locale": "en-GB"}
    settings.update(options)
    context: BrowserContext = await browser.new_context(**settings)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == [], f"script errors on the page: {errors}"


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    async for running in new_page(browser, timezone_id="Europe/Stockholm"):
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def page_in_utc(browser: Browser) -> AsyncIterator[Page]:
    # A browser whose clock is on UTC (a laptop set up abroad, a misconfigured one) and
    # whose own locale writes dates month first.
    async for running in new_page(browser, timezone_id="UTC", locale="en-US"):
        yield running


async def assert_accessible(page: Page, name: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{name}: {describe(violations)}"
    await screenshot(page, f"console-{name}")


def chat_tab(page: Page, visitor: VisitorClient) -> Locator:
    return page.locator(f'.chat-tab[data-chat="{visitor.chat_id}"]')


def chat_panel(page: Page, visitor: VisitorClient) -> Locator:
    return page.locator(f'.chat-panel[data-chat="{visitor.chat_id}"]')


async def offered(server: RunningServer, *pages: Page, language: str = "en") -> VisitorClient:
    visitor = await open_visitor(server)
    await visitor.start(language=language)
    for page in pages:
        await expect(page.locator(f'.offer-card[data-chat="{visitor.chat_id}"]')).to_be_visible()
    return visitor


async def accept(page: Page, visitor: VisitorClient) -> None:
    offer = page.locator(f'.offer-card[data-chat="{visitor.chat_id}"]')
    await offer.get_by_role("button", name="Accept").click()


async def go_available(page: Page) -> None:
    await page.locator(".status-choice label", has_text="Available").click()
    await expect(page.locator(".status-choice input[value=available]")).to_be_checked()


async def in_view(page: Page, target: Locator) -> None:
    """The element's box lies wholly inside the window as it is, without scrolling."""
    box = await target.bounding_box()
    assert box is not None, f"{target} is not shown"
    size = page.viewport_size
    assert size is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], (target, box)
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], (target, box)


def hue_of(css_colour: str) -> tuple[float, float]:
    """(hue in degrees, saturation) of an `rgb(r, g, b)` colour."""
    match = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, [\d.]+)?\)", css_colour)
    assert match, css_colour
    r, g, b = (int(v) / 255 for v in match.groups())
    h, _, s = colorsys.rgb_to_hls(r, g, b)
    return h * 360, s


# Counsellors ------------------------------------------------------------------------------------


async def test_an_accepted_chat_opens_and_the_tools_stay_in_view_however_long_the_chat(
    server: RunningServer, page: Page
) -> None:
    await sign_in_console(page, server, "anna", PASSWORD)
    # Signing in starts away, as the screen says; the counsellor chooses when to take chats.
    await expect(page.locator(".status-choice input[value=away]")).to_be_checked()
    await go_available(page)

    first = await offered(server, page)
    await page.keyboard.press("Alt+A")
    await expect(chat_tab(page, first)).to_have_attribute("aria-selected", "true")
    await first.expect("counsellor.joined", name="Anna")
    # A few messages (fewer than a visitor's flood limit), each a few lines long.
    for n in range(12):
        await first.say(f"Message {n}: " + "it is hard to say this, but I need to. " * 6)
    panel = chat_panel(page, first)
    said = panel.locator(".transcript .from-visitor")
    await expect(said).to_have_count(12)

    # The transcript scrolls, the page does not: at 1280×800 the message box, Send, Transfer
    # and End are on screen, and so is the newest message.
    for name in ("Send", "Transfer…", "End chat"):
        await in_view(page, panel.get_by_role("button", name=name))
    await in_view(page, panel.locator("textarea[name=text]"))
    await expect(said.last).to_be_in_viewport()
    assert await page.evaluate("document.scrollingElement.scrollTop") == 0
    await assert_accessible(page, "first-meeting-long-chat")

    # A second chat, accepted with the mouse: it opens, ready to write in.
    second = await offered(server, page)
    await accept(page, second)
    await expect(chat_tab(page, second)).to_have_attribute("aria-selected", "true")
    await expect(chat_panel(page, second)).to_be_visible()
    await expect(chat_panel(page, first)).to_be_hidden()
    box = chat_panel(page, second).locator("textarea[name=text]")
    await expect(box).to_be_focused()
    await second.expect("counsellor.joined", name="Anna")

    # Messages in the first chat do not take the screen away: they are counted on its tab.
    await first.say("are you still there?")
    await expect(chat_tab(page, first).locator(".badge:not(.new)")).to_have_text("1 unread")
    await expect(chat_tab(page, second)).to_have_attribute("aria-selected", "true")
    await expect(box).to_be_focused()
    await screenshot(page, "console-first-meeting-second-chat")

    # The greeting of the demo lines carries her name; it is sent as she sends it.
    canned = chat_panel(page, second).locator(".canned")
    await canned.locator("select").select_option(label="Greeting")
    await canned.locator("button").click()
    greeting = next(c["text"] for c in DEMO_CANNED if c["title"] == "Greeting")
    assert "{name}" in greeting
    await expect(box).to_have_value(greeting.replace("{name}", "Anna"))
    await box.press("Enter")
    sent = await second.expect("message", sender="counsellor")
    assert sent["text"].startswith("Hi, my name is Anna and")

    # A gap left in a canned response is selected, and Enter sends nothing until it is filled.
    await canned.locator("select").select_option(label="Where")
    await canned.locator("button").click()
    await expect(box).to_have_value("Are you in {city} right now?")
    await expect(chat_panel(page, second).locator(".gap-note")).to_contain_text("{city}")
    await screenshot(page, "console-first-meeting-canned-gap")
    await box.press("End")
    await box.press("Enter")
    await expect(chat_panel(page, second).locator(".composer .field-error")).to_contain_text(
        "Fill in the gap {city}"
    )
    await second.expect_none("message", within=0.5, text="Are you in {city} right now?")
    # The gap is selected again: typing replaces it.
    await box.type("Malmö")
    await expect(chat_panel(page, second).locator(".gap-note")).to_be_hidden()
    await box.press("Enter")
    where = await second.expect("message", sender="counsellor", text="Are you in Malmö right now?")
    assert "{" not in where["text"]
    await assert_accessible(page, "first-meeting-canned-sent")


async def test_a_chat_accepted_in_another_tab_is_marked_new_and_takes_no_screen(
    server: RunningServer, page: Page
) -> None:
    await sign_in_console(page, server, "anna", PASSWORD)
    await go_available(page)
    # Her chats from the test before are listed; one is looked at.
    first_tab = page.locator(".chat-tab").first
    await first_tab.click()
    await expect(first_tab).to_have_attribute("aria-selected", "true")
    other = await page.context.new_page()
    await other.goto(f"{server.url}/console#/chats")
    await expect(other.locator(".connection")).to_have_text("Connected")
    visitor = await offered(server, page, other)
    await accept(other, visitor)
    await expect(chat_tab(other, visitor)).to_have_attribute("aria-selected", "true")
    # In the tab that did not accept it: a tab marked "new", the chat on screen stays.
    await expect(chat_tab(page, visitor).locator(".badge.new")).to_have_text("new")
    await expect(first_tab).to_have_attribute("aria-selected", "true")
    await expect(chat_panel(page, visitor)).to_be_hidden()
    await screenshot(page, "console-first-meeting-new-tab")
    await chat_tab(page, visitor).click()
    await expect(chat_tab(page, visitor).locator(".badge.new")).to_be_hidden()
    await other.close()


async def test_signing_in_again_starts_away_and_says_the_shift_in_the_line_zone(
    server: RunningServer, page_in_utc: Page
) -> None:
    page = page_in_utc
    await sign_in_console(page, server, "anna", PASSWORD)
    await expect(page.locator(".status-choice input[value=away]")).to_be_checked()
    await expect(page.locator(".chat-empty")).to_contain_text("Choose a chat under My chats")
    # The browser's clock is on UTC, the line's roster in Stockholm: the shift says so.
    await expect(page.locator("#chats-shift")).to_have_text(
        re.compile(r"On duty on Support \d\d:\d\d–\d\d:\d\d CES?T")
    )
    await screenshot(page, "console-first-meeting-utc-chats")


# The sign-in page ---------------------------------------------------------------------------------


async def test_the_sign_in_page_logs_no_error_and_hints_at_the_demo_accounts(
    server: RunningServer, page: Page
) -> None:
    messages: list[str] = []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    await page.goto(f"{server.url}/console")
    form = page.locator("form.signin-form")
    await expect(form).to_be_visible()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    # Development with demo accounts: the code's hint says they need none (for everyone
    # alike; nothing about any one account).
    code = form.get_by_label("Code")
    await expect(code).to_have_accessible_description(
        re.compile(r"authenticator app shows.*The demo accounts need no code")
    )
    await assert_accessible(page, "first-meeting-sign-in")
    assert [m for m in messages if m.startswith("error")] == []
    await form.locator("input[name=username]").fill("demo")
    await form.locator("input[name=password]").fill(PASSWORD)
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#view-roster-title")).to_be_visible()
    assert [m for m in messages if m.startswith("error")] == []


async def test_the_focus_ring_is_not_the_colour_of_an_error(
    server: RunningServer, page: Page
) -> None:
    await page.goto(f"{server.url}/console")
    form = page.locator("form.signin-form")
    # Sent empty: the fields say what is missing, in the error colour.
    await form.locator("button[type=submit]").click()
    error = form.locator(".field-error").first
    await expect(error).to_have_text("Must be at least 1 character.")
    error_colour = await error.evaluate("e => getComputedStyle(e).color")
    await form.locator("input[name=username]").focus()
    await page.keyboard.press("Tab")
    focused = form.locator("input[name=password]")
    await expect(focused).to_be_focused()
    ring = await focused.evaluate("e => getComputedStyle(e).outlineColor")
    style = await focused.evaluate("e => getComputedStyle(e).outlineStyle")
    assert style == "solid"
    ring_hue, ring_saturation = hue_of(ring)
    error_hue, _ = hue_of(error_colour)
    # A clear blue, far from the red of an error (and from orange).
    assert 200 <= ring_hue <= 250 and ring_saturation > 0.5, ring
    assert min(abs(ring_hue - error_hue), 360 - abs(ring_hue - error_hue)) > 90
    await screenshot(page, "console-first-meeting-focus")


# Coordinators -----------------------------------------------------------------------------------


async def a_shift_for_anna(server: RunningServer, cora: SignedIn) -> str:
    """An extra shift 18:00–21:00 in two weeks' time with Anna on it; its date."""
    day = (local_now().date() + timedelta(days=14)).isoformat()
    created = await api(
        server,
        cora,
        "POST",
        "/api/roster/lines/support/extra-shifts",
        json={"name": "Evening", "date": day, "start": "18:00", "end": "21:00"},
    )
    assert created.status_code == 201, created.text
    return day


async def test_a_coordinators_screens_fit_count_and_write_dates_her_way(
    server: RunningServer, page: Page, cora: SignedIn
) -> None:
    day = await a_shift_for_anna(server, cora)
    await sign_in_console(page, server, "cora", PASSWORD)
    # At 1280 px the top bar is one row: the navigation and the account share it.
    bar = page.locator("#topbar")
    for lang in ("en", "sv"):
        await page.locator("#lang").select_option(lang)
        await expect(page.locator("html")).to_have_attribute("lang", lang)
        nav = await page.locator(".mainnav").bounding_box()
        who = await page.locator(".who").bounding_box()
        assert nav is not None and who is not None
        assert abs(nav["y"] - who["y"]) < 10, (lang, nav, who)
        assert (await bar.bounding_box() or {"height": 999})["height"] < 70, lang
    await page.locator("#lang").select_option("en")
    await expect(page.locator("html")).to_have_attribute("lang", "en")

    # Dates as the console's English writes them, not as the browser's locale would.
    week_of = page.locator("#roster-day")
    await expect(week_of).to_have_attribute("placeholder", "dd/mm/yyyy")
    year, month, date = day.split("-")
    await week_of.fill(f"{date}/{month}/{year}")
    evening = page.locator("#roster-week .occurrence", has_text="Evening")
    await expect(evening).to_be_visible()
    # One shift, one place: counted in the singular.
    totals = page.locator("#roster-totals")
    await expect(totals).to_contain_text("1 shift, 0 of 1 place filled.")
    await expect(totals).to_contain_text("1 shift with a gap (1 person missing)")
    await expect(page.locator("#extra-form input[name=date]")).to_have_value(
        f"{date}/{month}/{year}"
    )
    await expect(page.locator("#extra-form input[name=start]")).to_have_value("18:00")
    await evening.locator("select[name=staff_id]").select_option(label="Anna")
    await evening.locator(".assign-form button[type=submit]").click()
    await expect(evening).to_have_attribute("data-status", "covered")
    await expect(totals).to_contain_text("1 shift, 1 of 1 place filled.")
    await screenshot(page, "console-first-meeting-roster")

    # In Swedish, dates are year first; the screen is drawn again from this week.
    await page.locator("#lang").select_option("sv")
    await expect(week_of).to_have_attribute("placeholder", "åååå-mm-dd")
    await expect(week_of).to_have_value(re.compile(r"^\d{4}-\d\d-\d\d$"))
    await week_of.fill(day)
    await expect(totals).to_contain_text("1 pass, 1 av 1 plats fylld.")
    await expect(page.locator("#extra-form input[name=date]")).to_have_value(day)
    await page.locator("#lang").select_option("en")

    # The referral directory has its heading (the screen is labelled by it).
    await page.locator("#nav-directory").click()
    await expect(page.get_by_role("heading", level=1, name="Referral directory")).to_be_visible()
    await expect(page.get_by_role("region", name="Referral directory")).to_be_visible()
    await assert_accessible(page, "first-meeting-directory")


async def test_shift_times_say_the_line_zone_where_the_browser_is_elsewhere(
    server: RunningServer, browser: Browser, page_in_utc: Page
) -> None:
    # Anna's evening shift (the test before): 18:00–21:00 on the line's clock.
    await sign_in_console(page_in_utc, server, "anna", PASSWORD)
    await page_in_utc.locator("#nav-me").click()
    mine = page_in_utc.locator("section[aria-labelledby=me-shifts-title] li", has_text="Support")
    evening = mine.filter(has_text=re.compile("18:00–21:00"))
    await expect(evening).to_have_count(1)
    await expect(evening.locator(".shift-when")).to_have_text(re.compile(r"18:00–21:00 CES?T$"))
    await screenshot(page_in_utc, "console-first-meeting-my-shifts-utc")

    # A coordinator whose browser is on UTC is told the roster's times are Stockholm's.
    async for coordinator in new_page(browser, timezone_id="UTC", locale="en-US"):
        await sign_in_console(coordinator, server, "cora", PASSWORD)
        await expect(coordinator.locator("#roster-zone")).to_have_text(
            re.compile(r"Times are the line's local time: CES?T \(Europe/Stockholm\)\.")
        )
        # Her browser writes dates month first; the console's English, day first.
        today = datetime.now(UTC).date()
        await expect(coordinator.locator("#roster-day")).to_have_value(today.strftime("%d/%m/%Y"))
        await screenshot(coordinator, "console-first-meeting-roster-utc")

    # In Stockholm the same shift is just 18:00–21:00.
    async for stockholm in new_page(browser, timezone_id="Europe/Stockholm"):
        await sign_in_console(stockholm, server, "anna", PASSWORD)
        await stockholm.locator("#nav-me").click()
        here = stockholm.locator("section[aria-labelledby=me-shifts-title] .shift-when")
        await expect(here.filter(has_text="18:00–21:00")).to_have_count(1)
        await expect(here.filter(has_text=re.compile("CES?T"))).to_have_count(0)
