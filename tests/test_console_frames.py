"""What the console needs from the staff WebSocket: the lines' working material in `hello`,
asking a supervisor, transfer options, the team on duty, a dropped visitor, a second tab."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from app.audit.repository import AuditFilter
from app.audit.service import audit_service
from app.kit.db import unit_of_work
from tests.support.clients import (
    StaffClient,
    VisitorClient,
    open_chat,
    open_staff,
    open_visitor,
    sign_in,
)
from tests.support.held import written
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer

pytestmark = pytest.mark.both_brokers

CANNED = [
    {"language": "sv", "title": "Hälsning", "text": "Hej, jag heter Anna. Vad vill du prata om?"},
    {
        "language": "en",
        "title": "Greeting",
        "text": "Hi, I'm here. What would you like to talk about?",
    },
]
HELP_TEXT = "She mentions a knife; please look"


async def chatting(
    server: RunningServer, *, supervisor_available: bool = False
) -> tuple[StaffClient, StaffClient, VisitorClient]:
    rt = server.runtime
    await add_line(rt, canned_responses=CANNED)
    await add_line(rt, "youth", required_qualification="volunteer")
    await add_counsellor(rt, "anna", alias="Anna")
    await add_counsellor(rt, "bo", alias="Bo", supervisor=True)
    anna = await open_staff(server, "anna", PASSWORD)
    bo = await open_staff(server, "bo", PASSWORD, available=supervisor_available)
    visitor = await open_chat(server, anna)
    await visitor.expect("counsellor.joined")
    return anna, bo, visitor


async def audit_of(server: RunningServer, **filters: Any) -> list[Any]:
    """Audit entries, those about a chat written as once their hour is over."""
    await written(server.runtime)
    async with unit_of_work(server.runtime.sessionmaker) as session:
        return list(await audit_service.search(session, AuditFilter(**filters), limit=50, offset=0))


async def test_hello_gives_each_line_its_canned_responses_wrapup_lists_and_shift(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt, canned_responses=CANNED)
    await add_counsellor(rt, "anna", alias="Anna")
    before = time.time()
    anna = await open_staff(server, "anna", PASSWORD, available=False)
    (line,) = anna.hello["lines"]
    assert line["key"] == "support" and line["on_duty"] is True
    assert line["canned_responses"] == CANNED
    assert line["wrapup_topics"] == ["violence", "health", "housing", "other"]
    assert line["wrapup_outcomes"] == ["support given", "referred"]
    assert line["languages"] == ["sv", "en"]
    assert line["max_message_length"] == 4000
    # The seeded duty runs from now for twelve hours.
    assert line["on_duty_since"] <= before + 1 < line["on_duty_until"]
    assert line["on_duty_until"] - line["on_duty_since"] == pytest.approx(12 * 3600, abs=120)


async def test_an_offer_carries_its_countdown(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt, offer_timeout_seconds=45)
    await add_counsellor(rt, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_visitor(server)
    await visitor.start()
    offer = await anna.expect("offer")
    assert offer["timeout_seconds"] == 45
    assert offer["expires_at"] == pytest.approx(time.time() + 45, abs=5)
    assert offer["line_name"] == "Support"


async def test_a_counsellor_asks_a_supervisor_who_then_acts_on_the_chat(
    server: RunningServer,
) -> None:
    anna, bo, visitor = await chatting(server)
    chat = visitor.chat_id
    await anna.send({"type": "help", "chat_id": chat, "text": HELP_TEXT})
    sent = await anna.expect("help.sent", chat_id=chat)
    assert sent["supervisors"] == 1
    asked = await bo.expect("help.requested", chat_id=chat)
    assert asked["line"] == "support"
    assert asked["counsellor"] == {"id": anna.staff_id, "alias": "Anna"}
    assert asked["text"] == HELP_TEXT
    # The live list marks the chat, so a supervisor who looks later sees it too.
    await bo.send({"type": "live"})
    (live,) = (await bo.expect("live.chats"))["chats"]
    assert live["chat_id"] == chat and live["help_requested_at"] == pytest.approx(asked["at"])
    # From the notification: observe, whisper, take over.
    await bo.send({"type": "observe", "chat_id": chat})
    await bo.expect("chat.observing", chat_id=chat)
    await bo.send({"type": "whisper", "chat_id": chat, "text": "Ask about the knife"})
    await anna.expect("whisper", chat_id=chat)
    await bo.send({"type": "takeover", "chat_id": chat})
    await bo.expect("chat.opened", chat_id=chat)
    await anna.expect("chat.released", chat_id=chat, reason="taken_over")
    # The visitor never heard of any of it.
    assert HELP_TEXT not in json.dumps(visitor.received)
    assert visitor.seen("help.requested") == [] and visitor.seen("whisper") == []
    # Audited: who asked about which chat, never what they wrote.
    (entry,) = await audit_of(server, action="chat.help_requested")
    assert (str(entry.actor_id), entry.chat_id, entry.line_key) == (anna.staff_id, chat, "support")
    assert entry.detail == {"supervisors": 1}
    assert "knife" not in json.dumps(entry.detail)


async def test_asking_for_help_is_refused_when_it_should_be(server: RunningServer) -> None:
    anna, bo, visitor = await chatting(server)
    chat = visitor.chat_id
    await add_counsellor(server.runtime, "cleo", alias="Cleo")
    cleo = await open_staff(server, "cleo", PASSWORD)
    cases: list[tuple[StaffClient, dict[str, Any], str]] = [
        # Not one's chat (and a chat that does not exist).
        (cleo, {"type": "help", "chat_id": chat}, "not_in_chat"),
        (anna, {"type": "help", "chat_id": "nosuchchat00"}, "not_in_chat"),
        # Malformed and oversized.
        (anna, {"type": "help"}, "invalid_field"),
        (anna, {"type": "help", "chat_id": chat, "text": "x" * 501}, "invalid_field"),
        (anna, {"type": "help", "chat_id": chat, "text": {"a": 1}}, "invalid_field"),
    ]
    for client, frame, code in cases:
        await client.send(frame)
        error = await client.expect("error")
        assert (error["code"], error.get("ref")) == (code, "help"), (frame, error)
    await bo.expect_none("help.requested", within=0.3)
    # Flooding: once per chat, then refused until the cooldown is over; nothing is sent.
    await anna.send({"type": "help", "chat_id": chat})
    await anna.expect("help.sent")
    for _ in range(5):
        await anna.send({"type": "help", "chat_id": chat})
        assert (await anna.expect("error"))["code"] == "rate_limited"
    await bo.expect("help.requested")
    bo.drain()
    await bo.expect_none("help.requested", within=0.3)
    assert len(await audit_of(server, action="chat.help_requested")) == 1
    # Naming someone else's chat is audited as a denial.
    denied = await audit_of(server, action="access.denied", chat_id=chat)
    assert [e.detail for e in denied] == [{"frame": "help", "code": "not_in_chat"}]
    # A flood of frames of any kind still closes the connection (1008).
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(2000):
            await anna.send({"type": "help", "chat_id": chat})
        await asyncio.wait_for(anna.ws.recv(), 5)
        while True:
            await asyncio.wait_for(anna.ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_help_with_no_supervisor_on_duty_says_so(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    # A supervisor of the line who is not on duty is not told.
    await add_counsellor(rt, "bo", supervisor=True, on_duty=False)
    anna = await open_staff(server, "anna", PASSWORD)
    bo = await open_staff(server, "bo", PASSWORD, available=False)
    visitor = await open_chat(server, anna)
    await anna.send({"type": "help", "chat_id": visitor.chat_id})
    assert (await anna.expect("help.sent"))["supervisors"] == 0
    await bo.expect_none("help.requested", within=0.3)


async def test_supervisors_see_who_is_on_duty_with_their_load(server: RunningServer) -> None:
    anna, bo, _ = await chatting(server)
    await add_counsellor(server.runtime, "dan", alias="Dan", on_duty=False)
    await open_staff(server, "dan", PASSWORD)
    await bo.send({"type": "team"})
    team = (await bo.expect("team"))["staff"]
    summary = [(p["alias"], p["status"], p["connected"], p["load"], p["capacity"]) for p in team]
    # Dan is signed in but not on duty: not in the list.
    assert summary == [("Anna", "available", True, 1, 2), ("Bo", "away", True, 0, 2)]
    assert team[0]["lines"] == ["support"] and team[1]["supervisor"] is True
    assert team[0]["on_duty_until"] > time.time()
    # Counsellors without the supervisor flag may not ask.
    await anna.send({"type": "team"})
    error = await anna.expect("error")
    assert (error["code"], error["ref"]) == ("forbidden", "team")
    await anna.send({"type": "team", "extra": "x" * 70_000})
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(anna.ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_transfer_options_then_a_transfer_to_a_colleague_with_a_note(
    server: RunningServer,
) -> None:
    anna, _, visitor = await chatting(server)
    chat = visitor.chat_id
    await add_counsellor(server.runtime, "cleo", alias="Cleo")
    cleo = await open_staff(server, "cleo", PASSWORD)
    await anna.send({"type": "transfer.options", "chat_id": chat})
    options = await anna.expect("transfer.options", chat_id=chat)
    assert options["line"] == "support"
    assert options["lines"] == [
        {"key": "support", "name": "Support", "open": True},
        {"key": "youth", "name": "Youth", "open": False},
    ]
    # Bo is away and Anna is herself: only Cleo can take it.
    assert [(s["alias"], s["load"], s["capacity"]) for s in options["staff"]] == [("Cleo", 0, 2)]
    await cleo.send({"type": "transfer.options", "chat_id": chat})
    assert (await cleo.expect("error"))["code"] == "not_in_chat"
    await anna.send({"type": "transfer.options", "chat_id": "bad id!"})
    assert (await anna.expect("error"))["code"] == "invalid_field"

    await anna.send(
        {"type": "transfer", "chat_id": chat, "staff_id": cleo.staff_id, "note": "Handover: safe"}
    )
    await anna.expect("chat.released", chat_id=chat, reason="transferred")
    offer = await cleo.expect("offer", chat_id=chat)
    assert offer["transfer"] is True
    await cleo.accept(chat)
    note = await cleo.expect("note", chat_id=chat)
    assert (note["text"], note["name"]) == ("Handover: safe", "Anna")
    await visitor.expect("counsellor.joined", name="Cleo")
    assert "Handover" not in json.dumps(visitor.received)


async def test_a_dropped_visitor_shows_when_the_grace_period_ends(server: RunningServer) -> None:
    anna, _, visitor = await chatting(server)
    chat = visitor.chat_id
    before = time.time()
    await visitor.close()
    away = await anna.expect("visitor.away", chat_id=chat)
    assert away["grace_until"] == pytest.approx(before + 60, abs=5)
    # A reconnecting console sees it in the chat's summary too.
    again = await open_staff(server, "anna", PASSWORD, available=False)
    (summary,) = again.hello["chats"]
    assert summary["visitor_connected"] is False
    assert summary["visitor_grace_until"] == pytest.approx(away["grace_until"])
    back = await open_visitor(server)
    await back.send({"type": "resume", "chat_id": chat, "token": visitor.token, "last_seq": 0})
    await back.expect("chat.resumed")
    await anna.expect("visitor.back", chat_id=chat)


async def test_a_second_tab_does_not_double_accept(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    first = await open_staff(server, "anna", PASSWORD)
    # A second tab: the same session, so it keeps the status the first one chose.
    second = await open_staff(server, "anna", PASSWORD, available=False, cookie=first.cookie)
    visitor = await open_visitor(server)
    await visitor.start()
    chat = (await first.expect("offer"))["chat_id"]
    await second.expect("offer", chat_id=chat)
    await first.send({"type": "accept", "chat_id": chat})
    await second.send({"type": "accept", "chat_id": chat})
    # Both tabs open the chat once; the later accept is refused; the visitor is joined once.
    await first.expect("chat.opened", chat_id=chat)
    await second.expect("chat.opened", chat_id=chat)
    # An answer comes before the pong that follows it on the same connection.
    for tab in (first, second):
        await tab.send({"type": "ping"})
        await tab.expect("pong")
    refused = [f for f in (*first.received, *second.received) if f.get("type") == "error"]
    assert [(e["code"], e["ref"]) for e in refused] in (
        [("offer_not_found", "accept")],
        [("offer_expired", "accept")],
    )
    await visitor.expect("counsellor.joined")
    await visitor.say("hello")
    await first.expect("message", text="hello")
    await second.expect("message", text="hello")
    assert len(visitor.seen("counsellor.joined")) == 1
    assert await rt.broker.staff_loads([first.staff_id]) == {first.staff_id: 1}


async def test_signing_in_again_starts_away_while_a_tab_or_reconnect_keeps_the_status(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    first = await open_staff(server, "anna", PASSWORD)
    # A second tab, and the console reconnecting after a drop, use the same session.
    tab = await open_staff(server, "anna", PASSWORD, available=False, cookie=first.cookie)
    assert tab.hello["status"] == "available"
    await first.close()
    await tab.close()
    back = await open_staff(server, "anna", PASSWORD, available=False, cookie=first.cookie)
    assert back.hello["status"] == "available"
    visitor = await open_visitor(server)
    await visitor.start()
    await back.expect("offer", chat_id=visitor.chat_id)
    await visitor.send({"type": "end"})
    await visitor.expect("chat.ended")

    # Signing in again (the next morning, or on another computer) is a new session: away,
    # and the console still open on the first session is told why its status changed.
    signed_in = await sign_in(server, "anna", PASSWORD)
    told = await back.expect("status")
    assert (told["status"], told["reason"]) == ("away", "signed_in")
    again = await open_staff(server, "anna", PASSWORD, available=False, cookie=signed_in)
    assert again.hello["status"] == "away"
    # Away means no offers: with nobody available the visitor hears so at once.
    late = await open_visitor(server)
    await late.send({"type": "start", "line": "support", "language": "sv"})
    await late.expect("line.closed")
    await again.expect_none("offer", within=0.5)
    # Until she says she is ready, in either tab.
    await again.available()
    await back.expect("status", status="available")
    ready = await open_visitor(server)
    await ready.start()
    await again.expect("offer", chat_id=ready.chat_id)


def test_the_chats_catalogues_have_every_text_the_screens_use() -> None:
    static = Path(__file__).resolve().parents[1] / "app" / "console" / "static"
    catalogues = {
        lang: json.loads((static / "i18n" / f"{lang}.chats.json").read_text(encoding="utf-8"))
        for lang in ("en", "sv")
    }
    assert set(catalogues["en"]) == set(catalogues["sv"])
    used: set[str] = set()
    for view in ("chats.js", "supervise.js"):
        source = (static / "views" / view).read_text(encoding="utf-8")
        used |= set(re.findall(r'"((?:chats|sup)\.[a-z_.]+)"', source))
    # A counted text has its CLDR plural forms instead ("chats.colleague.one", ".other").
    assert {key for key in used if f"{key}.other" not in catalogues["en"]} - set(
        catalogues["en"]
    ) == set()
    for lang, texts in catalogues.items():
        # Every placeholder of the English text is in the translation too.
        for key, text in texts.items():
            assert set(re.findall(r"\{\w+\}", text)) == set(
                re.findall(r"\{\w+\}", catalogues["en"][key])
            ), (lang, key)


async def test_open_consoles_take_changed_canned_responses(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt, canned_responses=CANNED)
    await add_counsellor(rt, "anna")
    anna = await open_staff(server, "anna", PASSWORD, available=False)
    assert anna.hello["lines"][0]["canned_responses"] == CANNED
    changed = [*CANNED, {"language": "en", "title": "Goodbye", "text": "Take care."}]
    # As the coordinator's line editor does: save, then every process reloads.
    await add_line(rt, canned_responses=changed, wrapup_outcomes=["support given"])
    duty = await anna.expect("duty")
    (line,) = duty["lines"]
    assert line["canned_responses"] == changed
    assert line["wrapup_outcomes"] == ["support given"]
    assert line["on_duty"] is True
