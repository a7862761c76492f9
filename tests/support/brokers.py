"""What tests need to look into a broker from outside, the way an attacker with a copy would.

`BrokerVariant` is how a privacy test runs on each broker: the in-process one today; the Redis
one plugs in as `RedisVariant` (below) once Lykta runs on Redis: add it to `BROKER_VARIANTS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from app.broker.base import Broker
from app.broker.memory import MemoryBroker
from app.chats.crypto import key_name
from app.runtime import Runtime

# The machine's Redis, as tests/conftest.py has it.
REDIS_URL = os.environ.get("LYKTA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def transcript_gone(broker: Broker, chat_id: str) -> bool:
    """No entry and no key of the chat is left in the broker."""
    return await broker.read(chat_id) == [] and await broker.get_value(key_name(chat_id)) is None


@dataclass
class MemoryVariant:
    """The in-process broker: tests keep a reference, so its state outlives a server (a
    restart) and can be dumped after the server stopped."""

    name: str = "memory"
    settings: dict[str, Any] = field(default_factory=dict)
    broker: MemoryBroker = field(default_factory=MemoryBroker)

    async def dump(self, runtime: Runtime | None = None) -> bytes:
        return self.broker.dump()

    async def close(self) -> None:
        return None


@dataclass
class RedisVariant:
    """Redis under a prefix of the test's own: settings select it, `dump` reads every key."""

    prefix: str
    name: str = "redis"
    broker: Broker | None = None

    @property
    def settings(self) -> dict[str, Any]:
        return {"redis_url": REDIS_URL, "redis_prefix": self.prefix}

    async def dump(self, runtime: Runtime | None = None) -> bytes:
        return await redis_dump(REDIS_URL, self.prefix)

    async def close(self) -> None:
        client: Any = aioredis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=f"*{self.prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


async def redis_dump(url: str, prefix: str) -> bytes:
    """Every key under `prefix` (`KEYS`), with its value read by type and as `DUMP` bytes.

    The typed read matters: DUMP compresses long strings (LZF), where a canary would hide.
    """
    client: Any = aioredis.from_url(url)
    parts: list[Any] = []
    try:
        # The broker's keys sit under a hash tag, `{prefix}:…`; glob braces are literal.
        keys = sorted(await client.keys(f"*{prefix}*"))
        for key in keys:
            kind = (await client.type(key)).decode()
            parts.append(key)
            if kind == "string":
                parts.append(await client.get(key) or b"")
            elif kind == "hash":
                for name, value in (await client.hgetall(key)).items():
                    parts.extend((name, value))
            elif kind == "list":
                parts.extend(await client.lrange(key, 0, -1))
            elif kind == "set":
                parts.extend(sorted(await client.smembers(key)))
            elif kind == "zset":
                parts.extend(m for m, _ in await client.zrange(key, 0, -1, withscores=True))
            elif kind == "stream":
                for entry_id, fields in await client.xrange(key):
                    parts.append(entry_id)
                    for name, value in fields.items():
                        parts.extend((name, value))
            raw = await client.dump(key)
            if raw is not None:
                parts.append(raw)
    finally:
        await client.aclose()
    return b"\n".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)
