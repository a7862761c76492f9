"""Lykta on Redis through Sentinel: a failover in the middle of chats loses and doubles nothing.

A primary, a replica and a Sentinel of the test's own (real redis-server processes), and two
`lykta serve` processes that find the primary through the Sentinel and count a write as done
once the replica holds it (`LYKTA_REDIS_WAIT_REPLICAS=1`).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from app.broker.base import BrokerUnavailableError
from app.broker.redis import RedisBroker
from app.settings import Settings
from tests.support.clients import StaffClient, VisitorClient, open_chat, open_staff
from tests.support.processes import SentinelSetup, processes, seeding
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.test_scale_out import (
    SETTLE,
    _retry,
    closed_with,
    last_seen,
    resume_visitor,
    seqs,
    stored_messages,
    until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def acked(client: VisitorClient | StaffClient) -> set[str]:
    return {f["client_id"] for f in client.received if f.get("type") == "message.ack"}


async def test_a_sentinel_failover_mid_chat_loses_and_doubles_nothing(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    redis = SentinelSetup(tmp_path)
    await redis.start()
    settings = scale_settings(
        redis_url=None,
        redis_sentinels=redis.sentinels,
        redis_sentinel_service=redis.SERVICE,
        redis_wait_replicas=1,
    )
    try:
        async with seeding(settings) as rt:
            await add_line(rt, visitor_grace_seconds=60, counsellor_grace_seconds=60)
            await add_counsellor(rt, "anna")
        async with processes(settings, tmp_path) as (a, b):
            # Every message crosses Redis: the visitor on one process, Anna on the other.
            anna = await open_staff(b, "anna", PASSWORD)
            visitor = await open_chat(a, anna)
            chat_id = visitor.chat_id
            sent_by_visitor: list[str] = []
            sent_by_anna: list[str] = []
            for index in range(5):
                cid = f"v{index}-{uuid.uuid4().hex[:6]}"
                await visitor.say(f"visitor {index}", client_id=cid)
                sent_by_visitor.append(cid)
                sid = f"s{index}-{uuid.uuid4().hex[:6]}"
                await anna.say(chat_id, f"anna {index}", client_id=sid)
                sent_by_anna.append(sid)
            # Messages on the wire, their acknowledgements unread, as the primary changes.
            for index in range(5, 15):
                cid = f"v{index}-{uuid.uuid4().hex[:6]}"
                await visitor.send({"type": "message", "text": f"v {index}", "client_id": cid})
                sent_by_visitor.append(cid)
                sid = f"s{index}-{uuid.uuid4().hex[:6]}"
                await anna.send(
                    {"type": "message", "chat_id": chat_id, "text": f"a {index}", "client_id": sid}
                )
                sent_by_anna.append(sid)
            old_primary = await redis.fail_over()

            # Both are told to come back shortly, and do, each to either process, and send
            # again what was not acknowledged under the same ids, as the widget and the
            # console do (again, should the service still be settling and close them).
            assert await closed_with(visitor) == 1013
            assert await closed_with(anna) == 1013
            assert await redis.primary_port() != old_primary
            visitors: list[VisitorClient] = [visitor]
            staff: list[StaffClient] = [anna]

            async def visitor_comes_back() -> VisitorClient:
                frames = [f for v in visitors for f in v.received]
                back = await resume_visitor(b, visitor, last_seen(frames, chat_id))
                visitors.append(back)
                done = {cid for v in visitors for cid in acked(v)}
                for index, cid in enumerate(sent_by_visitor):
                    if cid not in done:
                        await back.say(f"v {index}", client_id=cid)
                return back

            async def anna_comes_back() -> StaffClient:
                back = await open_staff(a, "anna", PASSWORD, available=False)
                staff.append(back)
                assert [c["chat_id"] for c in back.hello["chats"]] == [chat_id]
                seen = [s for client in staff for s in seqs(client.received, chat_id)]
                await back.send({"type": "sync", "chat_id": chat_id, "last_seq": max(seen)})
                await back.expect("synced", chat_id=chat_id)
                done = {sid for client in staff for sid in acked(client)}
                for index, sid in enumerate(sent_by_anna):
                    if sid not in done:
                        await back.say(chat_id, f"a {index}", client_id=sid)
                return back

            visitor_back = await _retry(visitor_comes_back)
            anna_back = await _retry(anna_comes_back)
            cid = f"after-{uuid.uuid4().hex[:6]}"
            await visitor_back.say("after the failover", client_id=cid)
            sent_by_visitor.append(cid)
            await anna_back.expect("message", text="after the failover", timeout=SETTLE)
            sid = f"after-{uuid.uuid4().hex[:6]}"
            await anna_back.say(chat_id, "and after", client_id=sid)
            sent_by_anna.append(sid)
            await visitor_back.expect("message", text="and after", timeout=SETTLE)

            # Stored once each, in the new primary; nobody saw an entry twice or missed one.
            stored = [cid or "" for _, cid in await stored_messages(settings, chat_id)]
            assert sorted(stored) == sorted(sent_by_visitor + sent_by_anna)
            for clients in (visitors, staff):
                frames = [f for client in clients for f in client.received]
                seen = seqs(frames, chat_id)
                assert len(seen) == len(set(seen)), "a client got an entry twice"
                own = {int(f["seq"]) for f in frames if f.get("type") == "message.ack"}
                covered = set(seen) | own
                assert sorted(covered) == list(range(1, max(covered) + 1)), "a gap"
    finally:
        await asyncio.shield(redis.stop())


async def test_a_write_counts_as_done_only_once_a_replica_holds_it(
    tmp_path: Path, redis_prefix: str
) -> None:
    redis = SentinelSetup(tmp_path)
    await redis.start()
    broker = RedisBroker(
        None,
        redis_prefix,
        sentinels=[("127.0.0.1", redis.sentinel_port)],
        service=redis.SERVICE,
        wait_replicas=1,
    )
    changes: list[bool] = []
    broker.on_availability(changes.append)
    await broker.start()
    replica = redis.replica_process(await redis.primary_port())
    try:
        await broker.set_value("k", "v", 60)
        assert await broker.get_value("k") == "v"
        # A replica that does not answer: the primary still takes the write, but nobody is
        # told it happened, and clients are sent away to come back (and send it again).
        replica.send_signal(signal.SIGSTOP)
        with pytest.raises(BrokerUnavailableError):
            await broker.set_value("k", "w", 60)
        await until(lambda: changes == [False], "Redis reported unavailable")
        replica.send_signal(signal.SIGCONT)
        await until(lambda: changes == [False, True], "Redis back", timeout=SETTLE)
        await broker.set_value("k", "x", 60)
        assert await broker.get_value("k") == "x"
    finally:
        replica.send_signal(signal.SIGCONT)
        await broker.close()
        await asyncio.shield(redis.stop())
