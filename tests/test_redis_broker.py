"""What only the Redis broker has to do: share state and events between processes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import expect

from app.broker import redis_connection
from app.broker.base import BrokerUnavailableError
from app.broker.hub import LOCAL_ENTRY, Event
from app.broker.records import ChatRecord, ChatState
from app.broker.redis import RedisBroker
from app.chats.channels import chat_channel
from app.settings import Settings
from tests.conftest import REDIS_URL
from tests.support.browser import chromium, screenshot, trace_sockets
from tests.support.clients import (
    StaffClient,
    VisitorClient,
    open_chat,
    open_staff,
    open_visitor,
)
from tests.support.processes import RedisServer
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer, bound_socket, run_server
from tests.support.waiting import eventually

# Every test here talks to a Redis.
pytestmark = pytest.mark.redis


async def test_events_reach_other_processes_once_and_plain_text_stays_home(
    redis_prefix: str,
) -> None:
    one, two = RedisBroker(REDIS_URL, redis_prefix), RedisBroker(REDIS_URL, redis_prefix)
    await one.start()
    await two.start()
    try:
        here: list[Event] = []
        there: list[Event] = []
        await one.subscribe("chat:a", here.append)
        await two.subscribe("chat:a", there.append)
        await one.publish("chat:a", {"type": "x", LOCAL_ENTRY: "private", "sealed": b"\x00\xff"})
        for _ in range(200):
            if there:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # an echo of its own event would have come back by now
        assert [e["type"] for e in here] == ["x"] and here[0][LOCAL_ENTRY] == "private"
        # The local entry did not cross; a sealed entry crosses as it is, bytes.
        assert there == [{"type": "x", "sealed": b"\x00\xff"}]
        # A stored entry's event is published by the same script that stores it.
        await one.create_chat(
            ChatRecord("a", "l", "sv", ChatState.queued, "d", 1.0, 1.0), queue_limit=5
        )
        await one.append("a", [(1, b"e", None, ("chat:a", {"type": "entry", "seq": 1}))])
        for _ in range(200):
            if len(there) == 2:
                break
            await asyncio.sleep(0.01)
        assert there[1] == {"type": "entry", "seq": 1}
        # The event of an entry that carries it sealed: the script puts the stored entry at
        # the payload's end, whatever bytes it holds (newlines too), after JSON that may hold
        # an escaped newline of its own.
        sealed = b"\n\x00sealed\nentry\n"
        event = {"type": "entry", "seq": 2, "note": "a\nb", "sealed": sealed}
        await one.append("a", [(2, sealed, None, ("chat:a", event))])
        for _ in range(200):
            if len(there) == 3:
                break
            await asyncio.sleep(0.01)
        assert there[2] == event
        # Entries stored together go out together, in one message read by the others at
        # once: each event once, in order, whatever bytes the sealed entries hold.
        burst = [
            (seq, b"*3:x\n" + bytes([seq]), None, ("chat:a", {"type": "entry", "seq": seq}))
            for seq in (3, 4, 5)
        ]
        burst[1] = (4, b"plain", None, ("chat:a", {"type": "entry", "seq": 4, "n": "1:2"}))
        assert await one.append("a", burst) == [(3, "ok"), (4, "ok"), (5, "ok")]
        for _ in range(200):
            if len(there) == 6:
                break
            await asyncio.sleep(0.01)
        assert there[3:] == [
            {"type": "entry", "seq": 3},
            {"type": "entry", "seq": 4, "n": "1:2"},
            {"type": "entry", "seq": 5},
        ]
        assert [e["seq"] for e in here if e["type"] == "entry"] == [1, 2, 3, 4, 5]
        assert await one.read("a") == [(1, b"e"), (2, sealed)] + [(s, e) for s, e, _, _ in burst]
        assert await one.keys_without_ttl() == []
    finally:
        await one.close()
        await two.close()


@contextlib.asynccontextmanager
async def own_redis(tmp_path: Path) -> AsyncIterator[tuple[RedisServer, RedisBroker, list[bool]]]:
    """A Redis of the test's own, a broker on it, and the broker's availability changes."""
    server = RedisServer(tmp_path, appendonly=False)
    await server.start()
    broker = RedisBroker(server.url, "lykta-test")
    changes: list[bool] = []
    broker.on_availability(changes.append)
    await broker.start()
    try:
        yield server, broker, changes
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
        await broker.close()
        await server.stop()


async def test_losing_redis_is_reported_and_recovered_from(tmp_path: Path) -> None:
    async with own_redis(tmp_path) as (server, broker, changes):
        # Whether the broker was available when it said Redis came back without its data.
        lost: list[bool] = []

        async def on_lost() -> None:
            lost.append(broker.available)

        broker.on_lost(on_lost)
        await broker.set_value("k", "v", 60)
        await server.stop()
        for _ in range(500):
            if changes:
                break
            await asyncio.sleep(0.01)
        assert changes == [False] and not broker.available
        try:
            await broker.get_value("k")
        except BrokerUnavailableError:
            pass
        else:
            raise AssertionError("a command succeeded without Redis")
        await server.start()
        for _ in range(1000):
            if changes == [False, True]:
                break
            await asyncio.sleep(0.01)
        assert changes == [False, True] and broker.available
        assert await broker.get_value("k") is None  # that Redis kept nothing
        # ... and the broker said so once, before it counted as available again.
        assert lost == [False]
        await broker.set_value("k", "w", 60)
        assert await broker.get_value("k") == "w"


async def test_a_redis_that_stops_answering_is_reported_and_recovered_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A frozen Redis (the process stopped, its sockets open) never closes a connection:
    # only the lane's watchdog (no reply in COMMAND_TIMEOUT) notices. A shorter bound than
    # production's.
    monkeypatch.setattr(redis_connection, "COMMAND_TIMEOUT", 0.5)
    async with own_redis(tmp_path) as (server, broker, changes):
        lost: list[str] = []

        async def on_lost() -> None:
            lost.append("lost")

        broker.on_lost(on_lost)
        assert server.proc is not None
        await broker.set_value("k", "v", 60)
        server.proc.send_signal(signal.SIGSTOP)
        with pytest.raises(BrokerUnavailableError):
            await asyncio.wait_for(broker.get_value("k"), 10)
        await eventually(lambda: _is(changes, [False]), what="Redis reported unreachable")
        server.proc.send_signal(signal.SIGCONT)
        await eventually(lambda: _is(changes, [False, True]), what="Redis back")
        assert await broker.get_value("k") == "v"  # the same Redis, its data kept
        assert lost == []  # nothing to tell anyone


async def test_a_redis_emptied_under_running_brokers_is_noticed_by_each(
    redis_prefix: str,
) -> None:
    """Keys gone while connections held (a flush; a restart between two health checks): every
    process finds out, whichever of them left the new marker, and says so once."""
    brokers = [RedisBroker(REDIS_URL, redis_prefix), RedisBroker(REDIS_URL, redis_prefix)]
    seen: list[list[bool | str]] = [[], []]
    for broker, changes in zip(brokers, seen, strict=True):
        broker.on_availability(changes.append)

        async def on_lost(changes: list[bool | str] = changes) -> None:
            changes.append("lost")

        broker.on_lost(on_lost)
        await broker.start()
    try:
        await brokers[0].set_value("k", "v", 60)
        assert await brokers[0].purge() > 0

        async def told() -> bool:
            return seen == [[False, "lost", True]] * 2

        await eventually(told, timeout=30, what="both brokers told of the loss")
        assert await brokers[1].get_value("k") is None
    finally:
        for broker in brokers:
            await broker.close()


async def test_a_closed_broker_answers_commands_with_an_error(redis_prefix: str) -> None:
    # Work still under way at shutdown (a publish, a lease) must fail, not wait forever or
    # open a new connection to Redis.
    broker = RedisBroker(REDIS_URL, redis_prefix)
    await broker.start()
    await broker.set_value("k", "v", 60)
    await broker.close()
    with pytest.raises(BrokerUnavailableError):
        await asyncio.wait_for(broker.get_value("k"), 5)


async def _is(value: list[bool], expected: list[bool]) -> bool:
    return value == expected


class SlowToSubscribe(RedisBroker):
    """Redis confirming a chat's subscription late (a busy Redis, a long network path)."""

    async def _subscribe_remote(self, channel: str) -> None:
        if channel.startswith("chat:"):
            await asyncio.sleep(0.3)
        await super()._subscribe_remote(channel)


@pytest.mark.redis_only
async def test_a_chat_accepted_while_its_subscription_is_confirmed_starts_before_it_is_joined(
    settings_for: Callable[..., Settings], redis_prefix: str
) -> None:
    # On an auto-accept line this process accepts the chat while the visitor's socket still
    # waits for Redis to confirm the chat's channel. The visitor must hear "started" first:
    # the widget's "started" clears the counsellor's name, so the other order would show
    # "waiting" beside a counsellor who is already writing.
    settings = settings_for()
    async with run_server(settings, SlowToSubscribe(REDIS_URL, redis_prefix)) as server:
        rt = server.runtime
        await add_line(rt, auto_accept=True)
        await add_counsellor(rt, "anna", alias="Anna")
        anna = await open_staff(server, "anna", PASSWORD)
        visitor = await open_visitor(server)
        await visitor.start()
        await anna.expect("chat.opened", chat_id=visitor.chat_id)
        joined = await visitor.expect("counsellor.joined")
        assert joined["name"] == "Anna"
        # The chat goes on as any other; by the message's acknowledgement every frame of the
        # start is in, and none came twice.
        await visitor.say("hej")
        assert (await anna.expect("message", sender="visitor"))["text"] == "hej"
        kinds = [frame["type"] for frame in visitor.received]
        assert kinds.index("chat.started") < kinds.index("counsellor.joined"), kinds
        assert kinds.count("counsellor.joined") == 1, kinds
        assert "message" not in kinds, kinds  # the visitor's own, never shown back to them
        # No queue position once someone has joined.
        assert "queue.position" not in kinds[kinds.index("counsellor.joined") :], kinds


@pytest.mark.redis_only
async def test_a_chat_accepted_while_a_returning_visitor_subscribes_resumes_before_it_is_joined(
    settings_for: Callable[..., Settings], redis_prefix: str
) -> None:
    # The same on a resume: the counsellor accepts while the visitor's new connection waits
    # for Redis to confirm the chat's channel.
    async with run_server(settings_for(), SlowToSubscribe(REDIS_URL, redis_prefix)) as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna", alias="Anna")
        anna = await open_staff(server, "anna", PASSWORD)
        visitor = await open_visitor(server)
        await visitor.start()
        await anna.expect("offer", chat_id=visitor.chat_id)
        await visitor.close()
        back = await open_visitor(server)
        resume = {"type": "resume", "chat_id": visitor.chat_id, "token": visitor.token}
        await back.send({**resume, "last_seq": 0})
        await anna.accept(visitor.chat_id)
        assert (await back.expect("counsellor.joined"))["name"] == "Anna"
        await back.say("hej")
        assert (await anna.expect("message", sender="visitor"))["text"] == "hej"
        kinds = [frame["type"] for frame in back.received]
        assert kinds.index("chat.resumed") < kinds.index("counsellor.joined"), kinds
        assert kinds.count("counsellor.joined") == 1, kinds
        assert "message" not in kinds, kinds


@pytest.mark.redis_only
@pytest.mark.parametrize("retention", [0, 3600], ids=["shredded-at-the-end", "kept"])
async def test_a_chat_ended_while_the_visitor_subscribes_ends_for_the_visitor_too(
    settings_for: Callable[..., Settings], redis_prefix: str, retention: int
) -> None:
    # The counsellor, on another process, accepts and ends the chat while the visitor's
    # socket still waits for Redis to confirm the chat's channel: "joined" and "ended" are
    # published before it listens. The catch-up must tell the visitor, and the socket must
    # act on it as on a live end, whether the line keeps transcripts or shredded this one
    # as it ended. Before, the visitor saw no end on a line that keeps no transcript, and
    # on either line the socket refused the next start as "already in a chat".
    settings = settings_for()
    async with (
        run_server(settings) as here,
        run_server(settings, SlowToSubscribe(REDIS_URL, redis_prefix)) as there,
    ):
        await add_line(here.runtime, auto_accept=True, transcript_retention_seconds=retention)
        await there.runtime.lines.reload()
        await add_counsellor(here.runtime, "anna", alias="Anna")
        anna = await open_staff(here, "anna", PASSWORD)
        visitor = await open_visitor(there)
        await visitor.start()
        first = visitor.chat_id
        await anna.expect("chat.opened", chat_id=first)
        await anna.send({"type": "end", "chat_id": first})
        await anna.expect("chat.ended", chat_id=first)
        try:
            ended = await visitor.expect("chat.ended", chat_id=first, timeout=3)
        finally:
            print("V", visitor.received)
            print("A", anna.received)
        assert (ended["by"], ended["reason"]) == ("counsellor", "counsellor_ended"), ended
        # Let go of before the frame was written.
        assert not there.runtime.broker.hub.has(chat_channel(first))
        # A new chat, not "you are already in a chat".
        await visitor.start()
        assert visitor.chat_id != first
        assert not visitor.seen("error"), visitor.seen("error")
        assert len(visitor.seen("chat.ended")) == 1


@contextlib.asynccontextmanager
async def _chat_and_a_supervisor_slow_to_subscribe(
    settings: Settings, redis_prefix: str
) -> AsyncIterator[tuple[StaffClient, VisitorClient, RunningServer]]:
    """Anna in a chat on one process; the server her supervisor Bo will use, on another
    whose Redis confirms subscriptions late."""
    async with (
        run_server(settings) as here,
        run_server(settings, SlowToSubscribe(REDIS_URL, redis_prefix)) as there,
    ):
        await add_line(here.runtime)
        await there.runtime.lines.reload()
        await add_counsellor(here.runtime, "anna", alias="Anna")
        await add_counsellor(here.runtime, "bo", alias="Bo", supervisor=True)
        anna = await open_staff(here, "anna", PASSWORD)
        yield anna, await open_chat(here, anna), there


@pytest.mark.redis_only
async def test_an_observer_stops_following_a_chat_that_ended_while_it_subscribed(
    settings_for: Callable[..., Settings], redis_prefix: str
) -> None:
    # Anna ends the chat while Bo's process waits for Redis to confirm his subscription: the
    # end is published before he listens, and the ended entry is never stored. Before, Bo
    # was never told and went on "observing" a chat that was gone.
    async with _chat_and_a_supervisor_slow_to_subscribe(settings_for(), redis_prefix) as (
        anna,
        visitor,
        there,
    ):
        bo = await open_staff(there, "bo", PASSWORD, available=False)
        await bo.send({"type": "observe", "chat_id": visitor.chat_id})
        await bo.expect("chat.observing", chat_id=visitor.chat_id)
        await anna.send({"type": "end", "chat_id": visitor.chat_id})  # within the 0.3 s
        await bo.expect("chat.ended", chat_id=visitor.chat_id, timeout=3)
        channel = chat_channel(visitor.chat_id)
        # Unsubscribed before the frame was written.
        assert not there.runtime.broker.hub.has(channel), "still following the ended chat"
        # The socket observes it no more (before, it answered "unobserved" here).
        await bo.send({"type": "unobserve", "chat_id": visitor.chat_id})
        assert (await bo.expect("error"))["code"] == "not_in_chat"
        assert not bo.seen("chat.unobserved")


@pytest.mark.redis_only
async def test_an_observer_misses_nothing_stored_while_the_subscription_is_confirmed(
    settings_for: Callable[..., Settings], redis_prefix: str
) -> None:
    # The chat on one process, its supervisor on another whose Redis confirms late: a
    # message stored on the first meanwhile is published before the second listens, so the
    # replay must read the transcript once the subscription holds.
    async with _chat_and_a_supervisor_slow_to_subscribe(settings_for(), redis_prefix) as (
        _,
        visitor,
        there,
    ):
        await visitor.say("first")
        bo = await open_staff(there, "bo", PASSWORD, available=False)
        await bo.send({"type": "observe", "chat_id": visitor.chat_id})
        await bo.expect("chat.observing", chat_id=visitor.chat_id)
        await asyncio.sleep(0.1)  # within the 0.3 s the subscription takes
        await visitor.say("during")
        assert (await bo.expect("message", sender="visitor"))["text"] == "first"
        assert (await bo.expect("message", sender="visitor", timeout=3))["text"] == "during"
        await visitor.say("after")
        assert (await bo.expect("message", sender="visitor"))["text"] == "after"
        said = [f["text"] for f in bo.received if f["type"] == "message"]
        assert said == ["first", "during", "after"], said  # in order, none twice


@pytest.mark.redis_only
@pytest.mark.browser
async def test_a_visitor_on_an_auto_accept_line_sees_who_answers_when_redis_is_slow(
    settings_for: Callable[..., Settings], redis_prefix: str
) -> None:
    # What the visitor saw before the fix: "Waiting for a counsellor" above Anna's messages.
    sock = bound_socket()
    settings = settings_for(public_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    async with (
        run_server(settings, SlowToSubscribe(REDIS_URL, redis_prefix), sock=sock) as server,
        chromium() as browser,
    ):
        rt = server.runtime
        await add_line(rt, auto_accept=True)
        await add_counsellor(rt, "anna", alias="Anna")
        anna = await open_staff(server, "anna", PASSWORD)
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        trace_sockets(page, "visitor")
        await page.goto(f"{server.url}/chat/support?lang=en")
        await page.get_by_role("button", name="Start chat").click()
        opened = await anna.expect("chat.opened")
        await anna.say(opened["chat_id"], "Hi, I am here.")
        await page.get_by_text("Hi, I am here.").wait_for()
        await expect(page.locator("#chat-heading")).to_have_text("You are chatting with Anna")
        await screenshot(page, "redis-auto-accept-chatting")
        await context.close()
