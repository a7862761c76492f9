"""Transcripts are kept no longer than their line's retention: shredded at the end, on quick
exit, when a chat is abandoned in any state, across a restart, and despite clock jumps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from app.broker.memory import MemoryBroker
from app.broker.records import ChatState
from app.chats import background
from app.chats import deadlines as chat_deadlines
from app.chats.crypto import generate_kek, key_name
from app.chats.lifecycle import Started
from app.models.enums import Qualification
from app.settings import Settings
from tests.conftest import ServerFactory
from tests.support.brokers import transcript_gone
from tests.support.clients import StaffClient, VisitorClient, open_chat, open_staff, open_visitor
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer, run_server
from tests.support.waiting import eventually

# Shredding and expiry rest on the broker's own TTLs: on both brokers.
pytestmark = pytest.mark.both_brokers

SettingsFactory = Callable[..., Settings]


async def answered_chat(
    server: RunningServer, *, counsellor: str = "anna", **line: Any
) -> tuple[StaffClient, VisitorClient]:
    """A line, a counsellor and a visitor in an active chat with one message each way."""
    rt = server.runtime
    await add_line(rt, **line)
    await add_counsellor(rt, counsellor)
    staff = await open_staff(server, counsellor, PASSWORD)
    visitor = await open_chat(server, staff)
    await visitor.expect("counsellor.joined")
    await visitor.say("something I never said anywhere else")
    await staff.expect("message", sender="visitor")
    await staff.say(visitor.chat_id, "I hear you")
    await visitor.expect("message", sender="counsellor")
    return staff, visitor


async def gone(server: RunningServer, chat_id: str, timeout: float = 10.0) -> None:
    broker = server.runtime.broker
    await eventually(
        lambda: transcript_gone(broker, chat_id), timeout=timeout, what="transcript shredded"
    )


async def test_without_retention_the_transcript_goes_when_the_chat_ends(
    server: RunningServer,
) -> None:
    anna, visitor = await answered_chat(server)
    chat_id = visitor.chat_id
    broker = server.runtime.broker
    assert len(await broker.read(chat_id)) == 3  # joined and two messages, sealed
    assert await broker.get_value(key_name(chat_id)) is not None
    await visitor.send({"type": "end"})
    await anna.expect("chat.ended", chat_id=chat_id)
    await gone(server, chat_id)
    await anna.send({"type": "sync", "chat_id": chat_id, "last_seq": 0})
    assert (await anna.expect("error", ref="sync"))["code"] == "not_in_chat"


async def test_retention_keeps_the_transcript_for_review_then_shreds_it(
    server: RunningServer,
) -> None:
    anna, visitor = await answered_chat(server, transcript_retention_seconds=3)
    chat_id = visitor.chat_id
    await anna.send({"type": "end", "chat_id": chat_id})
    await anna.expect("wrapup.required", chat_id=chat_id)
    # Within the retention the counsellor can read the chat again (e.g. for a debrief),
    # even after the wrap-up.
    await anna.send(
        {"type": "wrapup", "chat_id": chat_id, "topics": ["health"], "outcome": "referred"}
    )
    await anna.expect("wrapup.saved", chat_id=chat_id)
    anna.drain()
    await anna.send({"type": "sync", "chat_id": chat_id, "last_seq": 0})
    again = await anna.expect("message", chat_id=chat_id, sender="visitor")
    assert again["text"] == "something I never said anywhere else"
    # Read again to its end, which is not stored with the transcript.
    ended = await anna.expect("chat.ended", chat_id=chat_id)
    assert ended["by"] == "counsellor" and ended["seq"] > again["seq"], ended
    await anna.expect("synced", chat_id=chat_id)
    # Then it is shredded (the bound only fails a stuck test) and the record goes with it.
    await gone(server, chat_id, timeout=3 + 10)
    await eventually(lambda: _no_record(server, chat_id), what="record forgotten")
    await anna.send({"type": "sync", "chat_id": chat_id, "last_seq": 0})
    assert (await anna.expect("error", ref="sync"))["code"] == "not_in_chat"


async def _no_record(server: RunningServer, chat_id: str) -> bool:
    return await server.runtime.broker.get_chat(chat_id) is None


async def test_quick_exit_shreds_at_once_whatever_the_retention(server: RunningServer) -> None:
    anna, visitor = await answered_chat(server, transcript_retention_seconds=3600)
    chat_id = visitor.chat_id
    await visitor.send({"type": "exit"})
    await visitor.expect("exited")
    with pytest.raises(ConnectionClosed) as closed:
        await visitor.ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    ended = await anna.expect("chat.ended", chat_id=chat_id)
    assert ended["reason"] == "visitor_exit" and ended["by"] == "visitor"
    await gone(server, chat_id)
    await anna.send({"type": "sync", "chat_id": chat_id, "last_seq": 0})
    assert (await anna.expect("error", ref="sync"))["code"] == "not_in_chat"
    # The counsellor still records the anonymous wrap-up.
    await anna.expect("wrapup.required", chat_id=chat_id)
    await anna.send(
        {"type": "wrapup", "chat_id": chat_id, "topics": ["other"], "outcome": "support given"}
    )
    await anna.expect("wrapup.saved", chat_id=chat_id)


async def test_quick_exit_after_the_end_still_shreds_what_retention_kept(
    server: RunningServer,
) -> None:
    _, visitor = await answered_chat(server, transcript_retention_seconds=3600)
    chat_id = visitor.chat_id
    await visitor.send({"type": "end"})
    await visitor.expect("chat.ended")
    assert await server.runtime.broker.read(chat_id) != []  # kept for the retention
    await visitor.send({"type": "exit"})
    await visitor.expect("exited")
    await gone(server, chat_id)
    # Quick exit needs no chat at all: the connection just closes.
    other = await open_visitor(server)
    await other.send({"type": "exit"})
    await other.expect("exited")
    with pytest.raises(ConnectionClosed):
        await other.ws.recv()


async def test_quick_exit_over_http(lykta: ServerFactory) -> None:
    async with lykta(http_rate_per_minute=30, max_body_bytes=2048) as server:
        anna, visitor = await answered_chat(server, transcript_retention_seconds=3600)
        chat_id, token = visitor.chat_id, visitor.token
        broker = server.runtime.broker
        before = (await broker.get_chat(chat_id), await broker.read(chat_id))
        url = "/api/visitor/exit"
        bad: list[tuple[dict[str, Any], int]] = [
            ({"content": b"{nope"}, 422),
            ({"json": {"chat_id": chat_id}}, 422),
            ({"json": {"token": token}}, 422),
            ({"json": {"chat_id": 5, "token": token}}, 422),
            ({"json": {"chat_id": chat_id, "token": token, "extra": 1}}, 422),
            ({"json": ["chat_id", chat_id]}, 422),
            ({"json": {"chat_id": chat_id, "token": "x" * 43}}, 404),
            ({"json": {"chat_id": "nosuchchat0", "token": token}}, 404),
            ({"json": {"chat_id": chat_id, "token": "t" * 5000}}, 413),
            (
                {
                    "json": {"chat_id": chat_id, "token": token},
                    "headers": {"Origin": "https://evil.example"},
                },
                403,
            ),
        ]
        async with httpx.AsyncClient(base_url=server.url) as http:
            for request, status in bad:
                response = await http.post(url, **request)
                assert response.status_code == status, (request, response.text)
                assert response.json()["detail"]
                if status != 413:
                    assert response.headers["clear-site-data"] == '"cache", "cookies", "storage"'
            # A token in the URL is never read (URLs end up in proxy logs).
            in_url = await http.post(url, params={"chat_id": chat_id, "token": token})
            assert in_url.json() == {"status": "cleared"}
            assert (await http.get(url)).status_code == 405
            assert (await broker.get_chat(chat_id), await broker.read(chat_id)) == before

            # sendBeacon posts text/plain: the body is read as JSON whatever its type.
            done = await http.post(
                url,
                content=f'{{"chat_id": "{chat_id}", "token": "{token}"}}',
                headers={"content-type": "text/plain;charset=UTF-8"},
            )
            assert done.status_code == 200 and done.json() == {"status": "exited"}
            assert done.headers["clear-site-data"] == '"cache", "cookies", "storage"'
            assert "set-cookie" not in done.headers
            await visitor.expect("chat.ended", reason="visitor_exit")
            await anna.expect("chat.ended", reason="visitor_exit")
            await gone(server, chat_id)
            # Pressing it again is harmless.
            again = await http.post(url, json={"chat_id": chat_id, "token": token})
            assert again.json() == {"status": "exited"}
            statuses = [(await http.post(url, json={})).status_code for _ in range(40)]
            assert statuses[0] == 200 and statuses[-1] == 429


async def test_a_chat_abandoned_in_any_state_ends_and_is_shredded(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt, visitor_grace_seconds=1, offer_timeout_seconds=60)
    await add_line(rt, "youth", required_qualification="volunteer", visitor_grace_seconds=1)
    await add_counsellor(rt, "anna", capacity=2)
    await add_counsellor(
        rt, "bo", lines=("youth",), qualification=Qualification.volunteer, capacity=1
    )
    await add_counsellor(rt, "cleo", capacity=1)
    anna = await open_staff(server, "anna", PASSWORD)
    bo = await open_staff(server, "bo", PASSWORD, available=False)

    async def visitor_saying(text: str) -> VisitorClient:
        visitor = await open_visitor(server)
        await visitor.start()
        await visitor.say(text)
        return visitor

    # Active: answered by Anna. Transferring: sent to a line whose only counsellor is busy.
    active = await visitor_saying("said while queued, then active")
    await anna.accept_offer()
    moving = await visitor_saying("said before a transfer")
    await anna.accept_offer()
    await bo.available()
    busy = await open_visitor(server)
    await busy.start("youth")
    await bo.accept_offer()
    await anna.send({"type": "transfer", "chat_id": moving.chat_id, "line": "youth"})
    await anna.expect("chat.released", chat_id=moving.chat_id)
    await anna.send({"type": "status", "status": "away"})
    await anna.expect("status", status="away")
    # Offered: Cleo gets the offer and never answers. Queued: nobody free is left.
    cleo = await open_staff(server, "cleo", PASSWORD)
    offered = await visitor_saying("said while offered")
    await cleo.expect("offer", chat_id=offered.chat_id)
    queued = await visitor_saying("said while queued")
    states = [
        getattr(await rt.broker.get_chat(v.chat_id), "state", None)
        for v in (active, moving, offered, queued)
    ]
    assert states == [
        ChatState.active,
        ChatState.transferring,
        ChatState.offered,
        ChatState.queued,
    ]

    for visitor in (active, moving, offered, queued):
        chat_id = visitor.chat_id
        assert await rt.broker.read(chat_id) != []
        await visitor.close()
        await gone(server, chat_id)
        record = await rt.broker.get_chat(chat_id)
        assert record is None or (
            record.state is ChatState.ended and record.end_reason == "visitor_left"
        )
    # The offer went when its visitor did, not when the chat ended: nobody was there to answer.
    await cleo.expect("offer.withdrawn", chat_id=offered.chat_id, reason="visitor_away")


async def test_a_chat_whose_process_died_is_found_and_shredded(
    lykta: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sweep reads a line's chats a page at a time: three pages here.
    monkeypatch.setattr(chat_deadlines, "SWEEP_PAGE", 2)
    # Swept here, once (the background sweep runs at start-up, before these chats exist).
    async with lykta(sweep_seconds=3600) as server:
        rt = server.runtime
        await add_line(rt, visitor_grace_seconds=1, max_queue_length=10)
        await add_counsellor(rt, "anna")
        await open_staff(server, "anna", PASSWORD)  # the line is open
        # Chats as a dead process leaves them: marked connected, but nobody holds their lease.
        chat_ids = []
        for _ in range(5):
            started = await rt.chats.lifecycle.start("support", "sv", connection=None)
            assert isinstance(started, Started)
            chat_ids.append(started.record.id)
            await rt.chats.messages.visitor_messages(
                started.record.id, "support", [("left behind", None)], last_seq=0, origin="x"
            )
            assert await rt.broker.read(started.record.id) != []

        assert await rt.chats.deadlines.sweep() == 5

        async def ended() -> bool:
            records = await rt.broker.get_chats(chat_ids)
            return len(records) == 5 and all(r.end_reason == "visitor_left" for r in records)

        await eventually(ended, what="every abandoned chat ended")
        for chat_id in chat_ids:
            await gone(server, chat_id)


async def test_heartbeats_keep_every_counsellor_connected_however_many_there_are(
    lykta: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases are renewed a batch at a time; the last batch counts as much as the first."""
    monkeypatch.setattr(background, "RENEWAL_BATCH", 1)
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt)
        names = ["anna", "bo", "cleo", "dan"]
        for name in names:
            await add_counsellor(rt, name)
        clients = [await open_staff(server, name, PASSWORD) for name in names]
        ids = [client.staff_id for client in clients]
        # Several lease lifetimes (three heartbeats each) go by.
        lease = background.lease_seconds(rt.settings)
        await asyncio.sleep(lease * 3)
        counts = await rt.broker.connection_counts(ids)
        assert [counts.get(staff_id, 0) for staff_id in ids] == [1, 1, 1, 1]


async def test_shredding_survives_a_restart(settings_for: SettingsFactory) -> None:
    """The broker outlives the process (as Redis does): what falls due while no process is
    alive is shredded by the broker's own expiry, and the next process's start-up."""
    broker = MemoryBroker()
    settings = settings_for(sweep_seconds=30)
    async with run_server(settings, broker) as first:
        rt = first.runtime
        await add_line(rt, transcript_retention_seconds=2, visitor_grace_seconds=1)
        await add_counsellor(rt, "anna", capacity=3)
        anna, kept = await _chat_on(first, "anna")
        await anna.send({"type": "end", "chat_id": kept.chat_id})
        await kept.expect("chat.ended")
        dropped = await open_chat(first, anna)
        await dropped.say("the process stops while I am here")
        orphan = await rt.chats.lifecycle.start("support", "sv", connection=None)
        assert isinstance(orphan, Started)
        await rt.chats.messages.visitor_messages(
            orphan.record.id, "support", [("and my process dies", None)], last_seq=0, origin="x"
        )
    assert await broker.read(kept.chat_id) != []  # still within its retention
    # No process is alive: the broker drops the kept transcript by itself.
    await eventually(lambda: transcript_gone(broker, kept.chat_id), timeout=2 + 10)
    for chat_id in (dropped.chat_id, orphan.record.id):
        assert await broker.read(chat_id) != []
    async with run_server(settings, broker) as second:
        # The dropped visitor's grace fell due while down; the orphan is found at start-up.
        await gone(second, dropped.chat_id)
        await gone(second, orphan.record.id)
        for chat_id in (dropped.chat_id, orphan.record.id):
            record = await broker.get_chat(chat_id)
            assert record is not None and record.state is ChatState.ended


async def _chat_on(server: RunningServer, username: str) -> tuple[StaffClient, VisitorClient]:
    staff = await open_staff(server, username, PASSWORD)
    visitor = await open_chat(server, staff)
    await visitor.say("kept for a debrief")
    await staff.expect("message", sender="visitor")
    return staff, visitor


class JumpingClock:
    """The wall clock, plus an offset a test can change: a clock jump."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def test_a_clock_jumping_back_does_not_keep_a_transcript(
    settings_for: SettingsFactory,
) -> None:
    clock = JumpingClock()
    broker = MemoryBroker(clock=clock)
    async with run_server(settings_for(), broker) as server:
        await add_line(server.runtime, transcript_retention_seconds=2)
        await add_counsellor(server.runtime, "anna")
        anna, visitor = await _chat_on(server, "anna")
        await anna.send({"type": "end", "chat_id": visitor.chat_id})
        await anna.expect("chat.ended")
        assert await broker.read(visitor.chat_id) != []
        clock.offset = -3600.0  # the deadline is now an hour away on the wall clock
        # At most a minute late, says the issue; in fact on time (monotonic expiry and watch).
        await gone(server, visitor.chat_id, timeout=2 + 60)

        async def watched() -> bool:
            record = await broker.get_chat(visitor.chat_id)
            return record is not None and record.shred_at is None

        # Not the deadline (an hour away now): this process's monotonic watch shredded it.
        await eventually(watched, timeout=60, what="the shred watch ran")


async def test_a_clock_jumping_forward_shreds_early_rather_than_late(
    settings_for: SettingsFactory,
) -> None:
    clock = JumpingClock()
    broker = MemoryBroker(clock=clock)
    async with run_server(settings_for(), broker) as server:
        await add_line(server.runtime, transcript_retention_seconds=3600)
        await add_counsellor(server.runtime, "anna")
        anna, visitor = await _chat_on(server, "anna")
        await anna.send({"type": "end", "chat_id": visitor.chat_id})
        await anna.expect("chat.ended")
        assert await broker.read(visitor.chat_id) != []
        clock.offset = 2 * 3600.0
        await gone(server, visitor.chat_id)


async def test_a_shredded_chat_gives_clean_errors(server: RunningServer) -> None:
    anna, visitor = await answered_chat(server, transcript_retention_seconds=3600)
    chat_id = visitor.chat_id
    await visitor.send({"type": "exit"})
    await anna.expect("chat.ended", chat_id=chat_id)
    await gone(server, chat_id)
    back = await open_visitor(server)
    await back.send({"type": "resume", "chat_id": chat_id, "token": visitor.token})
    assert (await back.expect("error"))["code"] == "chat_ended"
    for frame in (
        {"type": "message", "chat_id": chat_id, "text": "hello?"},
        {"type": "note", "chat_id": chat_id, "text": "a late note"},
    ):
        await anna.send(frame)
        assert (await anna.expect("error"))["code"] == "chat_ended"
    await anna.send({"type": "sync", "chat_id": chat_id, "last_seq": 0})
    assert (await anna.expect("error", ref="sync"))["code"] == "not_in_chat"
    assert await transcript_gone(server.runtime.broker, chat_id)  # nothing wrote a key back
    # The service goes on.
    fresh = await open_visitor(server)
    await fresh.start()
    await anna.expect("offer", chat_id=fresh.chat_id)


@pytest.mark.embedded_only  # tampers with the in-process broker's memory directly
async def test_a_tampered_entry_is_skipped_without_a_crash(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    _, visitor = await answered_chat(server)
    chat_id = visitor.chat_id
    broker = server.runtime.broker
    assert isinstance(broker, MemoryBroker)
    chat = broker._chats[chat_id]  # an attacker with write access to the broker
    seq, sealed = chat.entries[1]
    chat.entries[1] = (seq, sealed[:-1] + bytes([sealed[-1] ^ 1]))
    again = await open_staff(server, "anna", PASSWORD, available=False)
    await again.send({"type": "sync", "chat_id": chat_id, "last_seq": 0})
    await again.expect("synced", chat_id=chat_id)
    texts = [f.get("text") for f in again.received if f.get("chat_id") == chat_id]
    assert "something I never said anywhere else" not in texts
    assert "I hear you" in texts
    refused = [r for r in caplog.records if r.getMessage() == "transcript entry refused"]
    assert refused and all("never said" not in str(r.__dict__) for r in refused)


async def test_kek_rotation_across_a_restart(settings_for: SettingsFactory) -> None:
    broker = MemoryBroker()
    old, new = generate_kek("old"), generate_kek("new")
    async with run_server(settings_for(keks=old), broker) as first:
        await add_line(first.runtime)
        await add_counsellor(first.runtime, "anna")
        _, visitor = await _chat_on(first, "anna")
        chat_id, token = visitor.chat_id, visitor.token
        assert (await broker.get_value(key_name(chat_id)) or "").startswith("old:")
    async with run_server(settings_for(keks=f"{new},{old}"), broker) as second:
        back = await open_visitor(second)
        await back.send({"type": "resume", "chat_id": chat_id, "token": token, "last_seq": 0})
        await back.expect("chat.resumed")
        assert (await back.expect("message"))["text"] == "kept for a debrief"
        await open_staff(second, "anna", PASSWORD)
        fresh = await open_visitor(second)
        await fresh.start()
        assert (await broker.get_value(key_name(fresh.chat_id)) or "").startswith("new:")
        await back.close()
        await fresh.close()
    # The old KEK removed too early: old chats cannot be read or continued, cleanly.
    async with run_server(settings_for(keks=new), broker) as third:
        back = await open_visitor(third)
        await back.send({"type": "resume", "chat_id": chat_id, "token": token, "last_seq": 0})
        await back.expect("chat.resumed")
        await back.send({"type": "message", "text": "anyone?"})
        assert (await back.expect("error", ref="message"))["code"] == "chat_ended"
        assert back.seen("message") == []
