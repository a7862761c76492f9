"""Sequence numbers as each side sees them: a visitor's count only what the visitor sees, so
nothing in them tells that a note or a whisper was written; staff see every entry."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.chats.channels import chat_channel
from tests.support.clients import (
    StaffClient,
    VisitorClient,
    open_chat,
    open_staff,
    open_visitor,
)
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer

pytestmark = pytest.mark.both_brokers

Frame = dict[str, Any]
ENTRIES = frozenset({"message", "counsellor.joined", "counsellor.left", "chat.ended"})


def visitor_numbers(frames: list[Frame]) -> list[int]:
    """The numbers a visitor was given, in the order it got them: its entries and the
    acknowledgements of its own messages."""
    return [
        int(f["seq"]) for f in frames if f.get("type") in ENTRIES | {"message.ack"} and "seq" in f
    ]


async def staff_aside(anna: StaffClient, bo: StaffClient, chat_id: str, text: str) -> None:
    """A note by the counsellor and a whisper by the supervisor: entries only staff see."""
    await anna.send({"type": "note", "chat_id": chat_id, "text": f"note: {text}"})
    await anna.expect("note", chat_id=chat_id, text=f"note: {text}")
    await bo.send({"type": "whisper", "chat_id": chat_id, "text": f"whisper: {text}"})
    await bo.expect("whisper.ack", chat_id=chat_id)
    await anna.expect("whisper", chat_id=chat_id, text=f"whisper: {text}")


async def resume(server: RunningServer, old: VisitorClient, last_seq: int) -> VisitorClient:
    back = await open_visitor(server)
    back.chat_id, back.token = old.chat_id, old.token
    await back.send(
        {"type": "resume", "chat_id": old.chat_id, "token": old.token, "last_seq": last_seq}
    )
    return back


async def test_a_visitor_numbers_only_what_it_sees_live_and_on_resume(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    await add_counsellor(rt, "bo", alias="Bo", supervisor=True)
    anna = await open_staff(server, "anna", PASSWORD)
    bo = await open_staff(server, "bo", PASSWORD, available=False)
    visitor = await open_chat(server, anna)
    chat = visitor.chat_id
    await visitor.expect("counsellor.joined")
    await bo.send({"type": "observe", "chat_id": chat})
    await bo.expect("chat.observing", chat_id=chat)

    # Live: staff-only entries between everything the visitor sees.
    await staff_aside(anna, bo, chat, "first")
    await visitor.say("one", client_id="c-one")
    await staff_aside(anna, bo, chat, "second")
    await anna.say(chat, "two")
    await visitor.expect("message", text="two")
    await staff_aside(anna, bo, chat, "third")
    await visitor.say("three", client_id="c-three")
    await anna.say(chat, "four")
    await visitor.expect("message", text="four")
    assert visitor_numbers(visitor.received) == [1, 2, 3, 4, 5]
    # A resend of a message stored before is acknowledged with the number it was given.
    again = await visitor.say("one", client_id="c-one")
    assert again["duplicate"] and again["seq"] == 2

    # The visitor drops; more is written, for both sides, while it is away.
    await visitor.close()
    await anna.expect("visitor.away", chat_id=chat)
    await staff_aside(anna, bo, chat, "fourth")
    await anna.say(chat, "five")
    await staff_aside(anna, bo, chat, "fifth")
    await anna.say(chat, "six")

    back = await resume(server, visitor, 5)
    resumed = await back.expect("chat.resumed")
    assert resumed["last_seq"] == 7
    assert (await back.expect("message", text="five"))["seq"] == 6
    assert (await back.expect("message", text="six"))["seq"] == 7
    await staff_aside(anna, bo, chat, "sixth")
    assert (await back.say("seven"))["seq"] == 8
    await anna.say(chat, "eight")
    assert (await back.expect("message", text="eight"))["seq"] == 9
    assert visitor_numbers(back.received) == [6, 7, 8, 9]
    await back.close()

    # The whole chat again, from the start: the same numbers, none missing.
    again_back = await resume(server, visitor, 0)
    await again_back.expect("chat.resumed", last_seq=9)
    await again_back.expect("message", text="eight")
    got = [(f["type"], f.get("text"), f["seq"]) for f in again_back.received if "seq" in f]
    assert got == [
        ("counsellor.joined", None, 1),
        ("message", "one", 2),
        ("message", "two", 3),
        ("message", "three", 4),
        ("message", "four", 5),
        ("message", "five", 6),
        ("message", "six", 7),
        ("message", "seven", 8),
        ("message", "eight", 9),
    ]
    assert all("note" not in str(f) and "whisper" not in str(f) for f in again_back.received)
    await staff_aside(anna, bo, chat, "last")
    stored = await rt.transcript.read(chat, 0)
    await again_back.send({"type": "end"})
    assert (await again_back.expect("chat.ended"))["seq"] == 10

    # Staff keep the chat's own numbering, notes and whispers included.
    ended = await anna.expect("chat.ended", chat_id=chat)
    assert ended["seq"] == len(stored) + 1 > 10
    staff_seen = [f["seq"] for f in anna.received if f.get("chat_id") == chat and "seq" in f]
    assert sorted(staff_seen) == list(range(1, len(stored) + 2))


async def test_an_entry_before_a_reconnected_consoles_sync_is_not_sent_twice(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt, counsellor_grace_seconds=30)
    await add_counsellor(rt, "anna", alias="Anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_chat(server, anna)
    chat = visitor.chat_id
    await visitor.expect("counsellor.joined")
    await visitor.say("one")
    await anna.expect("message", text="one")
    await anna.say(chat, "two")
    had = max(f["seq"] for f in anna.received if f.get("chat_id") == chat and "seq" in f)
    await anna.close()
    await visitor.say("while the console is away")

    # The console reconnects with its session; before its `sync` is handled, a live entry
    # reaches the new connection (a listener of the chat in the same process, added after
    # it, hears the entry once the connection has).
    again = await open_staff(server, "anna", PASSWORD, available=False, cookie=anna.cookie)
    assert [c["chat_id"] for c in again.hello["chats"]] == [chat]
    heard = asyncio.Event()

    def listener(event: dict[str, Any]) -> None:
        if event.get("type") == "entry":
            heard.set()

    await rt.broker.subscribe(chat_channel(chat), listener)
    try:
        await visitor.say("live before the sync")
        await asyncio.wait_for(heard.wait(), 10)
    finally:
        await rt.broker.unsubscribe(chat_channel(chat), listener)
    await again.send({"type": "sync", "chat_id": chat, "last_seq": had})
    await again.expect("synced", chat_id=chat)
    await visitor.say("after the sync")
    await again.expect("message", text="after the sync")
    # Everything after what the console had, once; nothing it had.
    got = sorted((f["seq"], f["text"]) for f in again.received if f.get("type") == "message")
    assert got == [
        (had + 1, "while the console is away"),
        (had + 2, "live before the sync"),
        (had + 3, "after the sync"),
    ]
    seqs = [f["seq"] for f in again.received if "seq" in f and f.get("chat_id") == chat]
    assert sorted(seqs) == [had + 1, had + 2, had + 3]


async def test_a_console_that_does_not_sync_gets_entries_live_from_its_hello(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt, counsellor_grace_seconds=30)
    await add_counsellor(rt, "anna", alias="Anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_chat(server, anna)
    chat = visitor.chat_id
    await visitor.expect("counsellor.joined")
    await anna.close()
    await visitor.say("while the console is away")
    again = await open_staff(server, "anna", PASSWORD, available=False, cookie=anna.cookie)
    (shown,) = again.hello["chats"]
    await visitor.say("live")
    live = await again.expect("message", text="live")
    assert live["seq"] == shown["last_seq"] + 1
    # Asked for later, the older part comes once, and nothing live is sent again.
    await again.send({"type": "sync", "chat_id": chat, "last_seq": 0})
    await again.expect("synced", chat_id=chat)
    await visitor.say("after")
    await again.expect("message", text="after")
    seqs = [f["seq"] for f in again.received if "seq" in f and f.get("chat_id") == chat]
    assert sorted(seqs) == list(range(1, shown["last_seq"] + 3)) and len(seqs) == len(set(seqs))
