"""Risk and care in real Chromium (docs/risk.md): the visitor's "I am in danger right now" in
the widget at phone size, and in the console at 1280x800 an acute risk alerting the supervisor
on duty, else the one on call, else showing the counsellor the line's procedure; the pause
after an acute chat and "Ready"; desktop notifications while the tab is hidden.

Screenshots go to /tmp/shots/risk/ for people to look at."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect
from sqlalchemy import select

from app.kit.db import unit_of_work
from app.models import Wrapup
from app.settings import Settings
from tests.conftest import FAST
from tests.support.browser import axe_violations, chromium, describe
from tests.support.clients import VisitorClient, open_staff, open_visitor
from tests.support.console import sign_in_console
from tests.support.held import written
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer, bound_socket, run_server
from tests.support.waiting import eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

SHOTS = Path("/tmp/shots/risk")
CONSOLE: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
EMERGENCY = {"sv": "Är du i fara nu, ring 112.", "en": "If you are in danger now, call 112."}
PROCEDURE = "1. Call 112 with the visitor's consent.\n2. Call the duty manager."
CONTACT = "Duty manager: 070-123 45 67"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    path = tmp_path_factory.mktemp("risk") / "lykta.db"
    shutil.copy(sqlite_template, path)
    sock = bound_socket()
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}", public_url=public_url, **FAST)
    async with run_server(settings, sock=sock) as running:
        rt = running.runtime
        await add_line(rt, emergency_text=EMERGENCY)
        await add_line(rt, "night", emergency_text=EMERGENCY)
        carl = await add_counsellor(
            rt, "carl", alias="Carl", supervisor=True, lines=("night",), on_duty=False
        )
        await add_line(
            rt,
            "night",
            emergency_text=EMERGENCY,
            emergency_procedure=PROCEDURE,
            emergency_contact=CONTACT,
            on_call=[carl],
        )
        await add_counsellor(rt, "anna", alias="Anna", lines=("support", "night"), capacity=3)
        await add_counsellor(rt, "bo", alias="Bo", supervisor=True)
        await add_counsellor(rt, "vera", alias="Vera", capacity=1)
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


async def new_page(browser: Browser, viewport: ViewportSize) -> tuple[BrowserContext, Page]:
    # In UTC, away from the lines' Stockholm time: times in a line's zone carry its name.
    context = await browser.new_context(viewport=viewport, locale="en-GB", timezone_id="UTC")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    return context, page


async def shot(page: Page, name: str) -> None:
    # Playwright makes the folder.
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def accessible(page: Page, name: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{name}: {describe(violations)}"


async def test_in_the_widget_in_danger_shows_the_emergency_text_at_once_and_goes_first(
    server: RunningServer, browser: Browser
) -> None:
    # Vera answers one chat at a time and is busy: whoever comes next waits.
    vera = await open_staff(server, "vera", PASSWORD)
    first = await open_visitor(server)
    await first.start(language="en")
    busy = (await vera.accept_offer())["chat_id"]
    waiting: list[VisitorClient] = []
    for _ in range(3):
        visitor = await open_visitor(server)
        await visitor.start(language="en")
        waiting.append(visitor)

    context, page = await new_page(browser, PHONE)
    await page.goto(f"{server.url}/chat/support?lang=en")
    await page.get_by_role("button", name="Start chat").click()
    await page.wait_for_selector("#view-chat:not([hidden])")
    button = page.get_by_role("button", name="I am in danger right now")
    await button.wait_for()
    await accessible(page, "widget waiting")
    await shot(page, "widget-waiting-390")

    await button.click()
    # The line's text at once, and a word on what happens now.
    await expect(page.locator("#danger-text")).to_have_text(EMERGENCY["en"])
    await expect(page.locator("#danger-sent")).to_contain_text("answered first")
    await expect(button).to_be_hidden()
    await accessible(page, "widget in danger")
    await shot(page, "widget-in-danger-390")

    # The chat went ahead of the three that waited before it: Vera's next offer is this one.
    async def first_in_queue() -> bool:
        queue = await server.runtime.broker.queue("support")
        record = await server.runtime.broker.get_chat(queue[0][0]) if queue else None
        return record is not None and record.in_danger

    await eventually(first_in_queue, what="the chat in danger first in the queue")
    await vera.send({"type": "end", "chat_id": busy})
    offer = await vera.expect("offer")
    assert offer["in_danger"] is True
    await vera.accept(offer["chat_id"])
    await page.get_by_role("heading", name="You are chatting with Vera").wait_for()
    await expect(page.locator("#danger-sent")).to_have_text("Your counsellor has been told.")
    await shot(page, "widget-in-danger-active-390")
    assert page.errors == []  # type: ignore[attr-defined]
    await context.close()
    for visitor in [first, *waiting]:
        await visitor.close()
    await vera.close()


async def test_acute_alerts_the_supervisor_then_on_call_then_shows_the_procedure_and_pauses(
    server: RunningServer, browser: Browser
) -> None:
    anna_context, anna = await new_page(browser, CONSOLE)
    await anna_context.grant_permissions(["notifications"], origin=server.url)
    await sign_in_console(anna, server, "anna", PASSWORD)
    await anna.locator(".status-choice label", has_text="Available").click()
    await expect(anna.locator(".status-choice input[value=available]")).to_be_checked()

    bo_context, bo = await new_page(browser, CONSOLE)
    await sign_in_console(bo, server, "bo", PASSWORD)
    await bo.goto(f"{server.url}/console#/supervise")
    await bo.locator("#view-supervise-title").wait_for()

    # A visitor in danger: the offer says so.
    visitor = await open_visitor(server)
    await visitor.start(language="en")
    await visitor.send({"type": "danger"})
    await visitor.expect("danger.noted")
    offer = anna.locator(f'.offer-card[data-chat="{visitor.chat_id}"]')
    await expect(offer.locator(".tag.in-danger")).to_have_text("In danger")
    await shot(anna, "console-offer-in-danger-1280")
    await offer.locator("button", has_text="Accept").click()
    panel = anna.locator(f'.chat-panel[data-chat="{visitor.chat_id}"]')
    await panel.wait_for()
    await visitor.say("he is outside the door")

    # Acute: Bo, on duty, gets a banner (and a sound); Anna is told he was.
    await panel.locator(".risk-acute label").click()
    await expect(panel.locator(".chat-notices")).to_contain_text("1 supervisor on duty was alerted")
    tab = anna.locator(f'.chat-tab[data-chat="{visitor.chat_id}"]')
    await expect(tab.locator(".tag.risk-acute")).to_have_text("Acute")
    await expect(bo.locator(".risk-alert")).to_contain_text("Acute risk: Anna’s chat on Support")
    row = bo.locator(f'.live-table tr[data-chat="{visitor.chat_id}"]')
    await expect(row.locator(".tag.risk-acute")).to_have_text("Acute")
    await accessible(anna, "console acute")
    await accessible(bo, "supervise alert")
    await shot(anna, "console-acute-1280")
    await shot(bo, "supervise-alert-1280")

    # On the night line no supervisor is on duty: Carl, on call and signed in, is alerted.
    carl_context, carl = await new_page(browser, CONSOLE)
    await sign_in_console(carl, server, "carl", PASSWORD)
    await carl.locator("#view-chats-title").wait_for()
    night = await open_visitor(server)
    await night.start(line="night", language="en")
    night_offer = anna.locator(f'.offer-card[data-chat="{night.chat_id}"]')
    await night_offer.locator("button", has_text="Accept").click()
    night_panel = anna.locator(f'.chat-panel[data-chat="{night.chat_id}"]')
    await night_panel.wait_for()
    await night_panel.locator(".risk-acute label").click()
    await expect(carl.locator(".risk-alert")).to_contain_text("You are on call")
    await expect(night_panel.locator(".chat-notices")).to_contain_text("1 person on call")
    await shot(carl, "console-on-call-alert-1280")

    # Carl signs out: nobody to reach, so Anna reads the line's procedure and contact.
    await carl_context.close()

    async def carl_gone() -> bool:
        rt = server.runtime
        presences = await rt.broker.line_presences("night")
        ids = [p.staff_id for p in presences if p.alias == "Carl"]
        return not ids or not (await rt.broker.connection_counts(ids)).get(ids[0])

    await eventually(carl_gone, what="Carl's console gone")
    await night_panel.locator(".risk-concern label").click()
    await expect(night_panel.locator(".risk-concern input")).to_be_checked()
    await night_panel.locator(".risk-acute label").click()
    procedure = night_panel.locator(".risk-procedure")
    await expect(procedure).to_contain_text("Call the duty manager")
    await expect(procedure).to_contain_text(CONTACT)
    await accessible(anna, "console procedure")
    await shot(anna, "console-procedure-1280")

    # The acute chat ends: a pause, no new offers until Anna presses Ready.
    await night_panel.locator(".chat-actions button", has_text="End chat").click()
    await anna.locator("dialog[open] button.danger").click()
    pause = anna.locator("#care-pause")
    await expect(pause).to_contain_text("Take a moment")
    # The time it ends, as the duty line above writes its times: the line's clock and zone.
    presences = await server.runtime.broker.line_presences("night")
    anna_id = next(p.staff_id for p in presences if p.alias == "Anna")
    until = await server.runtime.chats.care.paused_until(anna_id)
    assert until is not None
    local = datetime.fromtimestamp(until, ZoneInfo("Europe/Stockholm"))
    await expect(pause).to_contain_text(f"until {local:%H:%M} {local.tzname()}.")
    await expect(anna.locator("#chats-shift")).to_contain_text(f" {local.tzname()}")
    await expect(anna.locator("#shift-tally")).to_contain_text("acute: 1")
    # A debrief about the first acute chat, on Bo's line.
    await anna.locator(f'.chat-tab[data-chat="{visitor.chat_id}"]').click()
    await panel.locator(".debrief-ask").click()
    await expect(panel.locator(".debrief-ask")).to_have_text("Debrief asked")
    waiting = await open_visitor(server)
    await waiting.start(language="en")
    assert await server.runtime.router.dispatch("support") == 0
    await expect(anna.locator(f'.offer-card[data-chat="{waiting.chat_id}"]')).to_have_count(0)
    await accessible(anna, "console pause")
    await shot(anna, "console-pause-1280")

    # Supervisors see the debrief Anna asked for.
    await bo.reload()
    await bo.locator("#view-supervise-title").wait_for()
    await expect(bo.locator(".debrief")).to_contain_text("Anna")
    await shot(bo, "supervise-debriefs-1280")

    # Desktop notifications, opted in, while the tab is hidden: an offer shows one.
    await anna.locator("#notify-toggle").click()
    await expect(anna.locator("#notify-toggle")).to_have_attribute("aria-pressed", "true")
    await anna.evaluate(
        """() => {
          window.shownNotifications = [];
          const Real = window.Notification;
          window.Notification = class extends Real {
            constructor(title, options) {
              super(title, options);
              window.shownNotifications.push(options.body);
            }
          };
          Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
        }"""
    )
    await anna.locator("#care-ready").click()
    await expect(pause).to_be_hidden()
    await expect(anna.locator(f'.offer-card[data-chat="{waiting.chat_id}"]')).to_have_count(1)
    shown = await anna.evaluate("window.shownNotifications")
    assert shown == ["A chat is offered to you (Support)."]
    await shot(anna, "console-ready-1280")

    assert anna.errors == [] and bo.errors == []  # type: ignore[attr-defined]
    for client in (visitor, night, waiting):
        await client.close()
    await anna_context.close()
    await bo_context.close()


async def test_in_the_wrapup_the_risk_can_still_be_set_and_acute_alerts_the_supervisor(
    server: RunningServer, browser: Browser
) -> None:
    # A line of its own: nothing left waiting by the tests before.
    rt = server.runtime
    await add_line(rt, "evening", emergency_text=EMERGENCY)
    await add_counsellor(rt, "wendy", alias="Wendy", lines=("evening",))
    await add_counsellor(rt, "sara", alias="Sara", supervisor=True, lines=("evening",))
    sara = await open_staff(server, "sara", PASSWORD, available=False)
    context, page = await new_page(browser, CONSOLE)
    await sign_in_console(page, server, "wendy", PASSWORD)
    await page.locator(".status-choice label", has_text="Available").click()
    await expect(page.locator(".status-choice input[value=available]")).to_be_checked()
    # Put on duty outside the roster (the seed's way): the shift so far counts from then.
    tally = page.locator("#shift-tally")
    await expect(tally).to_contain_text("On duty since")
    await expect(tally).to_contain_text("(added outside the roster) — chats: 0")
    visitor = await open_visitor(server)
    await visitor.start(line="evening", language="en")
    offer = page.locator(f'.offer-card[data-chat="{visitor.chat_id}"]')
    await offer.locator("button", has_text="Accept").click()
    panel = page.locator(f'.chat-panel[data-chat="{visitor.chat_id}"]')
    await panel.wait_for()
    await visitor.say("I could not say it before")

    # The visitor leaves: the risk choice moves into the wrap-up form and still works.
    await visitor.send({"type": "end"})
    form = panel.locator(".wrapup-form")
    await expect(form).to_be_visible()
    choice = form.locator(".risk-choice")
    await expect(choice.locator("input[value=none]")).to_be_checked()
    await expect(choice.locator("input[value=acute]")).to_be_enabled()
    await expect(form.locator(".risk-wrapup-hint")).to_contain_text("until you save")
    await choice.locator(".risk-acute label").click()
    await expect(panel.locator(".chat-notices")).to_contain_text("1 supervisor on duty was alerted")
    alert = await sara.expect("risk.alert", chat_id=visitor.chat_id)
    assert alert["ended"] is True and alert["counsellor"]["alias"] == "Wendy"
    tab = page.locator(f'.chat-tab[data-chat="{visitor.chat_id}"]')
    await expect(tab.locator(".tag.risk-acute")).to_have_text("Acute")
    await expect(tally).to_contain_text("chats: 1 · acute: 1")
    await accessible(page, "wrap-up with risk")
    await shot(page, "console-wrapup-risk-1280")

    await form.get_by_label("violence").check()
    await form.get_by_label("referred").check()
    await form.locator("button[type=submit]").click()
    await expect(tab).to_have_count(0)
    await written(server.runtime)  # as once the hour is over
    async with unit_of_work(server.runtime.sessionmaker) as session:
        rows = (await session.execute(select(Wrapup))).scalars().all()
    assert [(r.topics, r.outcome, r.risk) for r in rows if r.line_key == "evening"] == [
        (["violence"], "referred", "acute")
    ]
    assert page.errors == []  # type: ignore[attr-defined]
    await context.close()
    await visitor.close()
    await sara.close()
