"""The only module that reads a client's network address.

`take_client` runs first for every request and WebSocket handshake: it turns the address at
once into keyed hashes (a `ClientTag`), then removes the address, and the headers that carry
addresses or browser details, from the request, so no later code, log line or error report can
see them. The hashes are HMAC-SHA256 under a random key that all processes share through the
broker, stored there only wrapped by the KEK (a copy of the broker alone cannot test guessed
addresses against them), never on disk, and replaced every 24 hours. Rate-limit counters keyed
by them expire within minutes; blocks (app/abuse/blocks.py) within a day.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Any

from starlette.types import Scope

from app.broker.base import Broker, Quota
from app.chats.crypto import KeyRing, TamperedError, UnknownKekError

logger = logging.getLogger(__name__)

# A new hashing key is used from every rotation on (at least daily, by design).
KEY_ROTATION_SECONDS = 24 * 3600
# Earlier keys are kept this many rotations, only to recognise blocked visitors; a block lasts
# at most one rotation, so it holds for chats that began up to a day before it.
KEPT_ROTATIONS = 2
KEY_PURPOSE = "client"

# Headers that name the client or its browser: read (the proxy ones, when trusted) and dropped.
SCRUBBED_HEADERS = frozenset(
    {
        b"x-forwarded-for",
        b"forwarded",
        b"x-real-ip",
        b"true-client-ip",
        b"cf-connecting-ip",
        b"x-client-ip",
        b"x-cluster-client-ip",
        b"fastly-client-ip",
        b"user-agent",
        b"referer",
    }
)


@dataclass(frozen=True, slots=True)
class ClientTag:
    """Keyed hashes of one client's address: under the current key, and under the earlier
    keys still kept (only WebSocket handshakes need those, to check blocks)."""

    current: str
    earlier: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return (self.current, *self.earlier)


def key_value_name(rotation: int) -> str:
    return f"abuse:key:{rotation}"


class ClientKeys:
    """The hashing keys of every rotation still kept, shared through the broker."""

    def __init__(
        self, broker: Broker, keyring: KeyRing, rotation_seconds: float = KEY_ROTATION_SECONDS
    ) -> None:
        self._broker = broker
        self._keyring = keyring
        self._period = rotation_seconds
        # rotation number -> key (None: that rotation's key is gone or unreadable).
        self._cache: dict[int, bytes | None] = {}

    async def _key(self, rotation: int, now: float, *, current: bool) -> bytes | None:
        if rotation in self._cache:
            return self._cache[rotation]
        name = key_value_name(rotation)
        wrapped = await self._broker.get_value(name)
        if wrapped is None and current:
            ttl = (rotation + 1 + KEPT_ROTATIONS) * self._period - now
            # Every process may try at once: the first key stored is everyone's key.
            candidate = self._keyring.wrap(os.urandom(32), KEY_PURPOSE)
            await self._broker.set_value_if_absent(name, candidate, ttl)
            wrapped = await self._broker.get_value(name)
        key: bytes | None = None
        if wrapped is not None:
            try:
                key = self._keyring.unwrap(wrapped, KEY_PURPOSE)
            except (UnknownKekError, TamperedError):
                logger.warning("client hashing key unreadable", extra={"code": "client_key"})
                if current:
                    # Its KEK was removed: start a fresh key (counters and blocks start anew).
                    ttl = (rotation + 1 + KEPT_ROTATIONS) * self._period - now
                    key = os.urandom(32)
                    await self._broker.set_value(name, self._keyring.wrap(key, KEY_PURPOSE), ttl)
        if key is not None or not current:
            self._cache[rotation] = key
        for old in [r for r in self._cache if r < rotation - KEPT_ROTATIONS]:
            del self._cache[old]
        return key

    async def tag(self, address: str, *, earlier: bool) -> ClientTag:
        now = self._broker.now()
        rotation = int(now // self._period)
        key = await self._key(rotation, now, current=True)
        if key is None:
            raise RuntimeError("no client hashing key could be stored in the broker")
        current = _hash(key, address)
        hashes: list[str] = []
        if earlier:
            for back in range(1, KEPT_ROTATIONS + 1):
                old = await self._key(rotation - back, now, current=False)
                if old is not None:
                    hashes.append(_hash(old, address))
        return ClientTag(current, tuple(hashes))


def _hash(key: bytes, address: str) -> str:
    return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()[:32]


def client_address(scope: Scope, trusted_proxies: frozenset[str]) -> str:
    """The client's address as seen by us, or by a proxy we were told to trust."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    if peer in trusted_proxies:
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-for":
                # The last hop before our trusted proxy is the one it saw.
                candidate = value.decode("latin-1").split(",")[-1].strip()
                try:
                    return str(ipaddress.ip_address(candidate))
                except ValueError:
                    return peer
    return peer


async def take_client(scope: Scope, keys: ClientKeys, trusted_proxies: frozenset[str]) -> ClientTag:
    """Remove the client's address and the identifying headers from `scope`, then hash the
    address (BrokerUnavailableError when the hashing key cannot be read: the request goes on
    without a tag, and without the address).

    uvicorn shares this scope dict, so its own log lines lose the address too.
    """
    address = client_address(scope, trusted_proxies)
    scope["client"] = None
    scope["headers"] = [(n, v) for n, v in scope.get("headers", []) if n not in SCRUBBED_HEADERS]
    tag = await keys.tag(address, earlier=scope["type"] == "websocket")
    state: dict[str, Any] = scope.setdefault("state", {})
    state["client_tag"] = tag
    return tag


def tag_of(scope: Scope) -> ClientTag | None:
    """The tag `take_client` left on a request or WebSocket."""
    tag = scope.get("state", {}).get("client_tag")
    return tag if isinstance(tag, ClientTag) else None


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `count` events per `window` seconds."""

    count: int
    window: int


class RateLimiter:
    def __init__(self, broker: Broker, keys: ClientKeys, trusted_proxies: frozenset[str]) -> None:
        self._broker = broker
        self.keys = keys
        self.trusted_proxies = trusted_proxies

    async def take_client(self, scope: Scope) -> ClientTag:
        return await take_client(scope, self.keys, self.trusted_proxies)

    async def allow(self, bucket: str, tag: ClientTag, limit: Limit) -> bool:
        count = await self._broker.incr(_counter(bucket, tag), limit.window)
        return count <= limit.count

    def quota(self, bucket: str, tag: ClientTag, limit: Limit) -> Quota:
        """The same limit, for the broker to check and count with what it stores."""
        return Quota(_counter(bucket, tag), limit.count, limit.window)


def _counter(bucket: str, tag: ClientTag) -> str:
    return f"rl:{bucket}:{tag.current}"
