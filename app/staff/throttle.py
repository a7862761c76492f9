"""Sign-in throttling: slowed after a few failures, then locked, per account and per client.

Accounts are counted by the username typed, whether or not such an account exists, so the
answers never tell an attacker which usernames are real. Clients are counted by the keyed,
rotating hash of their address from app/abuse (the only code that reads an address). The
counters live in the broker and expire with the lock window.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass

from app.broker.base import Broker
from app.kit.ids import new_token
from app.settings import Settings

# Waits while slowed double from this up to the cap (seconds), then the lock takes over.
FIRST_WAIT_SECONDS = 1.0
MAX_SLOW_WAIT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Counted:
    """One thing whose failures are counted: an account (by name) or a client."""

    key: str
    slow_after: int
    lock_after: int


@dataclass(frozen=True, slots=True)
class Failure:
    count: int
    locked: bool


class SignInThrottle:
    def __init__(self, broker: Broker, settings: Settings) -> None:
        self._broker = broker
        self._secret = settings.secret_key.get_secret_value().encode()
        self._window = settings.sign_in_lock_minutes * 60
        self._slow_after = settings.sign_in_slow_after
        self._lock_after = settings.sign_in_lock_after
        self._client_lock_after = settings.sign_in_client_lock_after

    def account(self, username: str) -> Counted:
        digest = hmac.new(self._secret, username.casefold().encode(), hashlib.sha256)
        return Counted(f"acct:{digest.hexdigest()[:32]}", self._slow_after, self._lock_after)

    def for_client(self, client_key: str) -> Counted:
        # A shared office address sees several people's typos: it is slowed later.
        lock = self._client_lock_after
        return Counted(f"client:{client_key}", max(self._slow_after, lock // 3), lock)

    async def wait_seconds(self, *counted: Counted, now: float) -> int:
        """How long before another attempt is heard (0: now)."""
        wait = 0.0
        for item in counted:
            until = await self._broker.get_value(f"signin:until:{item.key}")
            if until is not None:
                wait = max(wait, float(until) - now)
        return math.ceil(wait) if wait > 0 else 0

    async def failed(self, item: Counted, *, now: float) -> Failure:
        generation = await self._broker.get_value(f"signin:gen:{item.key}") or "0"
        count = await self._broker.incr(f"signin:n:{item.key}:{generation}", self._window)
        locked = count >= item.lock_after
        if locked:
            wait = float(self._window)
        elif count >= item.slow_after:
            wait = min(FIRST_WAIT_SECONDS * 2 ** (count - item.slow_after), MAX_SLOW_WAIT_SECONDS)
        else:
            return Failure(count, False)
        await self._broker.set_value(f"signin:until:{item.key}", str(now + wait), wait + 1)
        return Failure(count, locked)

    async def succeeded(self, item: Counted) -> None:
        """A successful sign-in starts the account's count afresh (never a client's)."""
        await self._broker.set_value(f"signin:gen:{item.key}", new_token()[:12], self._window * 2)
        await self._broker.delete_value(f"signin:until:{item.key}")
