"""Connections of the Redis broker, through redis-py's public asyncio API.

A `Lane` is one connection that sends whatever was asked while its previous batch was on the
wire as the next batch, in one write: a busy process pays one round trip per batch, not per
command. `Events` is the pub/sub connection: events are handed to the broker as they are
read, and a subscription counts only once Redis has confirmed it.

Both reach Redis through `redis.asyncio` clients (a URL or Sentinel), their connection pools,
`Connection.send_packed_command` and `Connection.read_response`, and `PubSub`; commands are
packed with `hiredis.pack_command`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import hiredis
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.broker.base import BrokerUnavailableError

logger = logging.getLogger(__name__)

# How long one batch (or a subscription's confirmation) may take before Redis counts as
# unreachable (seconds). Read when used: tests shorten it.
COMMAND_TIMEOUT = 5.0
# How long Redis waits for replicas to acknowledge a batch's writes (`WAIT`), when asked to.
REPLICA_WAIT_MS = 1000
# Channels subscribed per SUBSCRIBE command when (re)connecting.
SUBSCRIBE_CHUNK = 1000

# What a lost or unreachable Redis raises (a LOADING Redis too: it cannot answer yet).
DOWN = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)

Command = Sequence[Any]


def redacted(url: str) -> str:
    """The Redis URL without its password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def create_client(
    url: str | None, sentinels: Sequence[tuple[str, int]] = (), service: str = "lykta"
) -> tuple[Redis, list[Redis]]:
    """A client for one Redis (`url`) or for the primary that `sentinels` name for `service`
    (then `url`, if given, supplies only the credentials and the database number), and the
    clients to close with it (the sentinels').

    Nothing is retried inside redis-py: a command that may have run is never sent twice (the
    broker's callers decide what a failure means)."""
    options: dict[str, Any] = {
        "protocol": 2,
        "socket_connect_timeout": COMMAND_TIMEOUT,
        # Replies are bounded per batch (Lane), not per reply: one timer per batch.
        "socket_timeout": None,
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),
    }
    if not sentinels:
        if not url:
            raise ValueError("a Redis URL or sentinels are needed")
        return Redis.from_url(url, **options), []
    sentinel_options: dict[str, Any] = {"socket_timeout": COMMAND_TIMEOUT}
    if url:
        parts = urlsplit(url)
        if parts.password is not None:
            options["password"] = unquote(parts.password)
            sentinel_options["password"] = unquote(parts.password)
        if parts.username:
            options["username"] = unquote(parts.username)
        db = parts.path.strip("/")
        if db.isdigit():
            options["db"] = int(db)
    # redis-py's Sentinel has no type annotations.
    make_sentinel: Any = Sentinel
    sentinel = make_sentinel(
        list(sentinels),
        sentinel_kwargs=sentinel_options,
        socket_connect_timeout=COMMAND_TIMEOUT,
    )
    client: Redis = sentinel.master_for(service, redis_class=Redis, **options)
    return client, list(sentinel.sentinels)


class Lane:
    """One connection; what is asked while a batch is on the wire goes next, together.

    `wait_replicas`: each batch ends with `WAIT`, and its commands count as done only once
    that many replicas have them (a failover then loses nothing that was answered)."""

    def __init__(
        self, client: Redis, on_lost: Callable[[], None], *, wait_replicas: int = 0
    ) -> None:
        self._client = client
        self._on_lost = on_lost
        self._wait = wait_replicas
        self._conn: Connection | None = None
        # Asked, not yet sent: (command, future; None when nobody waits for the reply).
        self._pending: list[tuple[Command, asyncio.Future[Any] | None]] = []
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closed = False

    def call(self, command: Command) -> asyncio.Future[Any]:
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed:
            future.set_exception(BrokerUnavailableError("the broker is closed"))
            return future
        self._pending.append((command, future))
        if self._task is None:
            self._task = loop.create_task(self._run())
        return future

    def send(self, command: Command) -> None:
        """Queue a command whose reply nobody waits for (a publish)."""
        if self._closed:
            return
        self._pending.append((command, None))
        if self._task is None:
            loop = self._loop or asyncio.get_running_loop()
            self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._execute(batch)
        finally:
            self._task = None

    async def _execute(self, batch: list[tuple[Command, asyncio.Future[Any] | None]]) -> None:
        try:
            conn = self._conn
            if conn is None:
                pool: Any = self._client.connection_pool  # its methods have no annotations
                conn = self._conn = await pool.get_connection()
            data = [hiredis.pack_command(tuple(command)) for command, _ in batch]
            if self._wait:
                wait: tuple[Any, ...] = ("WAIT", self._wait, REPLICA_WAIT_MS)
                data.append(hiredis.pack_command(wait))
            await conn.send_packed_command(b"".join(data), check_health=False)
            replies: list[Any] = []
            async with asyncio.timeout(COMMAND_TIMEOUT + self._wait * REPLICA_WAIT_MS / 1000):
                for _ in range(len(data)):
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:
                        replies.append(exc)
        except (*DOWN, RedisError) as exc:
            await self._drop()
            error = BrokerUnavailableError(f"Redis is unreachable ({reason(exc)})")
            for _, future in batch:
                if future is not None and not future.done():
                    future.set_exception(error)
            self._on_lost()
            return
        if self._wait and not (isinstance(replies[-1], int) and replies[-1] >= self._wait):
            # Not on enough replicas: a failover may lose it. Done or not, it counts as
            # failed; the clients come back and send again (resends are known by their ids).
            error = BrokerUnavailableError("Redis did not replicate in time")
            for _, future in batch:
                if future is not None and not future.done():
                    future.set_exception(error)
            await self._drop()
            self._on_lost()
            return
        for (_, future), reply in zip(batch, replies, strict=False):
            if future is None or future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()
            with contextlib.suppress(Exception):
                await self._client.connection_pool.release(conn)

    async def reset(self) -> None:
        """Drop the connection; the next batch opens a new one (after Redis was away, a lane
        that sent nothing meanwhile would otherwise find out on its next command)."""
        if self._task is None:
            await self._drop()

    async def stop(self) -> None:
        # Let queued fire-and-forget commands (publishes) reach Redis first.
        for _ in range(50):
            if self._task is None:
                break
            await asyncio.sleep(0.01)
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        closed = BrokerUnavailableError("the broker is closed")
        pending, self._pending = self._pending, []
        for _, future in pending:
            if future is not None and not future.done():
                future.set_exception(closed)
        await self._drop()


class Events:
    """The pub/sub connection: each message read goes to `deliver(channel, payload)`."""

    def __init__(
        self,
        client: Redis,
        deliver: Callable[[bytes, bytes], None],
        on_lost: Callable[[], None],
        control: bytes,
    ) -> None:
        self._client = client
        self._deliver = deliver
        self._on_lost = on_lost
        # A channel of this process's own: a PubSub reads only once it has one.
        self._control = control
        self._pubsub: PubSub | None = None
        self._reading: asyncio.Task[None] | None = None
        self._waiting: dict[bytes, list[asyncio.Future[None]]] = {}

    async def connect(self, channels: Sequence[bytes]) -> None:
        """A new connection, subscribed to `channels` (everything local listeners follow)."""
        await self.close()
        pubsub = self._client.pubsub()
        self._pubsub = pubsub
        self._reading = None
        confirmed = [self._expect(self._control)]
        await pubsub.subscribe(self._control)
        self._reading = asyncio.get_running_loop().create_task(self._read(pubsub))
        for start in range(0, len(channels), SUBSCRIBE_CHUNK):
            chunk = channels[start : start + SUBSCRIBE_CHUNK]
            confirmed += [self._expect(channel) for channel in chunk]
            await pubsub.subscribe(*chunk)
        await self._confirmed(confirmed)

    async def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        reading, self._reading = self._reading, None
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
        if pubsub is not None:
            closing: Any = pubsub.aclose  # no annotations
            with contextlib.suppress(Exception):
                await closing()
        self._fail_waiting()

    async def subscribe(self, channel: bytes) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            raise BrokerUnavailableError("Redis is unreachable")
        future = self._expect(channel)
        try:
            await pubsub.subscribe(channel)
        except (*DOWN, RedisError) as exc:
            raise BrokerUnavailableError(f"Redis is unreachable ({reason(exc)})") from None
        await self._confirmed([future])

    async def unsubscribe(self, channel: bytes) -> None:
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(*DOWN, RedisError):
                await pubsub.unsubscribe(channel)

    def _expect(self, channel: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(channel, []).append(future)
        return future

    async def _confirmed(self, futures: list[asyncio.Future[None]]) -> None:
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await asyncio.gather(*(asyncio.shield(f) for f in futures))
        except TimeoutError:
            raise BrokerUnavailableError("Redis did not confirm a subscription") from None

    async def _read(self, pubsub: PubSub) -> None:
        deliver = self._deliver
        try:
            while True:
                reply = await pubsub.parse_response(block=True)
                if not isinstance(reply, list) or len(reply) < 3:
                    continue
                kind = reply[0]
                if kind == b"message":
                    deliver(reply[1], reply[2])
                elif kind == b"subscribe":
                    for future in self._waiting.pop(reply[1], ()):
                        if not future.done():
                            future.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if pubsub is self._pubsub:
                if not isinstance(exc, DOWN):
                    logger.warning("Redis event unreadable", extra={"error": type(exc).__name__})
                self._fail_waiting()
                self._on_lost()

    def _fail_waiting(self) -> None:
        error = BrokerUnavailableError("Redis is unreachable")
        for futures in self._waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)
        self._waiting.clear()
