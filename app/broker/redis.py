"""The Redis broker: the same interface as the in-process one, shared by many processes.

Layout (every key under one hash tag `{prefix}:`, every key with a TTL; `epoch` is a random
marker that says Redis still holds what it held, see `_sync_clock`):
`chat:<id>` hash (the record), `tx:<id>` stream (sealed entries, id `<seq>-0`), `dd:<id>` hash
(dedupe), `q:<line>` sorted set (the queue), `lc:<line>` set (live chats), `load:<staff>` set
(chats counted against capacity), `pres:<staff>` hash (presence, JSON per field), `lp:<line>`
set (presences per line), `conn:<staff>` sorted set (connection leases), `dl` sorted set
(deadlines), `v:`/`n:`/`r:` (values, counters, recent lists), `wu:<staff>` sorted set (owed
wrap-ups), `held:<hour>` hash (held rows), `held` sorted set (their hours), `held-claim:<hour>`
(who writes the hour's batch). Events go over pub/sub on `{prefix}:ev:<channel>`.

Commands from every coroutine of the process go through one connection (a `Lane`): whatever
was asked while the previous batch was on the wire goes out as the next batch, so a busy
process pays one round trip per batch, not per command. Publishing does not wait at all:
local listeners get the event at once, other processes a moment later. Redis is reached by
URL or through Sentinel (app/broker/redis_connection.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

import orjson
from redis.exceptions import NoScriptError, RedisError

from app.broker import redis_scripts
from app.broker.base import (
    CHAT_MAX_LIFETIME,
    Appending,
    AppendStatus,
    Broker,
    BrokerUnavailableError,
    Lease,
    Queued,
    Quota,
    Refusal,
    Transition,
)
from app.broker.hub import LOCAL_ENTRY, Event
from app.broker.records import (
    LIVE_STATES,
    QUEUE_TIE_STEP,
    ChatRecord,
    Presence,
    StaffStatus,
    encode_change,
    queue_band,
)
from app.broker.redis_connection import DOWN, Events, Lane, create_client, reason, redacted
from app.kit import jsonutil
from app.kit.logging import STATE_CHANGE

logger = logging.getLogger(__name__)

# A signed-in counsellor's presence outlives their connections by this much (seconds).
PRESENCE_TTL = 24 * 3600
# How often the connection is checked and the clock offset to Redis measured (seconds).
HEALTH_SECONDS = 1.0
# After Redis lost its data, how long a process waits, once it has written back what its
# clients had, before it takes clients again: every process that held some does the same
# within a health check or two, so a client coming back through any of them is told.
LOSS_SETTLE_SECONDS = 3 * HEALTH_SECONDS

_REFUSALS = {r.value: r for r in Refusal}
_LIVE = "," + ",".join(sorted(s.value for s in LIVE_STATES)) + ","
_ORIGIN_BYTES = 16
_LIFETIME_MS = CHAT_MAX_LIFETIME * 1000
_KEY_NAMES_KEPT = 10_000
_RELEASE_SLICE = 1000

__all__ = ["RedisBroker", "redacted"]


class RedisBroker(Broker):
    """Ephemeral state in Redis, safe for any number of processes (see the module docstring).

    `url`: one Redis; with `sentinels` ((host, port) pairs), the primary they name for
    `service` (the URL then gives only credentials and database). `wait_replicas`: writes
    count as done once that many replicas hold them (`WAIT`), so a failover loses nothing
    a client was told had happened."""

    outlives_process = True

    def __init__(
        self,
        url: str | None,
        prefix: str = "lykta",
        *,
        sentinels: Sequence[tuple[str, int]] = (),
        service: str = "lykta",
        wait_replicas: int = 0,
    ) -> None:
        super().__init__()
        self.url = url
        self.prefix = prefix
        self._where = (
            f"Sentinel service {service!r} at "
            + ", ".join(f"{host}:{port}" for host, port in sentinels)
            if sentinels
            else redacted(url or "")
        )
        self._base = f"{{{prefix}}}:"
        self._events = f"{self._base}ev:".encode()
        self._origin = secrets.token_hex(_ORIGIN_BYTES // 2).encode()
        self._client, self._sentinels = create_client(url, sentinels, service)
        self._lane = Lane(self._client, self._connection_lost, wait_replicas=wait_replicas)
        # Reads of a whole queue (thousands of entries, for position updates) on a lane of
        # their own: routing's commands do not wait behind a long reply.
        self._bulk = Lane(self._client, self._connection_lost, wait_replicas=wait_replicas)
        self._subscriber = Events(
            self._client, self._deliver, self._connection_lost, self._events + self._origin
        )
        self._shas = {
            name: hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()
            for name, body in redis_scripts.ALL.items()
        }
        self._offset = 0.0
        # The marker this process found in Redis (`_sync_clock`), and whether Redis has since
        # been found without it: it lost its data, and our clients must be told.
        self._epoch: bytes | None = None
        self._lost = False
        self._health: asyncio.Task[None] | None = None
        self._recovering = False
        self._recovery: asyncio.Task[None] | None = None
        self._started = False
        # A chat's transcript key names, built once (every message needs them).
        self._append_keys: dict[str, list[str]] = {}

    def _k(self, name: str) -> str:
        return self._base + name

    def _transcript_keys(self, chat_id: str) -> list[str]:
        keys = self._append_keys.get(chat_id)
        if keys is None:
            if len(self._append_keys) >= _KEY_NAMES_KEPT:
                self._append_keys.clear()
            keys = [self._k(f"chat:{chat_id}"), self._k(f"tx:{chat_id}"), self._k(f"dd:{chat_id}")]
            self._append_keys[chat_id] = keys
        return keys

    # Life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._lane.start()
        self._bulk.start()
        try:
            await self._prepare()
            await self._subscriber.connect([])
        except (BrokerUnavailableError, *DOWN, RedisError) as exc:
            await self.close()
            raise BrokerUnavailableError(
                f"cannot reach Redis at {self._where}: {reason(exc)}"
            ) from None
        self._health = asyncio.create_task(self._watch())
        self._started = True

    async def close(self) -> None:
        self._started = False
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        if self._health is not None:
            self._health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health
            self._health = None
        await self._lane.stop()
        await self._bulk.stop()
        await self._subscriber.close()
        for client in [self._client, *self._sentinels]:
            with contextlib.suppress(*DOWN, RedisError):
                await client.aclose()

    async def ping(self) -> None:
        # A command on the data (not PING): a Redis still loading its data refuses it, and a
        # refusal counts as the connection lost until Redis serves again.
        await self._call("EXISTS", self._k("ready"))

    async def _prepare(self) -> None:
        """Load the scripts and measure the clock offset to Redis."""
        for name, body in redis_scripts.ALL.items():
            sha = await self._call("SCRIPT", "LOAD", body)
            self._shas[name] = sha.decode() if isinstance(sha, bytes) else str(sha)
        await self._sync_clock()

    async def _sync_clock(self) -> None:
        """Measure the clock offset to Redis, and check that Redis still holds the marker
        this process found (or left) there: a Redis that lost its data (restarted without
        persistence, flushed) has none, or one another process has set since."""
        before = time.time()
        seconds, micros, epoch = await self._script(
            "epoch", [self._k("epoch")], [secrets.token_hex(8), CHAT_MAX_LIFETIME]
        )
        after = time.time()
        self._offset = int(seconds) + int(micros) / 1e6 - (before + after) / 2
        if self._epoch is not None and epoch != self._epoch:
            self._lost = True
        self._epoch = epoch

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_SECONDS)
            if self._recovering:
                continue
            try:
                await self._sync_clock()
            except BrokerUnavailableError:
                self._connection_lost()
            if self._lost:
                # Emptied under a connection that held: as after an outage, clients come
                # back, and are told what was lost.
                self._connection_lost()

    def _connection_lost(self) -> None:
        if self._recovering or not self._started:
            return
        self._recovering = True
        logger.warning("Redis connection lost; clients are told to reconnect", extra=STATE_CHANGE)
        self._set_available(False)
        self._recovery = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            try:
                await self._lane.reset()
                await self._bulk.reset()
                await self._prepare()
                channels = [self._events + c.encode() for c in self.hub.channels()]
                await self._subscriber.connect(channels)
                if self._lost:
                    await self._write_back()
            except (BrokerUnavailableError, *DOWN, RedisError):
                continue
            break
        self._recovering = False
        logger.warning("Redis connection restored", extra=STATE_CHANGE)
        self._set_available(True)

    async def _write_back(self) -> None:
        """Redis came back without its data: `on_lost` callbacks write back what this
        process's clients had, then the other processes get time to do the same."""
        logger.warning("Redis lost its data (no persistence?): clients are told what was lost")
        for callback in list(self._losses):
            try:
                await callback()
            except (BrokerUnavailableError, *DOWN, RedisError):
                raise  # Redis is gone again: all of it once more when it is back
            except Exception:
                logger.exception("writing back after Redis lost its data failed")
        self._lost = False
        await asyncio.sleep(LOSS_SETTLE_SECONDS)

    # Commands -----------------------------------------------------------------------------
    async def _call(self, *args: Any) -> Any:
        return await self._lane.call(args)

    async def _script(
        self, name: str, keys: Sequence[str], args: Sequence[Any], *, bulk: bool = False
    ) -> Any:
        lane = self._bulk if bulk else self._lane
        command = ("EVALSHA", self._shas[name], len(keys), *keys, *args)
        try:
            return await lane.call(command)
        except NoScriptError:
            # Redis restarted and forgot the scripts: load them again, once.
            await self._prepare()
            return await lane.call(command)

    def now(self) -> float:
        # Redis's clock, without a round trip: the offset is measured every few seconds.
        return time.time() + self._offset

    # Chats --------------------------------------------------------------------------------
    async def create_chat(self, record: ChatRecord, *, queue_limit: int) -> Queued | None:
        flat: list[str] = []
        for name, value in record.to_fields().items():
            flat += (name, value)
        base, end = queue_band(record.priority)
        band = [repr(base), repr(end)]
        reply = await self._script(
            "create_chat",
            [
                self._k(f"chat:{record.id}"),
                self._k(f"q:{record.line}"),
                self._k(f"lc:{record.line}"),
            ],
            [queue_limit, *band, record.id, CHAT_MAX_LIFETIME, repr(QUEUE_TIE_STEP), *flat],
        )
        if int(reply[0]) < 0:
            return None
        return Queued(int(reply[0]), float(reply[1]))

    async def get_chat(self, chat_id: str) -> ChatRecord | None:
        raw = await self._call("HGETALL", self._k(f"chat:{chat_id}"))
        return _record(raw)

    async def get_chats(self, chat_ids: list[str]) -> list[ChatRecord]:
        if not chat_ids:
            return []
        replies = await asyncio.gather(
            *(self._lane.call(("HGETALL", self._k(f"chat:{c}"))) for c in chat_ids)
        )
        return [r for r in (_record(raw) for raw in replies) if r is not None]

    async def transition(self, chat_id: str, change: Transition) -> ChatRecord | Refusal:
        sets: list[str] = []
        deletes: list[str] = []
        for name, value in change.changes.items():
            encoded = encode_change(name, value)
            if encoded is None:
                deletes.append(name)
            else:
                sets += (name, encoded)
        assign_staff, capacity = change.assign if change.assign else ("", 0)
        reply = await self._script(
            "transition",
            [self._k(f"chat:{chat_id}")],
            [
                self._base,
                chat_id,
                CHAT_MAX_LIFETIME,
                "," + ",".join(s.value for s in change.expect) + ",",
                change.offered_to or "",
                change.counsellor or "",
                "1" if change.dequeue else "",
                repr(change.enqueue) if change.enqueue is not None else "",
                assign_staff,
                capacity,
                change.release or "",
                _LIVE,
                change.continuity or "",
                change.owe_wrapup[0] if change.owe_wrapup else "",
                _ms(change.owe_wrapup[1]) if change.owe_wrapup else 0,
                len(sets) // 2,
                *sets,
                len(deletes),
                *deletes,
                "" if change.interpreter is None else (change.interpreter or "-"),
            ],
        )
        status = reply[0].decode()
        if status != "ok":
            return _REFUSALS[status]
        record = _record(reply[1])
        assert record is not None
        return record

    async def delete_chat(self, chat_id: str) -> None:
        await self._script(
            "delete_chat",
            [self._k(f"chat:{chat_id}"), self._k(f"tx:{chat_id}"), self._k(f"dd:{chat_id}")],
            [self._base, chat_id],
        )

    async def expire_chat(
        self, chat_id: str, *, record: float | None = None, transcript: float | None = None
    ) -> None:
        # LT: only ever brings an expiry forward (a key without one counts as never expiring).
        calls = []
        if record is not None:
            calls.append(self._call("PEXPIRE", self._k(f"chat:{chat_id}"), _ms(record), "LT"))
        if transcript is not None:
            for name in (f"tx:{chat_id}", f"dd:{chat_id}"):
                calls.append(self._call("PEXPIRE", self._k(name), _ms(transcript), "LT"))
        await asyncio.gather(*calls)

    async def line_chat_ids(self, line: str) -> list[str]:
        members = await self._call("SMEMBERS", self._k(f"lc:{line}"))
        return sorted(m.decode() for m in members)

    async def unleased_chats(self, line: str, lease_prefix: str, page: int = 100) -> list[str]:
        # In Redis, a page at a time: only the chats found cross the network, not every
        # chat's record (the sweep runs in every process every `sweep_seconds`).
        found: dict[str, None] = {}  # SSCAN may return a chat twice
        cursor: bytes | str = "0"
        while True:
            cursor, ids = await self._script(
                "unleased_chats",
                [self._k(f"lc:{line}")],
                [self._base, cursor, page, _LIVE, lease_prefix],
            )
            found.update((i.decode(), None) for i in ids)
            if cursor in (b"0", 0):
                return list(found)

    # Queues -------------------------------------------------------------------------------
    async def queue(self, line: str, limit: int | None = None) -> list[tuple[str, float]]:
        if limit is not None and limit <= 0:
            return []
        flat = await self._script(
            "queue",
            [self._k(f"q:{line}")],
            [self._base, -1 if limit is None else limit - 1],
            bulk=limit is None,
        )
        return [(flat[i].decode(), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def queue_length(self, line: str) -> int:
        return int(await self._call("ZCARD", self._k(f"q:{line}")))

    # Counsellor load ----------------------------------------------------------------------
    async def staff_chat_ids(self, staff_id: str) -> list[str]:
        members = await self._call("SMEMBERS", self._k(f"load:{staff_id}"))
        return sorted(m.decode() for m in members)

    async def staff_loads(self, staff_ids: list[str]) -> dict[str, int]:
        if not staff_ids:
            return {}
        counts = await self._script("staff_loads", [self._k(f"load:{s}") for s in staff_ids], [])
        return {s: int(n) for s, n in zip(staff_ids, counts, strict=True)}

    # Owed wrap-ups ------------------------------------------------------------------------
    async def owed_wrapups(self, staff_id: str) -> list[str]:
        owed = await self._script("owed_wrapups", [self._k(f"wu:{staff_id}")], [])
        return [chat_id.decode() for chat_id in owed]

    async def settle_wrapup(self, staff_id: str, chat_id: str) -> None:
        await self._call("ZREM", self._k(f"wu:{staff_id}"), chat_id)

    # Held rows ----------------------------------------------------------------------------
    async def hold_rows(self, hour: int, rows: Sequence[tuple[str, str]]) -> None:
        if not rows:
            return
        flat: list[str] = []
        for row_id, row in rows:
            flat += (row_id, row)
        await self._script(
            "hold_rows",
            [self._k(f"held:{hour}"), self._k("held")],
            [hour, CHAT_MAX_LIFETIME, *flat],
        )

    async def held_hours(self) -> list[int]:
        return [int(hour) for hour in await self._call("ZRANGE", self._k("held"), 0, -1)]

    async def peek_held(self, hour: int) -> dict[str, str]:
        raw = await self._call("HGETALL", self._k(f"held:{hour}"))
        return {raw[i].decode(): raw[i + 1].decode() for i in range(0, len(raw or ()), 2)}

    async def claim_held(self, hour: int, claim: str, ttl: float) -> dict[str, str] | None:
        reply = await self._script(
            "claim_held",
            [self._k(f"held-claim:{hour}"), self._k(f"held:{hour}")],
            [claim, _ms(ttl)],
            bulk=True,
        )
        if int(reply[0]) == 0:
            return None
        return {reply[i].decode(): reply[i + 1].decode() for i in range(1, len(reply), 2)}

    async def release_held(self, hour: int, claim: str, row_ids: Sequence[str]) -> None:
        keys = [self._k(f"held:{hour}"), self._k("held"), self._k(f"held-claim:{hour}")]
        # In slices (Lua's unpack has a limit); the claim ends with the last one.
        for start in range(0, max(len(row_ids), 1), _RELEASE_SLICE):
            last = start + _RELEASE_SLICE >= len(row_ids)
            ids = row_ids[start : start + _RELEASE_SLICE]
            await self._script("release_held", keys, [hour, claim if last else "", *ids])

    # Transcript ---------------------------------------------------------------------------
    async def append(
        self,
        chat_id: str,
        entries: Sequence[Appending],
        *,
        counsellor: str | None = None,
        quota: Quota | None = None,
        interpreter: str | None = None,
    ) -> list[tuple[int, AppendStatus]]:
        keys = self._transcript_keys(chat_id)
        holder = f"i:{interpreter}" if interpreter is not None else counsellor or ""
        args: list[Any] = [holder, _LIFETIME_MS, b"", "", ""]
        if quota is not None:
            keys = [*keys, self._k(f"n:{quota.key}")]  # the counter `incr` keeps
            args[3:5] = [quota.limit, _ms(quota.window)]
        announced = self.available
        for seq, entry, dedupe, announce in entries:
            payload, tail = b"", ""
            if announce is not None and announced:
                channel, payload, sealed = self._wire_head(*announce)
                if args[2] != channel:
                    if args[2]:
                        raise ValueError("the events of one append go on one channel")
                    args[2] = channel
                # The event carries this very entry: the script puts it at the payload's end.
                if sealed is entry:
                    tail = "1"
                elif sealed is not None:
                    payload += sealed
            args += (seq, entry, dedupe or "", payload, tail)
        reply = await self._script("append", keys, args)
        answers: list[tuple[int, AppendStatus]] = []
        for index in range(0, len(reply), 2):
            status: AppendStatus = reply[index + 1].decode()
            answers.append((int(reply[index]), status))
            if status == "ok":
                announce = entries[index // 2][3]
                if announce is not None:
                    self.hub.dispatch(*announce)  # other processes got it from the script
        return answers

    async def read(self, chat_id: str, after: int = 0) -> list[tuple[int, bytes]]:
        items = await self._call("XRANGE", self._k(f"tx:{chat_id}"), f"{after + 1}-0", "+")
        out: list[tuple[int, bytes]] = []
        for entry_id, fields in items:
            seq = int(entry_id.split(b"-", 1)[0])
            # Fields come as a flat [name, value] list.
            out.append((seq, fields[1]))
        return out

    async def delete_transcript(self, chat_id: str) -> None:
        await self._call("DEL", self._k(f"tx:{chat_id}"), self._k(f"dd:{chat_id}"))

    # Presence -----------------------------------------------------------------------------
    async def put_presence(self, presence: Presence) -> None:
        fields = jsonutil.loads(presence.to_json())
        flat: list[str] = []
        for name, value in fields.items():
            flat += (name, jsonutil.dumps(value))
        await self._script(
            "put_presence",
            [self._k(f"pres:{presence.staff_id}")],
            [self._base, presence.staff_id, PRESENCE_TTL, jsonutil.dumps(presence.duty), *flat],
        )

    async def update_presence(self, staff_id: str, changes: dict[str, Any]) -> Presence | None:
        flat: list[str] = []
        for name, value in changes.items():
            flat += (name, jsonutil.dumps(value))
        raw = await self._script(
            "update_presence",
            [self._k(f"pres:{staff_id}")],
            [self._base, staff_id, PRESENCE_TTL, *flat],
        )
        return _presence(raw) if raw else None

    async def get_presence(self, staff_id: str) -> Presence | None:
        raw = await self._call("HGETALL", self._k(f"pres:{staff_id}"))
        return _presence(raw) if raw else None

    async def line_presences(self, line: str) -> list[Presence]:
        replies = await self._script("line_presences", [self._k(f"lp:{line}")], [self._base])
        return [_presence(raw) for raw in replies]

    async def remove_presence(self, staff_id: str) -> None:
        await self._script("remove_presence", [self._k(f"pres:{staff_id}")], [self._base, staff_id])

    async def connect(self, staff_id: str, connection_id: str, ttl: float) -> None:
        await self._script(
            "connect",
            [self._k(f"conn:{staff_id}"), self._k(f"pres:{staff_id}")],
            [connection_id, max(1, round(ttl * 1000)), PRESENCE_TTL],
        )

    async def renew(self, leases: list[Lease]) -> None:
        if not leases:
            return
        keys = [self._k("dl")]
        args: list[Any] = [PRESENCE_TTL, CHAT_MAX_LIFETIME]
        for lease in leases:
            keys += [self._k(f"conn:{lease.name}"), self._k(f"pres:{lease.name}")]
            ttl_ms = max(1, round(lease.ttl * 1000))
            args += [lease.connection_id, ttl_ms, lease.deadline, repr(lease.deadline_at)]
        await self._script("renew", keys, args)

    async def disconnect(self, staff_id: str, connection_id: str) -> int:
        return int(await self._script("disconnect", [self._k(f"conn:{staff_id}")], [connection_id]))

    async def connection_counts(self, staff_ids: list[str]) -> dict[str, int]:
        if not staff_ids:
            return {}
        counts = await self._script(
            "connection_counts", [self._k(f"conn:{s}") for s in staff_ids], []
        )
        return {s: int(n) for s, n in zip(staff_ids, counts, strict=True)}

    # Deadlines ----------------------------------------------------------------------------
    async def schedule(self, key: str, at: float) -> None:
        deadlines = self._k("dl")
        self._lane.send(("ZADD", deadlines, repr(at), key))
        await self._call("EXPIRE", deadlines, CHAT_MAX_LIFETIME)

    async def cancel(self, key: str) -> None:
        await self._call("ZREM", self._k("dl"), key)

    async def pop_due(self, now: float, limit: int = 100) -> list[str]:
        due = await self._script("pop_due", [self._k("dl")], [repr(now), limit])
        return [key.decode() for key in due]

    # Small shared values ------------------------------------------------------------------
    async def incr(self, key: str, ttl: float) -> int:
        return int(await self._script("incr", [self._k(f"n:{key}")], [_ms(ttl)]))

    async def set_value(self, key: str, value: str, ttl: float) -> None:
        await self._call("SET", self._k(f"v:{key}"), value, "PX", _ms(ttl))

    async def expire_value(self, key: str, ttl: float) -> None:
        await self._call("PEXPIRE", self._k(f"v:{key}"), _ms(ttl), "LT")

    async def set_value_if_absent(self, key: str, value: str, ttl: float) -> bool:
        reply = await self._call("SET", self._k(f"v:{key}"), value, "PX", _ms(ttl), "NX")
        return reply is not None

    async def get_value(self, key: str) -> str | None:
        value = await self._call("GET", self._k(f"v:{key}"))
        return None if value is None else value.decode()

    async def delete_value(self, key: str) -> None:
        await self._call("DEL", self._k(f"v:{key}"))

    async def push_recent(self, key: str, value: float, keep: int, ttl: float) -> None:
        await self._script("push_recent", [self._k(f"r:{key}")], [repr(value), keep, _ms(ttl)])

    async def recent(self, key: str) -> list[float]:
        values = await self._call("LRANGE", self._k(f"r:{key}"), 0, -1)
        return [float(v) for v in values]

    # Events -------------------------------------------------------------------------------
    async def publish(self, channel: str, event: Event) -> None:
        self.hub.dispatch(channel, event)
        if self.available:
            self._lane.send(("PUBLISH", *self._wire(channel, event)))

    def _wire(self, channel: str, event: Event) -> tuple[bytes, bytes]:
        """The pub/sub channel and payload of an event for other processes."""
        raw_channel, payload, sealed = self._wire_head(channel, event)
        return raw_channel, payload if sealed is None else payload + sealed

    def _wire_head(self, channel: str, event: Event) -> tuple[bytes, bytes, bytes | None]:
        """`_wire`, with a sealed entry left off the payload's end: the payload is
        `<origin> <JSON>`, or `<origin> <JSON>\n<sealed entry>` (raw: JSON has no bare
        newline, and base64 would cost a third more on the wire and work at both ends)."""
        remote = event.copy()
        remote.pop(LOCAL_ENTRY, None)
        sealed = remote.pop("sealed", None)
        if not isinstance(sealed, bytes):
            if sealed is not None:
                remote["sealed"] = sealed
            sealed = None
        head = self._origin + b" " + orjson.dumps(remote, default=_bytes_as_base64)
        if sealed is not None:
            head += b"\n"
        return self._events + channel.encode(), head, sealed

    def _deliver(self, raw_channel: bytes, payload: bytes) -> None:
        channel = raw_channel[len(self._events) :].decode()
        if payload[:1] != b"*":
            self._deliver_one(channel, payload)
            return
        # The events of one append: '*' then each as <length>:<event> (redis_scripts.APPEND).
        at, end = 1, len(payload)
        while at < end:
            colon = payload.index(b":", at)
            size = int(payload[at:colon])
            at = colon + 1 + size
            self._deliver_one(channel, payload[colon + 1 : at])

    def _deliver_one(self, channel: str, payload: bytes) -> None:
        if payload[:_ORIGIN_BYTES] == self._origin:
            return  # our own event, already delivered locally
        head, newline, sealed = payload[_ORIGIN_BYTES + 1 :].partition(b"\n")
        try:
            event = jsonutil.loads(head)
        except jsonutil.JSONDecodeError:
            return
        if newline:
            event["sealed"] = sealed
        self.hub.dispatch(channel, event)

    async def _subscribe_remote(self, channel: str) -> None:
        await self._subscriber.subscribe(self._events + channel.encode())

    async def _unsubscribe_remote(self, channel: str) -> None:
        await self._subscriber.unsubscribe(self._events + channel.encode())

    # For tests and the privacy drill: every key this broker holds, as text.
    async def dump(self) -> str:
        parts: list[str] = []
        async for key in _scan(self, self._base + "*"):
            kind = (await self._call("TYPE", key)).decode()
            parts.append(key.decode())
            if kind == "string":
                parts.append(repr(await self._call("GET", key)))
            elif kind == "hash":
                parts.append(repr(await self._call("HGETALL", key)))
            elif kind == "stream":
                parts.append(repr(await self._call("XRANGE", key, "-", "+")))
            elif kind in ("set",):
                parts.append(repr(await self._call("SMEMBERS", key)))
            elif kind == "zset":
                parts.append(repr(await self._call("ZRANGE", key, 0, -1)))
            elif kind == "list":
                parts.append(repr(await self._call("LRANGE", key, 0, -1)))
        return "\n".join(parts)

    async def keys_without_ttl(self) -> list[str]:
        """Keys that would outlive every process (there must be none)."""
        out = []
        async for key in _scan(self, self._base + "*"):
            if int(await self._call("TTL", key)) < 0:
                out.append(key.decode())
        return out

    async def purge(self) -> int:
        """Delete every key under this broker's prefix (tests; never the whole database)."""
        deleted = 0
        async for key in _scan(self, self._base + "*"):
            deleted += int(await self._call("DEL", key))
        return deleted


async def _scan(broker: RedisBroker, pattern: str) -> Any:
    cursor = b"0"
    while True:
        cursor, keys = await broker._call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        for key in keys:
            yield key
        if cursor in (b"0", 0):
            return


def _bytes_as_base64(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _record(raw: list[bytes] | None) -> ChatRecord | None:
    if not raw:
        return None
    fields = {raw[i].decode(): raw[i + 1].decode() for i in range(0, len(raw), 2)}
    return ChatRecord.from_fields(fields)


def _presence(raw: list[bytes]) -> Presence:
    f = {raw[i]: jsonutil.loads(raw[i + 1]) for i in range(0, len(raw), 2)}
    return Presence(
        staff_id=f[b"staff_id"],
        alias=f[b"alias"],
        status=StaffStatus(f[b"status"]),
        capacity=int(f[b"capacity"]),
        qualification=f[b"qualification"],
        languages=list(f[b"languages"]),
        peer=bool(f[b"peer"]),
        supervisor=bool(f[b"supervisor"]),
        duty={k: float(v) for k, v in f[b"duty"].items()},
        last_offer_at=float(f[b"last_offer_at"]),
        missed_offers=int(f[b"missed_offers"]),
        paused_until=float(f.get(b"paused_until", 0.0)),
    )
