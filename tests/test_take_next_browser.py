"""In real Chromium: the statistics view's wrap-ups, risk and "in danger"; a counsellor taking
the next chat from the queue card; a supervisor playing the visitor on a practice line (its
chat page, line and mailbox reached with their session).

Screenshots at 1280×800 go to /tmp/shots/take-next/ as well as test-artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect

from app.models.enums import ChatOutcome, StaffRole
from app.settings import Settings
from app.stats.recorder import ChatFacts
from tests.conftest import FAST
from tests.support.browser import axe_violations, chromium, describe, screenshot
from tests.support.clients import StaffClient, open_staff, open_visitor
from tests.support.console import sign_in_console
from tests.support.held import written
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer, bound_socket, run_server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
SHOTS = Path("/tmp/shots/take-next")
OPENING = "Hej... jag vet inte riktigt hur jag ska börja."


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    path = tmp_path_factory.mktemp("take-next") / "lykta.db"
    shutil.copy(sqlite_template, path)
    sock = bound_socket()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{path}",
        public_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
        sign_in_rate_per_minute=100,
        stats_small_count=2,
        **FAST,
    )
    async with run_server(settings, sock=sock) as running:
        rt = running.runtime
        await add_line(rt)
        await add_line(rt, "night", assignment="taken")
        await add_line(
            rt,
            "training",
            name="Training",
            practice=True,
            practice_openings={"sv": [OPENING, "Min kille läser mina meddelanden."]},
            mailbox="always",
        )
        await add_staff(rt, "cora", StaffRole.coordinator)
        await add_counsellor(rt, "anna", lines=("support", "night", "training"), capacity=3)
        await add_counsellor(rt, "bo", lines=("training",), supervisor=True)
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport=VIEWPORT, locale="en-GB")
    yield context
    await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert errors == [], f"script errors on the page: {errors}"


async def shot(page: Page, name: str) -> None:
    # Playwright makes the folder.
    await page.screenshot(path=str(SHOTS / f"{name}.png"))
    await screenshot(page, f"take-next-{name}")


async def wrapped_up_chat(server: RunningServer, anna: StaffClient, topics: list[str]) -> None:
    visitor = await open_visitor(server)
    await visitor.start()
    await anna.accept_offer()
    await visitor.expect("counsellor.joined")
    await anna.send({"type": "end", "chat_id": visitor.chat_id})
    await anna.expect("wrapup.required", chat_id=visitor.chat_id)
    await anna.send(
        {"type": "wrapup", "chat_id": visitor.chat_id, "topics": topics, "outcome": "referred"}
    )
    await anna.expect("wrapup.saved", chat_id=visitor.chat_id)
    await visitor.close()


async def test_the_statistics_view_shows_wrapups_risk_and_in_danger(
    server: RunningServer, page: Page
) -> None:
    rt = server.runtime
    anna = await open_staff(server, "anna", PASSWORD)
    for chosen in (["violence", "health"], ["violence"], ["violence", "housing"], ["health"]):
        await wrapped_up_chat(server, anna, chosen)
    await anna.send({"type": "status", "status": "away"})
    await anna.close()
    now = rt.broker.now()
    await rt.held_rows.hold(
        *(
            ChatFacts("support", now, 5, 60, ChatOutcome.answered, "acute", True).row()
            for _ in "ab"
        ),
        ChatFacts("support", now, 5, 60, ChatOutcome.answered, "concern").row(),
    )
    await written(rt)

    await sign_in_console(page, server, "cora", PASSWORD)
    await page.goto(f"{server.url}/console#/stats")
    topics = page.locator("#chart-topics")
    await expect(topics).to_be_visible()
    # Practice lines are not offered among the lines with statistics.
    await expect(page.locator("#stats-line option")).to_have_text(["Night", "Support"])
    await page.locator("#stats-line").select_option("support")
    await expect(page.locator("#stats-wrapups-intro")).to_contain_text(
        "A count below 2 is not shown"
    )
    await topics.locator("summary").click()
    last_week = topics.locator("tbody tr").last
    # violence 3, health 2, housing 1 (too few to show), other 0.
    await expect(last_week.locator("td")).to_have_text(["3", "2", "not shown", "0"])
    risk = page.locator("#chart-risk")
    await risk.locator("summary").click()
    # Of 7 answered chats, none 4, concern 1 (too few to show), acute 2: acute is kept back
    # too, or 7 - 4 - 2 would give concern away. "In danger" (2) adds up to no total.
    await expect(risk.locator("tbody tr").last.locator("td")).to_have_text(
        ["not shown", "not shown", "2"]
    )
    await expect(page.locator("#chart-topics rect.bar")).not_to_have_count(0)
    await topics.scroll_into_view_if_needed()
    await shot(page, "stats-wrapups")
    violations = await axe_violations(page)
    assert violations == [], describe(violations)

    await page.locator("#stats-by").select_option("month")
    await expect(topics.locator("thead th").first).to_have_text("Month")
    href = await page.locator("#stats-wrapups-export").get_attribute("href")
    assert href is not None and "by=month" in href and "line=support" in href
    await risk.scroll_into_view_if_needed()
    await shot(page, "stats-risk-by-month")


async def test_a_counsellor_takes_the_next_chat_from_the_queue_card(
    server: RunningServer, page: Page
) -> None:
    await sign_in_console(page, server, "anna", PASSWORD)
    await page.goto(f"{server.url}/console#/chats")
    await page.get_by_label("Available").check()
    first = await open_visitor(server)
    await first.start(line="night")
    second = await open_visitor(server)
    await second.start(line="night")
    await second.expect("queue.position", position=2)
    card = page.locator('.queue-card[data-line="night"]')
    await expect(card).to_contain_text("2 waiting")
    take = card.get_by_role("button", name="Take the next chat")
    await expect(take).to_be_visible()
    # The line that offers its chats has no such button.
    await expect(
        page.locator('.queue-card[data-line="support"]').get_by_role("button")
    ).to_have_count(0)
    await shot(page, "queue-card-take-next")
    await take.click()
    await first.expect("counsellor.joined")
    await expect(page.locator(".chat-tab")).to_have_count(1)
    await expect(card).to_contain_text("1 waiting")
    await first.say("Tack för att du svarade")
    await expect(page.locator(".chat-body").first).to_contain_text("Tack för att du svarade")
    await shot(page, "taken-chat")
    violations = await axe_violations(page)
    assert violations == [], describe(violations)

    await take.click()
    await second.expect("counsellor.joined")
    await expect(page.locator(".chat-tab")).to_have_count(2)
    # Nothing left: said plainly.
    await take.click()
    await expect(page.locator(".chats-notice")).to_contain_text("No waiting chat you can answer")
    await page.get_by_label("Away").check()


async def test_a_supervisor_plays_the_visitor_on_a_practice_line(
    server: RunningServer, page: Page
) -> None:
    anna = await open_staff(server, "anna", PASSWORD)
    await sign_in_console(page, server, "bo", PASSWORD)
    await page.goto(f"{server.url}/console#/practice")
    await expect(page.locator("#view-practice-title")).to_have_text("Play a visitor")
    await expect(page.locator("#practice-openings li")).to_have_count(2)
    await page.locator("#practice-open").click()
    frame = page.frame_locator("#practice-frame")
    # The visitor's language is Swedish here: the tag says so in Swedish.
    await expect(frame.locator("#practice-tag")).to_have_text("Övning")
    await frame.locator("#start").click()
    offer = await anna.expect("offer", line="training")
    await anna.accept(offer["chat_id"])
    await expect(frame.locator("#text")).to_be_visible()
    await page.locator("#practice-openings button").first.click()
    message = await anna.expect("message", sender="visitor")
    assert message["text"] == OPENING
    await expect(frame.locator("#log")).to_contain_text(OPENING)
    await shot(page, "play-a-visitor")

    # Bo's own console marks the practice chat in the supervisors' live list.
    await page.goto(f"{server.url}/console#/supervise")
    await expect(page.locator(".live-table .tag.practice")).to_have_text("practice")
    await shot(page, "supervise-practice")
    await anna.send({"type": "end", "chat_id": offer["chat_id"]})
    await anna.expect("wrapup.required", chat_id=offer["chat_id"])

    # Back to play again: the chat page finds its chat over and asks for the line anew, and
    # writes to its mailbox, with Bo's session (a practice line answers no one else).
    await page.goto(f"{server.url}/console#/practice")
    await page.locator("#practice-open").click()
    frame = page.frame_locator("#practice-frame")
    await frame.get_by_role("button", name="Skriv till oss").click()
    await frame.locator("#view-mailbox").get_by_label("Ditt meddelande").fill("Ett övningsbrev.")
    await frame.get_by_role("button", name="Skicka").click()
    await expect(frame.get_by_role("heading", name="Din brevlådekod", exact=True)).to_be_visible()
