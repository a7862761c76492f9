"""What a waiting visitor and a counsellor meet first (issue 25), over the real sockets on both
brokers: the wait a visitor is told, a wish nobody on duty can meet, a visitor who dropped
while waiting, and the queue card's count."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from app.routing.policy import MIN_DURATIONS
from app.routing.service import duration_key
from tests.conftest import ServerFactory
from tests.support.clients import FrameTimeoutError, VisitorClient, open_staff, open_visitor
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.both_brokers


async def back(server: RunningServer, visitor: VisitorClient) -> VisitorClient:
    """The same visitor on a new connection, resuming their chat."""
    again = await open_visitor(server)
    await again.send(
        {"type": "resume", "chat_id": visitor.chat_id, "token": visitor.token, "last_seq": 0}
    )
    await again.expect("chat.resumed")
    again.chat_id, again.token = visitor.chat_id, visitor.token
    return again


async def test_first_in_line_with_a_counsellor_free_is_told_soon_not_a_whole_chat(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", capacity=3)
    await open_staff(server, "anna", PASSWORD)
    # Plenty of long chats lately: still, Anna has 0 of 3 chats.
    for _ in range(10):
        await rt.broker.push_recent(duration_key("support"), 1200.0, 50, 3600)

    visitor = await open_visitor(server)
    await visitor.start()
    shown = await visitor.expect("queue.position")
    assert shown["position"] == 1 and shown["soon"] is True
    assert shown["estimated_wait_seconds"] is None and shown["waiting_for"] is None


async def test_a_full_line_estimates_from_recent_chats_and_says_nothing_without_them(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", capacity=2)
    anna = await open_staff(server, "anna", PASSWORD)
    for _ in range(2):
        visitor = await open_visitor(server)
        await visitor.start()
        await anna.accept_offer()

    # Too few chats have ended to say a number.
    for _ in range(MIN_DURATIONS - 1):
        await rt.broker.push_recent(duration_key("support"), 600.0, 50, 3600)
    first = await open_visitor(server)
    await first.start()
    shown = await first.expect("queue.position")
    assert (shown["position"], shown["soon"], shown["estimated_wait_seconds"]) == (1, False, None)

    # Enough of them (ten minutes each): with both of Anna's places taken, one of her two
    # chats ends every five minutes or so.
    await rt.broker.push_recent(duration_key("support"), 600.0, 50, 3600)
    second = await open_visitor(server)
    await second.start()
    shown = await second.expect("queue.position")
    assert (shown["position"], shown["soon"], shown["estimated_wait_seconds"]) == (2, False, 600)


async def test_a_peer_wish_nobody_on_duty_can_meet_holds_nobody_back(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt, peer_relax_seconds=3600)
    await add_counsellor(rt, "anna", alias="Anna")
    await add_counsellor(rt, "pia", alias="Pia", peer=True)
    anna = await open_staff(server, "anna", PASSWORD)

    async def peer_available() -> bool:
        async with httpx.AsyncClient(base_url=server.url) as http:
            answer = await http.get("/api/lines/support")
        assert answer.status_code == 200
        available: bool = answer.json()["peer_available"]
        return available

    assert await peer_available() is False
    visitor = await open_visitor(server)
    started = await visitor.start(peer=True)
    assert started["peer_requested"] is True
    shown = await visitor.expect("queue.position")
    assert shown["soon"] is True and shown["waiting_for"] is None
    offer = await anna.expect("offer", chat_id=visitor.chat_id)
    assert offer["peer_requested"] is True
    await anna.accept(visitor.chat_id)
    joined = await visitor.expect("counsellor.joined")
    assert joined["name"] == "Anna" and joined["peer"] is False

    # A peer supporter signs in and is available: the widget may offer the choice; on a
    # break, not.
    pia = await open_staff(server, "pia", PASSWORD)
    assert await peer_available() is True
    await pia.send({"type": "status", "status": "break"})
    await pia.expect("status", status="break")
    assert await peer_available() is False


async def test_a_wish_a_busy_peer_can_meet_is_waited_for_and_everyone_sees_why(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt, peer_relax_seconds=3600)
    await add_counsellor(rt, "anna", alias="Anna", capacity=2)
    await add_counsellor(rt, "pia", alias="Pia", peer=True, capacity=1)
    pia = await open_staff(server, "pia", PASSWORD)
    busy = await open_visitor(server)
    await busy.start()
    await pia.accept((await pia.expect("offer", chat_id=busy.chat_id))["chat_id"])
    anna = await open_staff(server, "anna", PASSWORD)

    asked = await open_visitor(server)
    await asked.start(peer=True)
    held = await asked.expect("queue.position", where=lambda f: f["waiting_for"] is not None)
    assert held["waiting_for"]["reason"] == "peer" and held["soon"] is False
    summary = await anna.expect("queue.summary", where=lambda f: f["held"])
    assert summary["waiting"] == 1 and summary["offered"] == 0
    assert [(h["reason"], h["count"]) for h in summary["held"]] == [("peer", 1)]
    assert summary["held"][0]["until"] == held["waiting_for"]["until"]

    # Someone without a wish, behind: offered to Anna at once; the card counts both.
    plain = await open_visitor(server)
    await plain.start()
    await anna.expect("offer", chat_id=plain.chat_id)
    summary = await anna.expect("queue.summary", where=lambda f: f["offered"] == 1)
    assert summary["waiting"] == 2 and [h["reason"] for h in summary["held"]] == ["peer"]
    await anna.expect_none("offer", within=1.0, chat_id=asked.chat_id)

    # Pia's chat ends: the one who asked for her gets her.
    await busy.send({"type": "end"})
    await pia.accept((await pia.expect("offer", chat_id=asked.chat_id))["chat_id"])
    assert (await asked.expect("counsellor.joined"))["peer"] is True


async def test_a_visitor_who_dropped_while_queued_keeps_their_place_but_is_not_counted(
    lykta: ServerFactory,
) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt, visitor_grace_seconds=60)
        await add_counsellor(rt, "anna", capacity=1)
        anna = await open_staff(server, "anna", PASSWORD)
        talking = await open_visitor(server)
        await talking.start()
        await anna.accept_offer()

        first = await open_visitor(server)
        await first.start()
        await first.expect("queue.position", position=1)
        second = await open_visitor(server)
        await second.start()
        await second.expect("queue.position", position=2)
        await anna.expect("queue.summary", waiting=2)
        anna.drain()  # earlier cards (one waiting) are not what comes next

        # The first one's network goes: the second is next, and the card counts one.
        await first.close()
        await second.expect("queue.position", position=1)
        await anna.expect("queue.summary", waiting=1)
        third = await open_visitor(server)
        await third.start()
        await third.expect("queue.position", position=2)

        # Back within the grace period: at their own place again, first.
        first = await back(server, first)
        await first.expect("queue.position", position=1)
        await second.expect("queue.position", position=2)
        await third.expect("queue.position", position=3)

        # Gone again when Anna's chat ends: the offer goes to the next one present.
        await first.close()
        await second.expect("queue.position", position=1)
        await talking.send({"type": "end"})
        offer = await anna.expect("offer")
        assert offer["chat_id"] == second.chat_id
        await anna.accept(second.chat_id)
        await third.expect("queue.position", position=1)


async def test_an_offer_to_a_visitor_who_drops_is_withdrawn_for_someone_present(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt, visitor_grace_seconds=60)
    await add_counsellor(rt, "anna", capacity=1)
    anna = await open_staff(server, "anna", PASSWORD)
    gone = await open_visitor(server)
    await gone.start()
    await anna.expect("offer", chat_id=gone.chat_id)
    present = await open_visitor(server)
    await present.start()
    await present.expect("queue.position", position=1)

    await gone.close()
    withdrawn = await anna.expect("offer.withdrawn", chat_id=gone.chat_id)
    assert withdrawn["reason"] == "visitor_away"
    await anna.accept((await anna.expect("offer", chat_id=present.chat_id))["chat_id"])
    # Not a missed offer: Anna stays available.
    assert anna.seen("status")[-1]["status"] == "available"
    presence = await rt.broker.get_presence(anna.staff_id)
    assert presence is not None and presence.missed_offers == 0

    # The visitor is back within the grace period: waiting again, first in line, and on the
    # card as waiting (Anna is full), no longer as offered.
    anna.drain()
    again = await back(server, gone)
    shown = await again.expect("queue.position")
    assert shown["position"] == 1

    # The card is pushed when its counts change, so its last word is what the counsellor sees.
    async def card_counts_her_waiting() -> bool:
        with contextlib.suppress(FrameTimeoutError):
            await anna.expect("queue.summary", timeout=0.2)
        cards = anna.seen("queue.summary")
        return bool(cards) and (cards[-1]["waiting"], cards[-1]["offered"]) == (1, 0)

    await eventually(card_counts_her_waiting, what="the card counting her as waiting")


@pytest.mark.redis_only
async def test_a_card_on_another_process_counts_an_offer_made_before_it_looked(
    lykta: ServerFactory,
) -> None:
    async with lykta() as one, lykta() as two:
        await add_line(one.runtime)
        await two.runtime.lines.reload()
        await add_counsellor(one.runtime, "anna", capacity=1)
        await add_counsellor(one.runtime, "bo")
        anna = await open_staff(one, "anna", PASSWORD)
        visitor = await open_visitor(one)
        await visitor.start()
        await anna.expect("offer", chat_id=visitor.chat_id)

        # Nobody on the second process looked at the line until now.
        bo = await open_staff(two, "bo", PASSWORD, available=False)
        first = await bo.expect("queue.summary")
        assert (first["waiting"], first["offered"]) == (1, 1)
        await anna.accept(visitor.chat_id)
        await bo.expect("queue.summary", waiting=0, offered=0)
