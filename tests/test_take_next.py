"""Taking the next chat from the queue card: the first chat one may answer, never one chat
twice, never beyond capacity; and the line's `assignment` setting."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import ServerFactory
from tests.support.clients import StaffClient, VisitorClient, open_staff, open_visitor
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer

pytestmark = pytest.mark.both_brokers


async def waiting(server: RunningServer, count: int, language: str = "sv") -> list[VisitorClient]:
    visitors = []
    for _ in range(count):
        visitor = await open_visitor(server)
        await visitor.start(language=language)
        visitors.append(visitor)
    return visitors


async def take(staff: StaffClient, line: str = "support") -> dict[str, object]:
    await staff.send({"type": "take", "line": line})
    return await staff.expect("taken")


async def test_a_counsellor_takes_the_longest_waiting_chat_and_is_never_offered_on_a_taken_line(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt, assignment="taken")
    await add_counsellor(rt, "anna", capacity=2)
    anna = await open_staff(server, "anna", PASSWORD)
    assert anna.hello["lines"][0]["assignment"] == "taken"
    first, second = await waiting(server, 2)
    await second.expect("queue.position", position=2)
    # Nothing is offered on a line whose chats are taken.
    await anna.expect_none("offer", within=1.5)

    taken = await take(anna)
    assert taken["chat_id"] == first.chat_id
    await anna.expect("chat.opened", chat_id=first.chat_id)
    await first.expect("counsellor.joined")
    await second.expect("queue.position", position=1)
    await anna.say(first.chat_id, "Hej, jag heter Anna.")
    await first.expect("message", text="Hej, jag heter Anna.")

    assert (await take(anna))["chat_id"] == second.chat_id
    # Both places used: a third visitor waits, and taking again is refused.
    (third,) = await waiting(server, 1)
    await third.expect("queue.position", position=1)
    await anna.send({"type": "take", "line": "support"})
    await anna.expect("error", code="over_capacity", ref="take")
    await third.expect_none("counsellor.joined", within=0.5)


async def test_twenty_counsellors_taking_at_once_never_take_one_chat_twice(
    lykta: ServerFactory,
) -> None:
    async with lykta(sign_in_rate_per_minute=1000, connection_rate_per_minute=1000) as server:
        await twenty_take_at_once(server)


async def twenty_take_at_once(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt, assignment="taken", max_queue_length=100)
    names = [f"c{i:02d}" for i in range(20)]
    for name in names:
        await add_counsellor(rt, name, capacity=1)
    staff = [await open_staff(server, name, PASSWORD) for name in names]
    visitors = await waiting(server, 15)
    await visitors[-1].expect("queue.position", position=15)

    async def press(counsellor: StaffClient) -> str | None:
        await counsellor.send({"type": "take", "line": "support"})
        frame = await counsellor.expect(frozenset({"taken", "error"}))
        if frame["type"] == "error":
            assert frame["code"] == "nothing_to_take"
            return None
        return str(frame["chat_id"])

    taken = await asyncio.gather(*(press(c) for c in staff))
    got = [chat for chat in taken if chat is not None]
    # Fifteen chats, fifteen counsellors: each chat once; five found nothing left.
    assert sorted(got) == sorted(v.chat_id for v in visitors)
    assert taken.count(None) == 5
    for visitor in visitors:
        await visitor.expect("counsellor.joined")
    for visitor in visitors:
        await visitor.expect_none("counsellor.joined", within=0.2)


async def test_taking_is_refused_clearly_and_changes_nothing(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_line(rt, "youth", required_qualification="volunteer", assignment="taken")
    await add_line(rt, "night", assignment="taken")
    await add_counsellor(rt, "anna", lines=("support", "night"), capacity=1)
    anna = await open_staff(server, "anna", PASSWORD)
    (visitor,) = await waiting(server, 1)
    offer = await anna.expect("offer")
    await anna.send({"type": "decline", "chat_id": offer["chat_id"]})
    await anna.expect("offer.withdrawn")

    # The line offers its chats ("offered", the default): nothing is taken.
    await anna.send({"type": "take", "line": "support"})
    await anna.expect("error", code="not_taken_here", ref="take")
    # A line one is not on, and one that does not exist.
    await anna.send({"type": "take", "line": "youth"})
    await anna.expect("error", code="not_on_duty", ref="take")
    await anna.send({"type": "take", "line": "nowhere"})
    await anna.expect("error", code="unknown_line", ref="take")
    # Nothing waiting on the line.
    await anna.send({"type": "take", "line": "night"})
    await anna.expect("error", code="nothing_to_take", ref="take")
    # On a break.
    await anna.send({"type": "status", "status": "away"})
    await anna.expect("status", status="away")
    await anna.send({"type": "take", "line": "night"})
    await anna.expect("error", code="not_allowed_now", ref="take")
    # Malformed frames.
    for bad in (
        {"type": "take"},
        {"type": "take", "line": ""},
        {"type": "take", "line": "x" * 33},
        {"type": "take", "line": 7},
        {"type": "take", "line": "a\u0000b"},
    ):
        await anna.send(bad)
        error = await anna.expect("error")
        assert error["code"] in {"invalid_field", "invalid_frame"}
        assert "\u0000" not in str(error) and "xxxxxxxx" not in str(error)
    await visitor.expect_none("counsellor.joined", within=0.3)


async def test_a_chat_kept_for_a_named_colleague_or_another_language_is_not_taken(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt, assignment="taken", language_relax_seconds=600)
    await add_counsellor(rt, "anna", languages=("sv",))
    await add_counsellor(rt, "bo", languages=("en",))
    anna = await open_staff(server, "anna", PASSWORD)
    bo = await open_staff(server, "bo", PASSWORD)
    (english,) = await waiting(server, 1, language="en")
    (swedish,) = await waiting(server, 1, language="sv")
    await swedish.expect("queue.position", position=2)
    # Anna passes over the English chat that waits for an English speaker.
    assert (await take(anna))["chat_id"] == swedish.chat_id
    assert (await take(bo))["chat_id"] == english.chat_id
