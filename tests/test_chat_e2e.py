"""End to end on the embedded default: a visitor and counsellors over real WebSockets."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select

from app.broker.memory import MemoryBroker
from app.chats.entries import Entry, EntryKind
from app.kit import jsonutil
from app.kit.db import unit_of_work
from app.models import ChatStatistic, Wrapup
from app.models.enums import Qualification
from app.runtime import Runtime
from tests.conftest import REDIS_URL, ServerFactory
from tests.support.brokers import redis_dump
from tests.support.clients import (
    FrameTimeoutError,
    StaffClient,
    open_chat,
    open_staff,
    open_visitor,
)
from tests.support.held import written
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer

# The chat core on both brokers, and once on uvicorn's own WebSocket protocol.
pytestmark = [pytest.mark.both_brokers, pytest.mark.plain_asgi_too]


async def test_a_whole_chat_from_start_to_wrapup(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    anna = await open_staff(server, "anna", PASSWORD)

    visitor = await open_visitor(server)
    started = await visitor.start("support", "sv")
    assert "token" in started and started["language"] == "sv"
    position = await visitor.expect("queue.position")
    assert position["position"] == 1

    offer = await anna.expect("offer")
    assert offer["chat_id"] == visitor.chat_id
    opened = await anna.accept(visitor.chat_id)
    assert opened["state"] == "active"

    joined = await visitor.expect("counsellor.joined")
    assert joined["name"] == "Anna"
    assert "staff_id" not in joined  # never an account id towards the visitor

    await visitor.say("hej, jag behöver prata")
    got = await anna.expect("message", sender="visitor")
    assert got["text"] == "hej, jag behöver prata"

    await anna.send({"type": "typing", "chat_id": visitor.chat_id, "typing": True})
    await visitor.expect("typing", sender="counsellor", typing=True)
    await anna.say(visitor.chat_id, "Jag finns här. Berätta.")
    reply = await visitor.expect("message", sender="counsellor")
    assert reply["text"] == "Jag finns här. Berätta." and reply["name"] == "Anna"

    await visitor.send({"type": "end"})
    ended = await visitor.expect("chat.ended")
    assert ended["by"] == "visitor"
    await anna.expect("chat.ended")
    wrapup = await anna.expect("wrapup.required", chat_id=visitor.chat_id)
    assert "violence" in wrapup["topics"]
    await anna.send(
        {
            "type": "wrapup",
            "chat_id": visitor.chat_id,
            "topics": ["violence"],
            "outcome": "support given",
        }
    )
    await anna.expect("wrapup.saved", chat_id=visitor.chat_id)

    # What remains, once the hour is over: one statistics row and one wrap-up, with no
    # content and no chat id.
    await written(rt)
    async with unit_of_work(rt.sessionmaker) as session:
        stats = (await session.execute(select(ChatStatistic))).scalars().all()
        wrapups = (await session.execute(select(Wrapup))).scalars().all()
    assert len(stats) == 1 and stats[0].answered and stats[0].outcome == "answered"
    assert stats[0].hour.minute == 0 and stats[0].hour.second == 0
    assert [(w.topics, w.outcome) for w in wrapups] == [(["violence"], "support given")]
    # The broker no longer holds the chat.
    assert await rt.broker.get_chat(visitor.chat_id) is None


async def test_queue_positions_update_as_those_ahead_leave(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", capacity=1)
    anna = await open_staff(server, "anna", PASSWORD, available=False)
    await anna.send({"type": "status", "status": "available"})
    await anna.expect("status")
    first = await open_chat(server, anna)

    visitors = []
    for expected in (1, 2, 3):
        v = await open_visitor(server)
        await v.start()
        shown = await v.expect("queue.position")
        assert shown["position"] == expected
        # Anna is full and no chat has finished yet: no number is better than a guess.
        assert shown["estimated_wait_seconds"] is None and shown["soon"] is False
        visitors.append(v)
    second, third, fourth = visitors

    # The one ahead of everyone leaves the queue: the others move up.
    await second.send({"type": "end"})
    await third.expect("queue.position", position=1)
    await fourth.expect("queue.position", position=2)
    # The chat being answered ends: the first in the queue is offered, the last moves up.
    await first.send({"type": "end"})
    offer = await anna.expect("offer")
    assert offer["chat_id"] == third.chat_id
    await anna.accept(third.chat_id)
    await fourth.expect("queue.position", position=1)
    await third.expect("counsellor.joined")


async def test_an_unanswered_offer_moves_to_the_next_counsellor(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt, offer_timeout_seconds=2)
    await add_counsellor(rt, "anna")
    await add_counsellor(rt, "bo")
    anna = await open_staff(server, "anna", PASSWORD)
    bo = await open_staff(server, "bo", PASSWORD)
    visitor = await open_visitor(server)
    await visitor.start()

    first_offer = await _first_offer(anna, bo)
    first, second = (anna, bo) if first_offer is anna else (bo, anna)
    offer = await second.expect("offer", timeout=8)
    assert offer["chat_id"] == visitor.chat_id
    withdrawn = await first.expect("offer.withdrawn", chat_id=visitor.chat_id)
    assert withdrawn["reason"] == "expired"
    # The lapsed offer cannot be accepted any more.
    await first.send({"type": "accept", "chat_id": visitor.chat_id})
    assert (await first.expect("error"))["code"] == "offer_expired"
    await second.accept(visitor.chat_id)
    await visitor.expect("counsellor.joined")


async def _first_offer(*clients: StaffClient) -> StaffClient:
    for _ in range(100):
        for client in clients:
            try:
                await client.expect("offer", timeout=0.05)
            except FrameTimeoutError:
                continue
            return client
    raise AssertionError("nobody got an offer")


async def test_capacity_holds_with_three_counsellors_and_ten_visitors(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt, max_queue_length=20, offer_timeout_seconds=30)
    staff = []
    for name in ("anna", "bo", "cleo"):
        await add_counsellor(rt, name, capacity=2)
        staff.append(await open_staff(server, name, PASSWORD))
    visitors = []
    for _ in range(10):
        v = await open_visitor(server)
        await v.start()
        visitors.append(v)

    async def accept_all(client: StaffClient) -> list[str]:
        accepted: list[str] = []
        while True:
            try:
                offer = await client.expect("offer", timeout=1.5)
            except FrameTimeoutError:
                return accepted
            await client.accept(offer["chat_id"])
            accepted.append(offer["chat_id"])

    accepted = await asyncio.gather(*(accept_all(c) for c in staff))
    # Each counsellor's own view: never more than their capacity.
    assert [len(a) for a in accepted] == [2, 2, 2]
    assert len({chat for chats in accepted for chat in chats}) == 6
    loads = await rt.broker.staff_loads([c.staff_id for c in staff])
    assert sorted(loads.values()) == [2, 2, 2]
    assert await rt.broker.queue_length("support") == 4
    waiting = [v for v in visitors if v.chat_id not in {c for a in accepted for c in a}]
    # Positions count down as chats leave the queue, and pushes may skip a step;
    # each waiting visitor, in the order they came, ends at their own place.
    assert len(waiting) == 4
    for place, v in enumerate(waiting, start=1):
        await v.expect("queue.position", position=place)

    # A chat ends; exactly one waiting chat is offered to the freed counsellor.
    chat_id = accepted[0][0]
    await staff[0].send({"type": "end", "chat_id": chat_id})
    offer = await staff[0].expect("offer")
    assert offer["chat_id"] in {v.chat_id for v in waiting}
    await staff[1].expect_none("offer", within=0.5)


async def test_visitor_resumes_with_nothing_lost_or_doubled(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_chat(server, anna)
    chat_id = visitor.chat_id
    await visitor.expect("counsellor.joined")
    await visitor.say("one")
    await anna.say(chat_id, "two")
    last = await visitor.expect("message", text="two")

    # The visitor's network drops mid-conversation.
    await visitor.close()
    away = await anna.expect("visitor.away", chat_id=chat_id)
    assert away["grace_until"] > 0
    await anna.say(chat_id, "three")
    await anna.say(chat_id, "four")

    back = await open_visitor(server)
    await back.send(
        {"type": "resume", "chat_id": chat_id, "token": visitor.token, "last_seq": last["seq"]}
    )
    resumed = await back.expect("chat.resumed")
    assert resumed["state"] == "active" and resumed["counsellor"] == {"name": "Anna"}
    three = await back.expect("message", text="three")
    four = await back.expect("message", text="four")
    assert four["seq"] == three["seq"] + 1
    await anna.expect("visitor.back", chat_id=chat_id)
    # Re-sending a message whose ack was lost stores it once.
    first = await back.say("five", client_id="c-5")
    again = await back.say("five", client_id="c-5")
    assert again["duplicate"] and again["seq"] == first["seq"]
    await anna.expect("message", text="five")
    await anna.expect_none("message", within=0.5, text="five")
    await back.say("six")
    texts = [f["text"] for f in back.seen("message")]
    assert texts == ["three", "four"]  # own messages are acknowledged, not echoed
    entries = await rt.transcript.read(chat_id, 0)
    assert [e.text for _, e in entries if e.kind.value == "message"] == [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
    ]
    assert [seq for seq, _ in entries] == list(range(1, len(entries) + 1))


async def test_a_burst_of_messages_keeps_its_order_while_the_counsellor_writes(
    server: RunningServer,
) -> None:
    """A visitor's messages are read without waiting for each other's answers, and those read
    together are stored together. With the counsellor writing at the same moment, each is
    stored once, in the order sent, and acknowledged in that order; an end sent right after a
    burst comes after all of it."""
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_visitor(server)
    await visitor.start()
    chat_id = visitor.chat_id
    await anna.accept_offer()
    await visitor.expect("counsellor.joined")

    def message(i: int) -> dict[str, str]:
        return {"type": "message", "text": f"v{i}", "client_id": f"c-{i}"}

    async def visitor_burst() -> None:
        for i in range(12):
            await visitor.send(message(i))
        await visitor.send(message(3))  # a resend inside the burst

    async def counsellor_burst() -> None:
        for i in range(6):
            await anna.send({"type": "message", "chat_id": chat_id, "text": f"a{i}"})

    await asyncio.gather(visitor_burst(), counsellor_burst())
    acks = [await visitor.expect("message.ack") for _ in range(13)]
    assert [a["client_id"] for a in acks] == [f"c-{i}" for i in range(12)] + ["c-3"]
    seqs = [a["seq"] for a in acks[:12]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 12
    assert acks[12]["duplicate"] and acks[12]["seq"] == acks[3]["seq"]
    shown = [await anna.expect("message", sender="visitor") for _ in range(12)]
    assert [m["text"] for m in shown] == [f"v{i}" for i in range(12)]
    assert [m["seq"] for m in shown] == seqs
    await anna.expect_none("message", within=0.3, sender="visitor")
    entries = [(seq, e) for seq, e in await rt.transcript.read(chat_id, 0) if e.text]
    assert [e.text for _, e in entries if e.sender == "visitor"] == [f"v{i}" for i in range(12)]
    assert sorted(e.text or "" for _, e in entries if e.sender == "counsellor") == [
        f"a{i}" for i in range(6)
    ]
    assert len({seq for seq, _ in entries}) == 18

    await asyncio.sleep(1)  # the visitor's frame allowance refills
    for i in range(12, 15):
        await visitor.send(message(i))
    await visitor.send({"type": "end"})
    got = [await anna.expect(frozenset({"message", "chat.ended"})) for _ in range(4)]
    assert [f.get("text") for f in got] == ["v12", "v13", "v14", None]
    assert got[3]["type"] == "chat.ended"


async def test_messages_written_while_a_counsellors_entry_is_on_its_way_are_stored_after_it(
    server: RunningServer,
) -> None:
    """The counsellor's entry is stored but the visitor's connection has not heard of it (on
    Redis it is still crossing from the other process): the visitor's next messages, a
    burst, are each stored once, after it and in order, and acknowledged in order."""
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_visitor(server)
    await visitor.start()
    chat_id = visitor.chat_id
    await anna.accept_offer()
    await visitor.expect("counsellor.joined")
    first = await visitor.say("before")
    await anna.expect("message", text="before")
    # Stored, and announced to no one: the visitor's connection still counts from `first`.
    crossing = Entry(EntryKind.message, rt.broker.now(), sender="counsellor", text="crossing")
    key = await rt.transcript.key(chat_id)
    assert key is not None
    stored = first["seq"] + 1
    sealed = key.seal(stored, jsonutil.dumpb(crossing.to_dict()))
    assert await rt.broker.append(chat_id, [(stored, sealed, None, None)]) == [(stored, "ok")]
    for i in range(3):
        await visitor.send({"type": "message", "text": f"v{i}", "client_id": f"c-{i}"})
    acks = [await visitor.expect("message.ack") for _ in range(3)]
    assert [a["client_id"] for a in acks] == ["c-0", "c-1", "c-2"]
    assert [a["seq"] for a in acks] == [stored + 1, stored + 2, stored + 3]
    assert not any(a["duplicate"] for a in acks)
    shown = [await anna.expect("message", sender="visitor") for _ in range(3)]
    assert [(m["text"], m["seq"]) for m in shown] == [
        ("v0", stored + 1),
        ("v1", stored + 2),
        ("v2", stored + 3),
    ]
    entries = await rt.transcript.read(chat_id, first["seq"])
    assert [(seq, e.text) for seq, e in entries] == [
        (stored, "crossing"),
        (stored + 1, "v0"),
        (stored + 2, "v1"),
        (stored + 3, "v2"),
    ]


async def test_resume_with_a_wrong_token_changes_nothing(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_visitor(server)
    await visitor.start()
    # Routing runs in the background: take the snapshot once the chat has settled (offered).
    await anna.expect("offer", chat_id=visitor.chat_id)
    before = await rt.broker.get_chat(visitor.chat_id)
    intruder = await open_visitor(server)
    await intruder.send(
        {"type": "resume", "chat_id": visitor.chat_id, "token": "x" * 43, "last_seq": 0}
    )
    assert (await intruder.expect("error"))["code"] == "invalid_resume"
    await intruder.send({"type": "resume", "chat_id": "nonexistent-chat", "token": "x" * 43})
    assert (await intruder.expect("error"))["code"] == "invalid_resume"
    await intruder.send({"type": "message", "text": "let me in"})
    assert (await intruder.expect("error"))["code"] == "not_allowed_now"
    assert await rt.broker.get_chat(visitor.chat_id) == before


async def test_a_counsellor_who_drops_and_does_not_return_sends_the_chat_to_the_head(
    lykta: ServerFactory,
) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt, counsellor_grace_seconds=1)
        await add_counsellor(rt, "anna", capacity=1)
        await add_counsellor(rt, "bo", capacity=1)
        anna = await open_staff(server, "anna", PASSWORD)
        # Bo is signed in but away, so the line stays staffed while Anna is gone.
        bo = await open_staff(server, "bo", PASSWORD, available=False)
        dropped = await open_chat(server, anna)
        await dropped.expect("counsellor.joined")
        await dropped.say("are you there?")
        others = []
        for _ in range(2):
            v = await open_visitor(server)
            await v.start()
            others.append(v)

        await anna.close()
        left = await dropped.expect("counsellor.left", timeout=8)
        assert left["reason"] == "counsellor_disconnected"
        await dropped.expect("queue.position", position=1)
        await others[0].expect("queue.position", position=2)

        await bo.available()
        offer = await bo.expect("offer")
        assert offer["chat_id"] == dropped.chat_id
        await bo.accept(dropped.chat_id)
        history = await bo.expect("message", text="are you there?")
        assert history["sender"] == "visitor"
        await dropped.expect("counsellor.joined", name="Bo")


async def test_a_counsellor_back_within_grace_keeps_the_chat(lykta: ServerFactory) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt, counsellor_grace_seconds=30)
        await add_counsellor(rt, "anna")
        anna = await open_staff(server, "anna", PASSWORD)
        visitor = await open_chat(server, anna)
        await anna.say(visitor.chat_id, "hello")
        await anna.close()
        await visitor.say("still there?")
        # The console reconnects with its session (a new sign-in would start away).
        again = await open_staff(server, "anna", PASSWORD, available=False, cookie=anna.cookie)
        assert [c["chat_id"] for c in again.hello["chats"]] == [visitor.chat_id]
        assert again.hello["status"] == "available"
        await again.send({"type": "sync", "chat_id": visitor.chat_id, "last_seq": 2})
        missed = await again.expect("message", sender="visitor")
        assert missed["text"] == "still there?"
        await again.expect("synced", chat_id=visitor.chat_id)
        await again.say(visitor.chat_id, "yes")
        await visitor.expect("message", text="yes")
        await visitor.expect_none("counsellor.left", within=0.5)


async def test_transfer_to_another_line_keeps_the_transcript_and_hides_the_note(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_line(rt, "youth", required_qualification="volunteer")
    await add_counsellor(rt, "anna")
    await add_counsellor(rt, "cleo", lines=("youth",), qualification=Qualification.volunteer)
    anna = await open_staff(server, "anna", PASSWORD)
    cleo = await open_staff(server, "cleo", PASSWORD)
    visitor = await open_chat(server, anna)
    await visitor.say("I am 17")
    await anna.send(
        {
            "type": "transfer",
            "chat_id": visitor.chat_id,
            "line": "youth",
            "note": "Young visitor, wants the youth line",
        }
    )
    released = await anna.expect("chat.released", chat_id=visitor.chat_id)
    assert released["reason"] == "transferred"
    left = await visitor.expect("counsellor.left")
    assert left["reason"] == "transferred"

    offer = await cleo.expect("offer", chat_id=visitor.chat_id)
    assert offer["transfer"] is True and offer["line"] == "youth"
    await cleo.accept(visitor.chat_id)
    assert (await cleo.expect("message", sender="visitor"))["text"] == "I am 17"
    note = await cleo.expect("note")
    assert note["text"] == "Young visitor, wants the youth line" and note["name"] == "Anna"
    await visitor.expect("counsellor.joined", name="Cleo")
    # Anna no longer reaches the chat.
    await anna.send({"type": "message", "chat_id": visitor.chat_id, "text": "still me"})
    assert (await anna.expect("error"))["code"] == "not_in_chat"
    # The note never reached the visitor, live or on resume.
    assert visitor.seen("note") == []
    again = await open_visitor(server)
    await again.send(
        {"type": "resume", "chat_id": visitor.chat_id, "token": visitor.token, "last_seq": 0}
    )
    await again.expect("chat.resumed")
    await again.expect("counsellor.joined", name="Cleo")
    assert all("Young visitor" not in str(f) for f in again.received)


async def test_transfer_to_a_named_colleague(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    await add_counsellor(rt, "bo")
    await add_counsellor(rt, "dag")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_chat(server, anna)
    bo = await open_staff(server, "bo", PASSWORD)
    dag = await open_staff(server, "dag", PASSWORD)
    await anna.send(
        {
            "type": "transfer",
            "chat_id": visitor.chat_id,
            "staff_id": bo.staff_id,
            "note": "Bo knows housing",
        }
    )
    await bo.expect("offer", chat_id=visitor.chat_id)
    await dag.expect_none("offer", within=0.5)
    await bo.accept(visitor.chat_id)
    await visitor.expect("counsellor.joined", name="Bo")
    # Transfers to oneself or to someone not available are refused and change nothing.
    await bo.send({"type": "transfer", "chat_id": visitor.chat_id, "staff_id": bo.staff_id})
    assert (await bo.expect("error"))["code"] == "invalid_transfer"
    await dag.send({"type": "status", "status": "away"})
    await bo.send({"type": "transfer", "chat_id": visitor.chat_id, "staff_id": dag.staff_id})
    assert (await bo.expect("error"))["code"] == "staff_unavailable"
    await bo.send({"type": "transfer", "chat_id": visitor.chat_id, "line": "nowhere"})
    assert (await bo.expect("error"))["code"] == "invalid_transfer"
    record = await rt.broker.get_chat(visitor.chat_id)
    assert record is not None and record.state.value == "active" and record.counsellor_alias == "Bo"


async def test_a_closed_line_says_so_at_once_with_alternatives(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", on_duty=False)
    await open_staff(server, "anna", PASSWORD)  # signed in and available, but not on duty
    visitor = await open_visitor(server)
    await visitor.send({"type": "start", "line": "support", "language": "en"})
    closed = await visitor.expect("line.closed")
    assert closed["reason"] == "closed"
    assert closed["message"] == "Closed right now."
    assert closed["alternatives"] == "Call 112 in an emergency."
    assert closed["opening_hours"] == "Mon-Thu 18-21"
    assert await rt.broker.queue_length("support") == 0
    await _wait_for_stats(rt, 1)
    async with unit_of_work(rt.sessionmaker) as session:
        outcomes = [s.outcome for s in (await session.execute(select(ChatStatistic))).scalars()]
    assert outcomes == ["closed"]
    # The same connection may try again later.
    await visitor.send({"type": "start", "line": "support", "language": "sv"})
    assert (await visitor.expect("line.closed"))["message"] == "Stängt just nu."


async def test_a_full_queue_says_so_at_once(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt, max_queue_length=2)
    await add_counsellor(rt, "anna", capacity=1)
    anna = await open_staff(server, "anna", PASSWORD)
    await open_chat(server, anna)
    for _ in range(2):
        await (await open_visitor(server)).start()
    late = await open_visitor(server)
    await late.send({"type": "start", "line": "support", "language": "sv"})
    full = await late.expect("line.closed")
    assert full["reason"] == "full" and full["alternatives"] == "Ring 112 vid fara."
    assert await rt.broker.queue_length("support") == 2


async def test_waiting_visitors_are_told_when_the_last_counsellor_leaves(
    lykta: ServerFactory,
) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt, counsellor_grace_seconds=1)
        await add_counsellor(rt, "anna", capacity=1)
        anna = await open_staff(server, "anna", PASSWORD)
        await open_chat(server, anna)
        waiting = await open_visitor(server)
        await waiting.start()
        await anna.close()
        closed = await waiting.expect("line.closed", timeout=8)
        assert closed["alternatives"] == "Ring 112 vid fara."
        ended = await waiting.expect("chat.ended")
        assert ended["reason"] == "line_closed"


async def test_a_visitor_who_does_not_return_ends_the_chat(lykta: ServerFactory) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt, visitor_grace_seconds=1)
        await add_counsellor(rt, "anna")
        anna = await open_staff(server, "anna", PASSWORD)
        visitor = await open_chat(server, anna)
        await visitor.close()
        await anna.expect("visitor.away")
        ended = await anna.expect("chat.ended", timeout=8)
        assert ended["reason"] == "visitor_left" and ended["by"] == "system"
        await anna.expect("wrapup.required", chat_id=visitor.chat_id)
        # Capacity is free again.
        assert await rt.broker.staff_loads([anna.staff_id]) == {anna.staff_id: 0}


async def test_missed_offers_set_the_counsellor_away(lykta: ServerFactory) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt, offer_timeout_seconds=2)
        await add_counsellor(rt, "anna")
        anna = await open_staff(server, "anna", PASSWORD)
        visitor = await open_visitor(server)
        await visitor.start()
        await anna.expect("offer")
        await anna.expect("offer.withdrawn", timeout=8)
        # Asked again after one more timeout, missed again: set away, and told.
        await anna.expect("offer", timeout=8)
        status = await anna.expect("status", status="away", timeout=8)
        assert status["reason"] == "missed_offers"


async def test_declining_passes_the_chat_on(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_visitor(server)
    await visitor.start()
    await anna.expect("offer")
    await add_counsellor(rt, "bo")
    bo = await open_staff(server, "bo", PASSWORD)
    await anna.send({"type": "decline", "chat_id": visitor.chat_id})
    await anna.expect("offer.withdrawn", reason="declined")
    await bo.expect("offer", chat_id=visitor.chat_id)
    # Declining an offer that is not yours is refused.
    await anna.send({"type": "decline", "chat_id": visitor.chat_id})
    assert (await anna.expect("error"))["code"] == "offer_not_found"


async def test_a_counsellor_handles_several_chats_and_each_visitor_sees_only_their_own(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", capacity=3)
    anna = await open_staff(server, "anna", PASSWORD)
    visitors = []
    for _ in range(3):
        v = await open_chat(server, anna)
        visitors.append(v)
    for index, v in enumerate(visitors):
        await anna.say(v.chat_id, f"only for {index}")
    for index, v in enumerate(visitors):
        got = await v.expect("message", sender="counsellor")
        assert got["text"] == f"only for {index}"
        await v.expect_none("message", within=0.2)


async def _wait_for_stats(rt: Runtime, count: int) -> None:
    """The statistics rows, written as once their hour is over."""
    for _ in range(100):
        await written(rt)
        async with unit_of_work(rt.sessionmaker) as session:
            rows = (await session.execute(select(ChatStatistic))).scalars().all()
        if len(rows) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("statistics rows were not held")


async def test_an_old_connection_closing_late_does_not_end_a_resumed_chat(
    lykta: ServerFactory,
) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt, visitor_grace_seconds=2)
        await add_counsellor(rt, "anna")
        anna = await open_staff(server, "anna", PASSWORD)
        visitor = await open_chat(server, anna)
        # The visitor's phone switched networks: the new connection resumes while the old
        # one is still open, and the old one is only noticed closed afterwards.
        again = await open_visitor(server)
        await again.send(
            {"type": "resume", "chat_id": visitor.chat_id, "token": visitor.token, "last_seq": 0}
        )
        await again.expect("chat.resumed")
        # The counsellor hears the visitor went and came back (never "back" alone) ...
        await anna.expect("visitor.away", chat_id=visitor.chat_id)
        await anna.expect("visitor.back", chat_id=visitor.chat_id)
        await visitor.close()
        # ... and the new connection holds the chat's lease: the old one closing is no
        # departure, so the counsellor is not told the visitor went away again.
        await anna.expect_none("visitor.away", within=2, chat_id=visitor.chat_id)
        await anna.expect_none("chat.ended", within=3)
        await again.say("still here")
        await anna.expect("message", text="still here")


async def test_client_ids_are_kept_only_as_keyed_hashes(
    server: RunningServer, broker_kind: str, redis_prefix: str
) -> None:
    """What a client chose as a message's id is not in the broker in plain text, and a resend
    of the message is still stored once (the keyed hash finds it)."""
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_chat(server, anna)
    chat_id = visitor.chat_id
    await visitor.expect("counsellor.joined")
    mine, theirs = f"visitor-id-{uuid.uuid4().hex}", f"staff-id-{uuid.uuid4().hex}"
    first = await visitor.say("hello", client_id=mine)
    said = await anna.say(chat_id, "hello to you", client_id=theirs)

    if broker_kind == "redis":
        held = await redis_dump(REDIS_URL, redis_prefix)
    else:
        assert isinstance(rt.broker, MemoryBroker)
        held = rt.broker.dump()
    assert f"{chat_id}".encode() in held  # the dump is of this chat's broker
    for client_id in (mine, theirs):
        assert client_id.encode() not in held
        assert client_id[-16:].encode() not in held

    again = await visitor.say("hello", client_id=mine)
    assert again["duplicate"] and again["seq"] == first["seq"]
    repeated = await anna.say(chat_id, "hello to you", client_id=theirs)
    assert repeated["duplicate"] and repeated["seq"] == said["seq"]
    entries = await rt.transcript.read(chat_id, 0)
    assert [e.text for _, e in entries if e.kind is EntryKind.message] == [
        "hello",
        "hello to you",
    ]
