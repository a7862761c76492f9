"""Supervisors: list live chats, observe silently, whisper (never to the visitor), take over."""

from __future__ import annotations

import json
from typing import Any

from app.audit.repository import AuditFilter
from app.audit.service import audit_service
from app.chats.entries import EntryKind
from app.kit.db import unit_of_work
from app.models.enums import Qualification
from tests.support.clients import StaffClient, VisitorClient, open_chat, open_staff, open_visitor
from tests.support.held import written
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer

WHISPER = "Ask whether she is safe tonight"


async def chat_with_supervisor(
    server: RunningServer,
) -> tuple[StaffClient, StaffClient, VisitorClient]:
    rt = server.runtime
    await add_line(rt)
    await add_line(rt, "youth", required_qualification="volunteer")
    await add_counsellor(rt, "anna", alias="Anna")
    # Bo supervises the support line and is not available for chats of his own.
    await add_counsellor(rt, "bo", alias="Bo", supervisor=True, capacity=2)
    anna = await open_staff(server, "anna", PASSWORD)
    bo = await open_staff(server, "bo", PASSWORD, available=False)
    visitor = await open_chat(server, anna)
    await visitor.expect("counsellor.joined")
    await visitor.say("I don't know where to start")
    await anna.expect("message", sender="visitor")
    return anna, bo, visitor


# Random ids and tokens, which may spell a short name by chance ("…Bo…" in a token).
RANDOM_FIELDS = frozenset({"chat_id", "token", "client_id"})


def texts(frames: list[dict[str, Any]], without: frozenset[str] = frozenset()) -> str:
    kept = [{k: v for k, v in frame.items() if k not in without} for frame in frames]
    return json.dumps(kept, ensure_ascii=False)


async def test_a_supervisor_observes_silently_and_whispers_only_to_the_counsellor(
    server: RunningServer,
) -> None:
    anna, bo, visitor = await chat_with_supervisor(server)
    chat = visitor.chat_id
    await bo.send({"type": "live"})
    live = (await bo.expect("live.chats"))["chats"]
    assert [(c["chat_id"], c["state"], c["counsellor"]["alias"]) for c in live] == [
        (chat, "active", "Anna")
    ]
    assert "text" not in texts(live)

    await bo.send({"type": "observe", "chat_id": chat})
    observing = await bo.expect("chat.observing", chat_id=chat)
    assert observing["observing"] is True
    # The transcript so far, then live.
    assert (await bo.expect("message", sender="visitor"))["text"] == "I don't know where to start"
    await visitor.say("he takes my phone")
    assert (await bo.expect("message", sender="visitor"))["text"] == "he takes my phone"

    await bo.send({"type": "whisper", "chat_id": chat, "text": WHISPER})
    ack = await bo.expect("whisper.ack", chat_id=chat)
    whisper = await anna.expect("whisper", chat_id=chat)
    assert whisper["text"] == WHISPER and whisper["name"] == "Bo"
    assert whisper["seq"] == ack["seq"]
    await anna.say(chat, "Are you safe tonight?")
    got = await visitor.expect("message", sender="counsellor")
    assert got["text"] == "Are you safe tonight?"
    # The whisper is in the transcript (staff see it on replay) ...
    entries = await server.runtime.transcript.read(chat, 0)
    assert [e.text for _, e in entries if e.kind is EntryKind.whisper] == [WHISPER]
    # ... and never reached the visitor live; nobody told the visitor of the observer.
    assert WHISPER not in texts(visitor.received)
    assert "Bo" not in texts(visitor.received, without=RANDOM_FIELDS)
    assert visitor.seen("whisper") == []

    # Resume from the start: the replay has everything but the whisper.
    await visitor.close()
    again = await open_visitor(server)
    await again.send({"type": "resume", "chat_id": chat, "token": visitor.token, "last_seq": 0})
    await again.expect("chat.resumed")
    await again.expect("message", text="Are you safe tonight?")
    assert WHISPER not in texts(again.received)
    # Numbered as the visitor sees them: no gap where the whisper is.
    shown = [f["seq"] for f in again.received if "seq" in f]
    assert shown == list(range(1, 1 + sum(e.kind is not EntryKind.whisper for _, e in entries)))

    # A whisper while the visitor is away, then a message: on resume the gap is filled
    # from the broker, and the whisper stays out of it.
    last = max(f["seq"] for f in again.received if "seq" in f)
    await again.close()
    await bo.send({"type": "whisper", "chat_id": chat, "text": "second " + WHISPER})
    await bo.expect("whisper.ack")
    await anna.say(chat, "Take your time.")
    third = await open_visitor(server)
    await third.send({"type": "resume", "chat_id": chat, "token": visitor.token, "last_seq": last})
    assert (await third.expect("message", text="Take your time."))["seq"] == last + 1
    assert (await third.say("ok"))["seq"] == last + 2
    assert WHISPER not in texts(third.received)

    await written(server.runtime, at_least=4)
    async with unit_of_work(server.runtime.sessionmaker) as session:
        entries_log = await audit_service.search(
            session, AuditFilter(chat_id=chat), limit=50, offset=0
        )
    actions = sorted((e.action, e.line_key) for e in entries_log)
    assert actions == [
        ("chat.accepted", "support"),
        ("chat.observed", "support"),
        ("chat.whispered", "support"),
        ("chat.whispered", "support"),
    ]
    for entry in entries_log:
        # A chat leaves no timestamp finer than the hour, in the audit log too.
        assert (entry.at.minute, entry.at.second, entry.at.microsecond) == (0, 0, 0)
        assert WHISPER not in json.dumps(entry.detail)


async def test_a_supervisor_takes_over_a_chat(server: RunningServer) -> None:
    anna, bo, visitor = await chat_with_supervisor(server)
    chat = visitor.chat_id
    await bo.send({"type": "observe", "chat_id": chat})
    await bo.expect("chat.observing")
    await bo.send({"type": "takeover", "chat_id": chat})
    released = await anna.expect("chat.released", chat_id=chat)
    assert released["reason"] == "taken_over"
    opened = await bo.expect("chat.opened", chat_id=chat)
    assert opened["state"] == "active"
    joined = await visitor.expect("counsellor.joined")
    assert joined["name"] == "Bo"
    await bo.say(chat, "Hi, I'm Bo. I'm here now.")
    assert (await visitor.expect("message", sender="counsellor"))["name"] == "Bo"
    await visitor.say("thank you")
    await bo.expect("message", sender="visitor", text="thank you")
    await anna.send({"type": "message", "chat_id": chat, "text": "still me"})
    assert (await anna.expect("error"))["code"] == "not_in_chat"
    record = await server.runtime.broker.get_chat(chat)
    assert record is not None and record.counsellor_id == bo.staff_id
    loads = await server.runtime.broker.staff_loads([anna.staff_id, bo.staff_id])
    assert loads == {anna.staff_id: 0, bo.staff_id: 1}
    # Bo owes the wrap-up now.
    await bo.send({"type": "end", "chat_id": chat})
    await bo.expect("wrapup.required", chat_id=chat)
    await written(server.runtime, at_least=4)  # accepted, observed, taken over, statistics
    async with unit_of_work(server.runtime.sessionmaker) as session:
        taken = await audit_service.search(
            session, AuditFilter(action="chat.taken_over"), limit=5, offset=0
        )
    assert [(e.chat_id, e.line_key, str(e.actor_id)) for e in taken] == [
        (chat, "support", bo.staff_id)
    ]


async def test_supervision_stays_on_the_supervisors_lines_and_live_chats(
    server: RunningServer,
) -> None:
    anna, bo, visitor = await chat_with_supervisor(server)
    await add_counsellor(
        server.runtime, "cleo", lines=("youth",), qualification=Qualification.volunteer
    )
    cleo = await open_staff(server, "cleo", PASSWORD)
    youth_visitor = await open_visitor(server)
    await youth_visitor.start(line="youth")
    other = youth_visitor.chat_id
    await cleo.accept_offer()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "observe", "chat_id": other}, "forbidden"),
        ({"type": "whisper", "chat_id": other, "text": "x"}, "forbidden"),
        ({"type": "takeover", "chat_id": other}, "forbidden"),
        ({"type": "observe", "chat_id": "nosuchchat00"}, "not_in_chat"),
        ({"type": "unobserve", "chat_id": visitor.chat_id}, "not_in_chat"),
        ({"type": "whisper", "chat_id": visitor.chat_id, "text": "   "}, "empty_message"),
        ({"type": "whisper", "chat_id": visitor.chat_id, "text": "w" * 4001}, "message_too_long"),
    ]
    for frame, code in cases:
        await bo.send(frame)
        error = await bo.expect("error")
        assert error["code"] == code, (frame, error)
    await bo.send({"type": "live"})
    live = (await bo.expect("live.chats"))["chats"]
    assert [c["chat_id"] for c in live] == [visitor.chat_id]
    # A whisper needs someone to whisper to: an offered chat has no counsellor yet.
    queued = await open_visitor(server)
    await queued.start()
    await anna.expect("offer", chat_id=queued.chat_id)
    await bo.send({"type": "whisper", "chat_id": queued.chat_id, "text": "hello?"})
    assert (await bo.expect("error"))["code"] == "invalid_state"
    # Unobserving stops the flow.
    await bo.send({"type": "observe", "chat_id": visitor.chat_id})
    await bo.expect("chat.observing")
    await bo.send({"type": "unobserve", "chat_id": visitor.chat_id})
    await bo.expect("chat.unobserved", chat_id=visitor.chat_id)
    bo.drain()
    await visitor.say("are you there")
    await anna.expect("message", text="are you there")
    await bo.expect_none("message", within=0.3)
