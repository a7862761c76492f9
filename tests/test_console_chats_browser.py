"""Counsellors and supervisors in the console, in real Chromium against Lykta on 127.0.0.1,
with visitors driven through the visitor WebSocket."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, Page, ViewportSize, WebSocketRoute, expect
from sqlalchemy import select

from app.broker.records import StaffStatus
from app.chats.connection import UNAVAILABLE_CLOSE
from app.chats.lost import Held, write_back
from app.chats.protocol import CLOSE_SERVICE_RESTART, Close
from app.kit.db import unit_of_work
from app.models import Wrapup
from app.settings import Settings
from app.staff.repository import StaffSessionRepository
from tests.conftest import FAST
from tests.support.browser import axe_violations, chromium, describe, screenshot
from tests.support.clients import VisitorClient, fresh_code, open_staff, open_visitor
from tests.support.console import sign_in_console
from tests.support.held import written
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer, bound_socket, run_server
from tests.support.waiting import eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

CANNED = [
    {"language": "sv", "title": "Hälsning", "text": "Hej, jag är här. Vad vill du prata om?"},
    {"language": "en", "title": "Greeting", "text": "Hi, I'm here. What would you like to say?"},
]
WHISPER = "Ask whether she is safe tonight"
TABLET: ViewportSize = {"width": 768, "height": 1024}
DESKTOP: ViewportSize = {"width": 1280, "height": 720}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    path = tmp_path_factory.mktemp("console-chats") / "lykta.db"
    shutil.copy(sqlite_template, path)
    sock = bound_socket()
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}", public_url=public_url, **FAST)
    async with run_server(settings, sock=sock) as running:
        rt = running.runtime
        await add_line(rt, canned_responses=CANNED)
        await add_line(rt, "youth", required_qualification="volunteer")
        for name in ("anna", "cleo", "dora", "erik"):
            await add_counsellor(rt, name, capacity=3)
        await add_counsellor(rt, "bo", alias="Bo", supervisor=True, capacity=3)
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == [], errors


async def assert_accessible(page: Page, name: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{name}: {describe(violations)}"
    await screenshot(page, f"console-{name}")


async def go_available(page: Page) -> None:
    """Available, as the server has it: the radio button is checked at the click, the empty
    panel's words change once the server has stored the status and said so."""
    await page.locator(".status-choice label", has_text="Available").click()
    await expect(page.locator(".status-choice input[value=available]")).to_be_checked()
    await expect(page.locator(".chat-empty")).to_contain_text("Offers appear under Offers")


async def visitor_on(server: RunningServer, language: str = "en") -> VisitorClient:
    visitor = await open_visitor(server)
    await visitor.start(language=language)
    return visitor


def chat_panel(page: Page, visitor: VisitorClient) -> Locator:
    return page.locator(f'.chat-panel[data-chat="{visitor.chat_id}"]')


def chat_tab(page: Page, visitor: VisitorClient) -> Locator:
    return page.locator(f'.chat-tab[data-chat="{visitor.chat_id}"]')


async def accept_offer(page: Page, visitor: VisitorClient) -> None:
    offer = page.locator(f'.offer-card[data-chat="{visitor.chat_id}"]')
    await offer.locator("button", has_text="Accept").click()


async def test_a_counsellor_answers_two_chats_transfers_one_and_wraps_up_the_other(
    server: RunningServer, page: Page
) -> None:
    await sign_in_console(page, server, "anna", PASSWORD)
    await expect(page.locator("#view-chats-title")).to_have_text("Chats")
    await expect(page.locator(".connection")).to_have_text("Connected")
    await expect(page.locator("#chats-shift")).to_contain_text("On duty on Support")
    await assert_accessible(page, "chats-away")
    await go_available(page)

    # An offer: a visible countdown, accepted with the keyboard.
    first = await visitor_on(server)
    offer = page.locator(f'.offer-card[data-chat="{first.chat_id}"]')
    await expect(offer).to_be_visible()
    await expect(offer.locator(".countdown")).to_contain_text("Expires in")
    assert await offer.locator("progress").get_attribute("max") == "30"
    await expect(page.locator('[data-badge="chats"]')).to_have_text("1")
    await assert_accessible(page, "chats-offer")
    await page.keyboard.press("Alt+A")
    await expect(chat_tab(page, first)).to_have_attribute("aria-selected", "true")
    await first.expect("counsellor.joined", name="Anna")
    await first.say("I need to talk <img src=x onerror=alert(1)>")
    transcript = chat_panel(page, first).locator(".transcript")
    await expect(transcript.locator(".from-visitor .text")).to_have_text(
        "I need to talk <img src=x onerror=alert(1)>"
    )
    assert await transcript.locator("img").count() == 0

    # A second chat at once: accepting opens it. A message in the first one takes nothing
    # away from the screen; it counts as unread there until it is looked at.
    second = await visitor_on(server)
    await accept_offer(page, second)
    await expect(chat_tab(page, second)).to_have_attribute("aria-selected", "true")
    await expect(chat_panel(page, second).locator("textarea[name=text]")).to_be_focused()
    await second.expect("counsellor.joined")
    await first.say("are you there?")
    first_unread = chat_tab(page, first).locator(".badge:not(.new)")
    await expect(first_unread).to_have_text("1 unread")
    await expect(chat_tab(page, second)).to_have_attribute("aria-selected", "true")
    await page.keyboard.press("Alt+P")
    await expect(chat_tab(page, first)).to_have_attribute("aria-selected", "true")
    await expect(first_unread).to_be_hidden()
    await page.keyboard.press("Alt+N")
    await expect(chat_tab(page, second)).to_have_attribute("aria-selected", "true")
    await second.say("hello from the second chat")
    panel = chat_panel(page, second)
    await expect(panel.locator(".from-visitor .text")).to_have_text("hello from the second chat")
    await second.send({"type": "typing", "typing": True})
    await expect(panel.locator(".typing")).to_be_visible()

    # A canned response is inserted for editing and sent only when the counsellor sends.
    await panel.locator(".canned select").select_option(label="Greeting")
    await panel.locator(".canned button").click()
    box = panel.locator("textarea[name=text]")
    await expect(box).to_have_value(CANNED[1]["text"])
    await second.expect_none("message", within=0.5)
    await box.press("End")
    await box.type(" Take your time.")
    await box.press("Enter")
    got = await second.expect("message", sender="counsellor")
    assert got["text"] == CANNED[1]["text"] + " Take your time."
    await expect(panel.locator(".from-staff .text")).to_have_text(got["text"])
    await assert_accessible(page, "chats-two-chats")
    await page.set_viewport_size(TABLET)
    await assert_accessible(page, "chats-two-chats-tablet")
    await page.set_viewport_size(DESKTOP)

    # Transfer the first chat to a colleague, with a note for her.
    cleo = await open_staff(server, "cleo", PASSWORD)
    await chat_tab(page, first).click()
    await chat_panel(page, first).locator("button", has_text="Transfer").click()
    dialog = page.locator("dialog[open]")
    await expect(dialog.locator("h2")).to_contain_text("Transfer")
    await dialog.get_by_label("A colleague").check()
    await dialog.get_by_label("Colleague", exact=True).select_option(label="Cleo (0 of 3 chats)")
    await dialog.get_by_label("Note for the next counsellor").fill("Wants to talk about housing")
    await assert_accessible(page, "chats-transfer")
    await dialog.locator("button[type=submit]").click()
    await expect(chat_tab(page, first)).to_have_count(0)
    await expect(page.locator(".chats-notice")).to_contain_text("transferred")
    await cleo.accept((await cleo.expect("offer", chat_id=first.chat_id, transfer=True))["chat_id"])
    note = await cleo.expect("note", chat_id=first.chat_id)
    assert note["text"] == "Wants to talk about housing"
    await first.expect("counsellor.joined", name="Cleo")
    assert "housing" not in json.dumps(first.received)

    # A private note for colleagues, and asking a supervisor (none is connected right now).
    await expect(chat_tab(page, second)).to_have_attribute("aria-selected", "true")
    await panel.locator(".note-box summary").click()
    await panel.get_by_label("Note", exact=True).fill("Mentions her sister in Malmö")
    await panel.locator(".note-form button[type=submit]").click()
    await expect(panel.locator(".entry.note .text")).to_have_text("Mentions her sister in Malmö")
    await panel.locator("button", has_text="Ask a supervisor").click()
    await page.locator("dialog[open]").get_by_label("What is it about?").fill("Unsure")
    await assert_accessible(page, "chats-ask-supervisor")
    await page.locator("dialog[open] button[type=submit]").click()
    await expect(panel.locator(".chat-notices")).to_have_text(
        "No supervisor of this line is on duty right now."
    )
    assert "Malmö" not in json.dumps(second.received)

    # End the second one with Alt+E, then the wrap-up: the server's refusal shows in the form.
    await page.keyboard.press("Alt+E")
    await page.locator("dialog[open] button", has_text="End chat").click()
    await second.expect("chat.ended", reason="counsellor_ended")
    form = panel.locator(".wrapup-form")
    await expect(form).to_be_visible()
    await form.locator("button[type=submit]").click()
    await expect(form.locator(".field-error")).to_have_text("Choose an outcome.")
    await assert_accessible(page, "chats-wrapup")
    await form.get_by_label("health").check()
    await form.get_by_label("support given").check()
    await form.locator("button[type=submit]").click()
    await expect(chat_tab(page, second)).to_have_count(0)
    await expect(page.locator(".chats-notice")).to_contain_text("wrap-up saved")
    await written(server.runtime)  # as once the hour is over
    async with unit_of_work(server.runtime.sessionmaker) as session:
        rows = (await session.execute(select(Wrapup))).scalars().all()
    assert [(r.line_key, r.topics, r.outcome) for r in rows] == [
        ("support", ["health"], "support given")
    ]
    await cleo.close()


async def test_a_supervisor_is_asked_whispers_and_takes_over(
    server: RunningServer, page: Page
) -> None:
    dora = await open_staff(server, "dora", PASSWORD)
    await sign_in_console(page, server, "bo", PASSWORD)
    await expect(page.locator("#nav a > span:first-child")).to_have_text(
        ["Chats", "Supervise", "Mailbox", "My shifts", "Play a visitor"]
    )
    await expect(page.locator(".connection")).to_have_text("Connected")
    visitor = await visitor_on(server)
    await dora.accept((await dora.expect("offer", chat_id=visitor.chat_id))["chat_id"])
    await visitor.say("he checks my phone every night")
    await dora.expect("message", sender="visitor")
    await dora.send({"type": "help", "chat_id": visitor.chat_id, "text": "Please read along"})
    assert (await dora.expect("help.sent"))["supervisors"] == 1
    # Bo is on his chats screen: he is told there, and goes to the supervise screen.
    notice = page.locator(".chats-notice")
    await expect(notice).to_contain_text("Dora asks a supervisor for help.")
    await notice.get_by_role("link", name="Open Supervise").click()
    await expect(page.locator("#view-supervise-title")).to_have_text("Supervise")
    await page.locator("#lang").select_option("sv")
    await expect(page.locator("#view-supervise-title")).to_have_text("Handledning")
    await expect(page.locator("tr[data-staff]", has_text="Dora")).to_contain_text("Tillgänglig")
    assert not re.search(r"\b(chats|sup)\.[a-z_]+", await page.locator("main").inner_text())
    await page.locator("#lang").select_option("en")
    await expect(page.locator("#view-supervise-title")).to_have_text("Supervise")
    request = page.locator(f'.help-request[data-chat="{visitor.chat_id}"]')
    await expect(request).to_contain_text("Dora asks for help")
    await expect(request).to_contain_text("Please read along")
    row = page.locator(f'tr[data-chat="{visitor.chat_id}"]')
    await expect(row).to_contain_text("Dora")
    await expect(row).to_contain_text("asks for help")
    team = page.locator("tr[data-staff]", has_text="Dora")
    await expect(team).to_contain_text("1 of 3")
    # Her duty ends at a time on the line's clock (Stockholm), not the browser's (UTC here).
    (line,) = dora.hello["lines"]
    ends = datetime.fromtimestamp(line["on_duty_until"], ZoneInfo("Europe/Stockholm"))
    await expect(team.locator("td").last).to_have_text(re.compile(rf"^{ends:%H:%M}( CES?T)?$"))
    await assert_accessible(page, "supervise")

    await request.locator("button", has_text="Observe").click()
    observed = page.locator(".observed")
    await expect(observed.locator(".from-visitor .text")).to_have_text(
        "he checks my phone every night"
    )
    await observed.get_by_label("Whisper to Dora").fill(WHISPER)
    await observed.locator("button", has_text="Whisper").click()
    whisper = await dora.expect("whisper", chat_id=visitor.chat_id)
    assert whisper["text"] == WHISPER and whisper["name"] == "Bo"
    await expect(observed.locator(".whisper .text")).to_have_text(WHISPER)
    await assert_accessible(page, "supervise-observing")
    await page.set_viewport_size(TABLET)
    await assert_accessible(page, "supervise-observing-tablet")
    await page.set_viewport_size(DESKTOP)

    # The visitor never receives the whisper: not live, not on resume from the start.
    await dora.say(visitor.chat_id, "Are you safe tonight?")
    await visitor.expect("message", text="Are you safe tonight?")
    assert WHISPER not in json.dumps(visitor.received)
    await visitor.close()
    again = await open_visitor(server)
    again.chat_id, again.token = visitor.chat_id, visitor.token
    await again.send(
        {"type": "resume", "chat_id": visitor.chat_id, "token": visitor.token, "last_seq": 0}
    )
    await again.expect("message", text="Are you safe tonight?")
    assert WHISPER not in json.dumps(again.received)
    assert again.seen("whisper") == []

    # Take over: the chat opens on Bo's chats screen, Dora is released.
    await observed.locator("button", has_text="Take over").click()
    await page.locator("dialog[open] button", has_text="Take over").click()
    await dora.expect("chat.released", chat_id=visitor.chat_id, reason="taken_over")
    await again.expect("counsellor.joined", name="Bo")
    await expect(page).to_have_url(f"{server.url}/console#/chats")
    panel = chat_panel(page, again)
    await expect(panel.locator(".whisper .text")).to_have_text(WHISPER)
    await panel.locator("textarea[name=text]").fill("Hi, I'm Bo. I'm here with you now.")
    await panel.locator("textarea[name=text]").press("Enter")
    got = await again.expect("message", sender="counsellor")
    assert got["name"] == "Bo"
    assert WHISPER not in json.dumps(again.received)
    await dora.close()


async def test_two_tabs_of_one_counsellor_do_not_both_take_a_chat(
    server: RunningServer, page: Page
) -> None:
    await add_counsellor(server.runtime, "fia", alias="Fia", capacity=1)
    await sign_in_console(page, server, "fia", PASSWORD)
    # Nothing open: the empty panel says what comes next, from where the counsellor is.
    empty = page.locator(".chat-empty")
    await expect(empty).to_contain_text("Set yourself to available")
    await go_available(page)
    await expect(empty).to_contain_text("Offers appear under Offers")
    other = await page.context.new_page()
    await other.goto(f"{server.url}/console#/chats")
    await expect(other.locator(".connection")).to_have_text("Connected")
    # The second tab keeps the status the first one chose.
    await expect(other.locator(".status-choice input[value=available]")).to_be_checked()
    visitor = await visitor_on(server)
    for tab in (page, other):
        await expect(tab.locator(f'.offer-card[data-chat="{visitor.chat_id}"]')).to_be_visible()
    # Both tabs accept at once (whichever gets there second finds the offer gone or taken).
    await asyncio.gather(page.keyboard.press("Alt+A"), other.keyboard.press("Alt+A"))
    # The server gave the chat once; both tabs show it, neither shows a refusal.
    await visitor.expect("counsellor.joined", name="Fia")
    for tab in (page, other):
        await expect(chat_tab(tab, visitor)).to_be_visible()
        await expect(tab.locator(".offer-card")).to_have_count(0)
    await visitor.say("one of you?")
    for tab in (page, other):
        await expect(chat_panel(tab, visitor).locator(".from-visitor .text")).to_have_text(
            ["one of you?"]
        )
        await expect(tab.locator(".chats-notice")).to_be_empty()
    await visitor.expect_none("counsellor.joined", within=0.5)
    # A tab opened now lists the chat without opening it, and says how to.
    third = await page.context.new_page()
    await third.goto(f"{server.url}/console#/chats")
    await expect(chat_tab(third, visitor)).to_be_visible()
    await expect(third.locator(".chat-empty")).to_contain_text("Choose a chat under My chats")
    await third.close()
    fia = next(
        c.staff.id for c in server.runtime.connections.staff.values() if c.staff.alias == "Fia"
    )
    assert await server.runtime.broker.staff_loads([fia]) == {fia: 1}

    # Fia is at her capacity: the next visitor waits, and the queue card says so.
    waiting = await visitor_on(server)
    card = page.locator('.queue-card[data-line="support"]')
    await expect(card.locator(".queue-count")).to_have_text("1 waiting")
    await expect(card.locator(".queue-wait")).to_contain_text("Longest wait 0:0")
    await expect(other.locator('.queue-card[data-line="support"] .queue-count')).to_have_text(
        "1 waiting"
    )
    await assert_accessible(page, "chats-queue")
    await waiting.send({"type": "end"})
    await expect(card.locator(".queue-wait")).to_have_text("Nobody waiting")
    await other.close()


# Last in the module: it blocks the visitors' address (every test visitor shares it).
async def test_a_status_chosen_while_the_console_reconnects_is_kept(
    server: RunningServer, page: Page
) -> None:
    rt = server.runtime
    sockets: list[WebSocketRoute] = []
    network = {"down": False}

    async def route(ws: WebSocketRoute) -> None:
        if network["down"]:
            await ws.close(code=4000, reason="no network")
            return
        ws.connect_to_server()
        sockets.append(ws)

    # Someone no earlier test has set a status for: she starts away.
    gun_id = await add_counsellor(rt, "gun")
    await page.route_web_socket(re.compile(r"/ws/staff$"), route)
    await sign_in_console(page, server, "gun", PASSWORD)
    await expect(page.locator(".connection")).to_have_text("Connected")
    await expect(page.locator(".status-choice input[value=away]")).to_be_checked()

    # The connection drops; the counsellor says she is taking a break before it is back.
    network["down"] = True
    for ws in sockets:
        await ws.close(code=4000, reason="network lost")
    await expect(page.locator(".connection")).not_to_have_text("Connected")
    await page.locator(".status-choice label", has_text="Break").click()
    network["down"] = False
    # The console's back-off may have grown while the network was down: a bound, not a goal.
    await expect(page.locator(".connection")).to_have_text("Connected", timeout=15_000)

    # Once connected again, the break she chose holds: on her screen and for routing.
    await expect(page.locator(".status-choice input[value=break]")).to_be_checked()

    async def on_break() -> bool:
        presence = await rt.broker.get_presence(gun_id)
        return presence is not None and presence.status is StaffStatus.on_break

    await eventually(on_break, what="Gun on a break")
    await page.locator(".status-choice label", has_text="Away").click()
    await expect(page.locator(".status-choice input[value=away]")).to_be_checked()


async def test_chats_the_server_lost_with_its_data_close_with_a_notice(
    server: RunningServer, page: Page
) -> None:
    rt = server.runtime
    hans_id = await add_counsellor(rt, "hans", capacity=3)
    await sign_in_console(page, server, "hans", PASSWORD)
    await go_available(page)
    visitor = await visitor_on(server)
    await accept_offer(page, visitor)
    await visitor.expect("counsellor.joined")
    await expect(chat_tab(page, visitor)).to_be_visible()

    # As when Redis comes back empty: the chat and her presence are gone, the process writes
    # back what its clients had (app/chats/lost.py), and her console reconnects.
    sockets = [c for c in rt.connections.staff.values() if c.staff.id == hans_id]
    held = Held.of(rt.connections)
    held = Held({visitor.chat_id: "support"}, {hans_id: held.staff[hans_id]})
    await rt.broker.delete_chat(visitor.chat_id)
    await rt.broker.remove_presence(hans_id)
    await write_back(rt.broker, rt.transcript, held)
    for connection in sockets:
        connection.out.close(UNAVAILABLE_CLOSE)
    await expect(page.locator(".chats-notice")).to_contain_text(
        "The server lost 1 of your chats in a restart", timeout=15_000
    )
    await expect(chat_tab(page, visitor)).to_have_count(0)
    # Still available, as she was.
    await expect(page.locator(".status-choice input[value=available]")).to_be_checked()
    await assert_accessible(page, "chats-lost")


async def test_a_reconnect_restores_chats_and_a_new_sign_in_keeps_them(
    server: RunningServer, page: Page
) -> None:
    rt = server.runtime
    await sign_in_console(page, server, "erik", PASSWORD)
    await go_available(page)
    visitor = await visitor_on(server, language="sv")
    await accept_offer(page, visitor)
    await visitor.expect("counsellor.joined")
    await visitor.say("first")
    panel = chat_panel(page, visitor)
    await expect(panel.locator(".from-visitor .text")).to_have_text(["first"])
    # The Swedish canned response comes first for a Swedish chat.
    await expect(panel.locator(".canned optgroup").first).to_have_attribute("label", "Swedish")

    # The server drops the connection (a restart): messages sent meanwhile arrive once, in order.
    erik_id = next(c.staff.id for c in rt.connections.staff.values() if c.staff.alias == "Erik")
    for connection in [c for c in rt.connections.staff.values() if c.staff.id == erik_id]:
        connection.out.close(Close(CLOSE_SERVICE_RESTART, "restart"))
    await visitor.say("missed one")
    await visitor.say("missed two")
    await expect(page.locator(".connection")).to_have_text("Connected")
    await expect(panel.locator(".from-visitor .text")).to_have_text(
        ["first", "missed one", "missed two"]
    )
    await expect(page.locator(".chats-notice")).to_contain_text("Reconnected")

    # A message written while the connection is down is sent once it is back.
    for connection in [c for c in rt.connections.staff.values() if c.staff.id == erik_id]:
        connection.out.close(Close(CLOSE_SERVICE_RESTART, "restart"))
    await panel.locator("textarea[name=text]").fill("are you still there?")
    await panel.locator("textarea[name=text]").press("Enter")
    await visitor.expect("message", text="are you still there?")
    await expect(page.locator(".connection")).to_have_text("Connected")
    await expect(panel.locator(".from-staff .text")).to_have_text(["are you still there?"])
    await visitor.expect_none("message", within=0.5, text="are you still there?")

    # The session ends mid-shift: sign in again over the screen; the chat is still there.
    async with unit_of_work(rt.sessionmaker) as session:
        await StaffSessionRepository(session).delete_for_staff(uuid.UUID(erik_id))
    await rt.chats.staffing.end_sessions(erik_id, None)
    dialog = page.locator("#signin-dialog")
    await expect(dialog).to_be_visible()
    await visitor.say("while you were signing in")
    await dialog.locator("input[name=username]").fill("erik")
    await dialog.locator("input[name=password]").fill(PASSWORD)
    await dialog.locator("input[name=code]").fill(await fresh_code("erik"))
    await dialog.locator("button[type=submit]").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator(".connection")).to_have_text("Connected")
    await expect(panel.locator(".from-visitor .text")).to_have_text(
        ["first", "missed one", "missed two", "while you were signing in"]
    )
    record = await rt.broker.get_chat(visitor.chat_id)
    assert record is not None and record.counsellor_id == erik_id
    # Like any sign-in, it starts away, and the screen says why; the chats stay his.
    await expect(page.locator(".status-choice input[value=away]")).to_be_checked()
    await expect(page.locator(".chats-notice")).to_contain_text("A new sign-in set you to away")
    await page.locator(".status-choice label", has_text="Available").click()
    await expect(page.locator(".status-choice input[value=available]")).to_be_checked()

    # A chat that ends while the console is disconnected (the session ended, the sign-in
    # dialog is up): back in, it says the chat ended and shows the form, not "no longer yours".
    later = await visitor_on(server)
    await accept_offer(page, later)
    await later.expect("counsellor.joined")
    later_panel = chat_panel(page, later)
    await expect(chat_tab(page, later)).to_have_count(1)
    async with unit_of_work(rt.sessionmaker) as session:
        await StaffSessionRepository(session).delete_for_staff(uuid.UUID(erik_id))
    await rt.chats.staffing.end_sessions(erik_id, None)
    await expect(dialog).to_be_visible()
    await later.send({"type": "end"})
    await later.expect("chat.ended")
    await dialog.locator("input[name=username]").fill("erik")
    await dialog.locator("input[name=password]").fill(PASSWORD)
    await dialog.locator("input[name=code]").fill(await fresh_code("erik"))
    await dialog.locator("button[type=submit]").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator(".connection")).to_have_text("Connected")
    await expect(later_panel.locator(".chat-notices")).to_have_text(
        "The chat ended. Its wrap-up is still to do."
    )
    await expect(chat_tab(page, later)).to_contain_text("ended")
    await expect(page.get_by_text("no longer yours")).to_have_count(0)
    await chat_tab(page, later).click()
    await expect(later_panel.locator(".wrapup-form")).to_be_visible()
    await expect(later_panel.locator("textarea[name=text]")).to_be_hidden()
    later_form = later_panel.locator(".wrapup-form")
    await later_form.get_by_label("other").check()
    await later_form.get_by_label("referred").check()
    await later_form.locator("button[type=submit]").click()
    await expect(chat_tab(page, later)).to_have_count(0)
    await expect(page.locator(".chats-notice")).to_contain_text("wrap-up saved")

    # The visitor drops: shown plainly, with when the grace period ends.
    await visitor.close()
    away = panel.locator(".visitor-away")
    await expect(away).to_contain_text("The visitor left or lost their connection")
    await expect(away).to_contain_text("left)")
    await expect(chat_tab(page, visitor)).to_contain_text("visitor away")
    await assert_accessible(page, "chats-visitor-away")

    # In Swedish: the screen is drawn again, the chat and the unsent draft stay.
    await panel.locator("textarea[name=text]").fill("ett utkast")
    await page.locator("#lang").select_option("sv")
    await expect(page.locator("#view-chats-title")).to_have_text("Chattar")
    panel = chat_panel(page, visitor)
    await expect(panel.locator("textarea[name=text]")).to_have_value("ett utkast")
    await expect(panel.locator(".from-visitor .text")).to_have_count(4)
    await expect(panel.locator(".visitor-away")).to_contain_text("Besökaren lämnade")
    await assert_accessible(page, "chats-swedish")
    assert not re.search(r"\b(chats|sup)\.[a-z_]+", await page.locator("main").inner_text())
    await page.locator("#lang").select_option("en")
    await expect(page.locator("#view-chats-title")).to_have_text("Chats")
    panel = chat_panel(page, visitor)

    # Block: the chat ends and the same visitor is refused for a day.
    await panel.locator("button", has_text="Block").click()
    await page.locator("dialog[open] button", has_text="Block and end").click()
    await expect(panel.locator(".chat-notices")).to_contain_text("Blocked until")
    await expect(panel.locator(".wrapup-form")).to_be_visible()
    blocked = await open_visitor(server)
    await blocked.send({"type": "start", "line": "support", "language": "sv"})
    assert (await blocked.expect("line.closed"))["reason"] == "unavailable"

    # A reload (the page's memory is gone): the wrap-up still owed is back, with its form.
    await page.reload()
    await expect(page.locator(".connection")).to_have_text("Connected")
    panel = chat_panel(page, visitor)
    await expect(chat_tab(page, visitor)).to_contain_text("ended")
    await expect(panel.locator(".chat-notices")).to_have_text(
        "The chat ended. Its wrap-up is still to do."
    )
    form = panel.locator(".wrapup-form")
    await expect(form).to_be_visible()
    await expect(panel.get_by_role("log")).to_have_text(
        "The conversation is not shown here: it ended while this page was closed or away."
    )
    # What only a running chat can take is gone; blocking the visitor stays possible.
    for gone in ("Referral", "Offer a code", "End chat"):
        button = panel.get_by_role("button", name=gone, include_hidden=True)
        await expect(button).to_have_count(1)
        await expect(button).to_be_hidden()
    await expect(panel.locator(".note-box")).to_have_count(1)
    await expect(panel.locator(".note-box")).to_be_hidden()
    await expect(panel.get_by_role("button", name="Block…")).to_be_visible()
    await assert_accessible(page, "chats-owed-wrapup")
    await written(rt)
    async with unit_of_work(rt.sessionmaker) as session:
        before = len((await session.execute(select(Wrapup))).scalars().all())
    await form.get_by_label("health").check()
    await form.get_by_label("support given").check()
    await form.locator("button[type=submit]").click()
    await expect(chat_tab(page, visitor)).to_have_count(0)
    await expect(page.locator(".chats-notice")).to_contain_text("wrap-up saved")
    await written(rt)
    async with unit_of_work(rt.sessionmaker) as session:
        rows = (await session.execute(select(Wrapup))).scalars().all()
    assert len(rows) == before + 1
    # And once saved, a further reload shows nothing owed.
    await page.reload()
    await expect(page.locator(".connection")).to_have_text("Connected")
    await expect(page.locator(".wrapup-form")).to_have_count(0)
