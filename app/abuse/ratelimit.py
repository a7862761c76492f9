"""The only module that reads a client's network address.

An address is turned at once into a keyed hash (HMAC-SHA256 under a random key that lives
only in memory and is replaced at least daily), and only that hash is used, in counters that
expire within minutes. The address itself is never stored, logged or passed on.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass

from starlette.types import Scope

from app.broker.base import Broker

KEY_LIFETIME_SECONDS = 24 * 3600


class ClientHasher:
    """Keyed hashes of client addresses under a key that rotates."""

    def __init__(self, lifetime: float = KEY_LIFETIME_SECONDS) -> None:
        self._lifetime = lifetime
        self._key = secrets.token_bytes(32)
        self._born = time.monotonic()

    def _current_key(self) -> bytes:
        if time.monotonic() - self._born >= self._lifetime:
            self._key = secrets.token_bytes(32)
            self._born = time.monotonic()
        return self._key

    def hash(self, address: str) -> str:
        return hmac.new(self._current_key(), address.encode(), hashlib.sha256).hexdigest()[:32]


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


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `count` events per `window` seconds."""

    count: int
    window: int


class RateLimiter:
    def __init__(
        self, broker: Broker, hasher: ClientHasher, trusted_proxies: frozenset[str]
    ) -> None:
        self._broker = broker
        self._hasher = hasher
        self._trusted = trusted_proxies

    def client_key(self, scope: Scope) -> str:
        return self._hasher.hash(client_address(scope, self._trusted))

    async def allow(self, bucket: str, client_key: str, limit: Limit) -> bool:
        count = await self._broker.incr(f"rl:{bucket}:{client_key}", limit.window)
        return count <= limit.count
