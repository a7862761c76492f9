"""The broker interface: everything ephemeral, with atomic state changes."""

from __future__ import annotations

import logging
import sys
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, LiteralString

from app.broker.hub import Event, Hub, Listener
from app.broker.records import LIVE_STATES, ChatRecord, ChatState, Presence

# Nothing ephemeral lives forever, even if every process dies (seconds).
CHAT_MAX_LIFETIME = 48 * 3600


AppendStatus = Literal["ok", "duplicate", "conflict", "ended", "forbidden", "limited"]


@dataclass(frozen=True, slots=True)
class Quota:
    """At most `limit` entries per `window` seconds under the counter `key` (shared by every
    chat of one client): checked and counted in the same atomic step as the append, so a
    visitor message costs one trip to the broker, not two."""

    key: str
    limit: int
    window: float


# One entry of an append (`Broker.append`): its number, the sealed entry, the key that
# makes a resend a duplicate, and the (channel, event) published once it is stored. A plain
# tuple: one is made for every message.
Appending = tuple[int, bytes, str | None, tuple[str, Event] | None]


@dataclass(frozen=True, slots=True)
class Lease:
    """One live connection to keep alive (`Broker.connect`) with the deadline that falls due
    if it is not renewed in time (`Broker.schedule`)."""

    name: str
    connection_id: str
    ttl: float
    deadline: str
    deadline_at: float


@dataclass(frozen=True, slots=True)
class Queued:
    """A new chat in its queue: its 1-based position and when it was queued (epoch seconds,
    the broker's clock)."""

    position: int
    queued_at: float


class BrokerUnavailableError(Exception):
    """The backing service cannot be reached; the operation may or may not have happened."""


def log_failure(to: logging.Logger, message: LiteralString, **extra: Any) -> None:
    """Log the exception being handled by a background pass. While the broker is away, which
    is logged once as such ("Redis connection lost"), a pass failing for it is a warning
    without a stack; anything else is an error with its stack. `message` is a literal, as
    every log message is (tests/test_no_network_identity.py checks the callers)."""
    if isinstance(sys.exc_info()[1], BrokerUnavailableError):
        to.warning(message, extra={**extra, "code": "broker_unavailable"})
    else:
        to.exception(message, extra=extra or None)


class Refusal(StrEnum):
    """Why an atomic transition did not happen."""

    missing = "missing"
    state = "state"
    mismatch = "mismatch"
    capacity = "capacity"
    full = "full"


@dataclass(frozen=True, slots=True)
class Transition:
    """One atomic compare-and-set on a chat, with its queue and load bookkeeping.

    Checked together: the chat exists, is in one of `expect`, and (when given) is offered to
    `offered_to` / is with `counsellor` / has `continuity` as its continuity-code state;
    `assign` fits under that counsellor's capacity.
    Applied together: `changes` to the record, removal from its old line's queue (`dequeue`),
    insertion into its (possibly new) line's queue at `enqueue` score, load moves, and (when
    given) the chat listed as one whose wrap-up `owe_wrapup` = (staff id, seconds) owes for
    that long (`owed_wrapups`).
    """

    expect: frozenset[ChatState]
    changes: dict[str, Any] = field(default_factory=dict)
    offered_to: str | None = None
    counsellor: str | None = None
    dequeue: bool = False
    enqueue: float | None = None
    # (staff id, capacity): count this chat against the counsellor's load if below capacity.
    assign: tuple[str, int] | None = None
    release: str | None = None
    continuity: str | None = None
    owe_wrapup: tuple[str, float] | None = None
    # The record's `interpreter` field must be this ("" : no interpreter asked for or in it).
    interpreter: str | None = None


class Broker(ABC):
    """Ephemeral state. Every method is safe to call from several processes at once."""

    # Whether what the broker holds outlives this process (Redis) or dies with it (memory).
    outlives_process = False

    def __init__(self) -> None:
        self.hub = Hub()
        self.available = True
        self._availability: list[Callable[[bool], None]] = []
        self._losses: list[Callable[[], Awaitable[None]]] = []

    def on_availability(self, callback: Callable[[bool], None]) -> None:
        """Call `callback(False)` when the backing service is lost and `(True)` once it is back."""
        self._availability.append(callback)

    def on_lost(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await `callback()` when the backing service comes back without what it held (a Redis
        restarted without persistence): between `(False)` and `(True)` above, so a process
        writes back what its clients had before it takes them again. The in-process broker
        never loses anything its process outlives."""
        self._losses.append(callback)

    def _set_available(self, available: bool) -> None:
        self.available = available
        for callback in list(self._availability):
            callback(available)

    async def start(self) -> None:
        """Connect; raise BrokerUnavailableError (with a clear message) when unreachable."""

    async def close(self) -> None:
        """Release connections."""

    async def ping(self) -> None:
        """One round trip to the backing service (BrokerUnavailableError if it cannot serve)."""

    @abstractmethod
    def now(self) -> float:
        """The broker's clock (epoch seconds): one clock for every process's deadlines. Never
        waits: a broker that keeps its clock elsewhere measures the offset in the background."""

    # Chats --------------------------------------------------------------------------------
    @abstractmethod
    async def create_chat(self, record: ChatRecord, *, queue_limit: int) -> Queued | None:
        """Store a new chat and queue it at its priority, or None if the queue is full.

        Its `queued_at` is the broker's clock at that moment, in the same atomic step, so
        queue order is arrival order whichever process a visitor came through; one queued
        within the clock's resolution of another at its priority goes just after it. Nobody
        shown a place is overtaken by a later arrival."""

    @abstractmethod
    async def get_chat(self, chat_id: str) -> ChatRecord | None: ...

    @abstractmethod
    async def get_chats(self, chat_ids: list[str]) -> list[ChatRecord]:
        """The chats that still exist, in the order asked."""

    @abstractmethod
    async def transition(self, chat_id: str, change: Transition) -> ChatRecord | Refusal:
        """Apply `change` atomically; the record after it, or why it was refused."""

    @abstractmethod
    async def delete_chat(self, chat_id: str) -> None:
        """Remove every trace of the chat: record, transcript, indexes, counters."""

    @abstractmethod
    async def expire_chat(
        self, chat_id: str, *, record: float | None = None, transcript: float | None = None
    ) -> None:
        """Let the chat's record (with its indexes) and/or its transcript vanish by themselves
        within these many seconds, even if no process is alive then. Never postpones an
        earlier expiry (in Redis: `EXPIRE key seconds LT`)."""

    @abstractmethod
    async def line_chat_ids(self, line: str) -> list[str]:
        """Chats of a line that have not ended."""

    async def unleased_chats(self, line: str, lease_prefix: str, page: int = 100) -> list[str]:
        """Live chats of a line whose visitor counts as connected, yet whose connection lease
        (`lease_prefix` + chat id) holds no live connection: what a process that died left
        behind. Read `page` chats at a time, so a busy line never holds up a process's other
        commands for long."""
        chat_ids = await self.line_chat_ids(line)
        found: list[str] = []
        for start in range(0, len(chat_ids), page):
            records = await self.get_chats(chat_ids[start : start + page])
            suspects = [r.id for r in records if r.visitor_connected and r.state in LIVE_STATES]
            if not suspects:
                continue
            leases = [lease_prefix + chat_id for chat_id in suspects]
            counts = await self.connection_counts(leases)
            found += [c for c, lease in zip(suspects, leases, strict=True) if not counts[lease]]
        return found

    # Queues -------------------------------------------------------------------------------
    @abstractmethod
    async def queue(self, line: str, limit: int | None = None) -> list[tuple[str, float]]:
        """Queued (chat id, score) of a line, first served first."""

    @abstractmethod
    async def queue_length(self, line: str) -> int: ...

    # Counsellor load ----------------------------------------------------------------------
    @abstractmethod
    async def staff_chat_ids(self, staff_id: str) -> list[str]:
        """Chats offered to or active with the counsellor (what counts against capacity)."""

    @abstractmethod
    async def staff_loads(self, staff_ids: list[str]) -> dict[str, int]: ...

    # Owed wrap-ups ------------------------------------------------------------------------
    # Only ids: which ended chats a counsellor still owes a wrap-up for, so a reloaded or
    # reconnected console can show the form again. Entries are made by the transition that
    # ends a chat (`Transition.owe_wrapup`) and lapse by themselves with the wrap-up window.
    @abstractmethod
    async def owed_wrapups(self, staff_id: str) -> list[str]:
        """Chats whose wrap-up the counsellor still owes (not lapsed), oldest first."""

    @abstractmethod
    async def settle_wrapup(self, staff_id: str, chat_id: str) -> None:
        """The wrap-up was saved (or is no longer due): forget the entry."""

    # Held rows ----------------------------------------------------------------------------
    # Durable rows about a chat (its audit entries, statistics row, wrap-up, debrief), serialised
    # without content, kept here until their hour's batch is written to SQL (app/held/):
    # `hour` is the start of the hour they were made in (epoch seconds). They outlive a
    # process that dies wherever the broker does (Redis), and lapse after CHAT_MAX_LIFETIME
    # if no process is alive to write them.
    @abstractmethod
    async def hold_rows(self, hour: int, rows: Sequence[tuple[str, str]]) -> None:
        """Keep (row id, serialised row) pairs under `hour`, all in one atomic step."""

    @abstractmethod
    async def held_hours(self) -> list[int]:
        """Hours that hold rows, oldest first."""

    @abstractmethod
    async def peek_held(self, hour: int) -> dict[str, str]:
        """The hour's rows (row id -> serialised row) as they are, claimed or not: what is
        about to be written can be read before it is (e.g. the debriefs asked this hour)."""

    @abstractmethod
    async def claim_held(self, hour: int, claim: str, ttl: float) -> dict[str, str] | None:
        """The hour's rows (row id -> serialised row) for this `claim` alone to write, or
        None while another claim on the hour is alive. A claim lapses after `ttl` seconds
        (its process may have died), so writing a batch must be idempotent."""

    @abstractmethod
    async def release_held(self, hour: int, claim: str, row_ids: Sequence[str]) -> None:
        """These rows are written: forget them, and the hour once it is empty; end the claim
        if it is still this one."""

    # Transcript ---------------------------------------------------------------------------
    @abstractmethod
    async def append(
        self,
        chat_id: str,
        entries: Sequence[Appending],
        *,
        counsellor: str | None = None,
        quota: Quota | None = None,
        interpreter: str | None = None,
    ) -> list[tuple[int, AppendStatus]]:
        """Store each (seq, sealed entry, dedupe key, announce) in order if its number is the
        next one (compare-and-set), all in one atomic step: one round trip, however many.

        Answers come in order, one per entry, up to the first "conflict" (the entries after
        it are not looked at: their numbers are wrong too): (seq, "ok"); (the earlier entry's
        seq, "duplicate") when its dedupe key was seen before; (the current last seq,
        "conflict") when someone appended first; (0, "ended") when the chat has ended or is
        gone; (0, "forbidden") when `counsellor` is given and the chat is not active with
        that counsellor (or `interpreter` is given and the chat is not active with that
        interpreter in it); (0, "limited") when `quota` is used up (each entry stored counts
        against it; the counter is the one `incr` keeps). Sealing an entry needs its number
        first, hence the compare-and-set. Each stored entry's announce (channel, event) is
        published as by `publish`, in the same atomic step: no process can die between the
        two. The events of one call all go on one channel.
        """

    @abstractmethod
    async def delete_transcript(self, chat_id: str) -> None:
        """Shred the chat's entries (the record stays, e.g. until its wrap-up)."""

    @abstractmethod
    async def read(self, chat_id: str, after: int = 0) -> list[tuple[int, bytes]]:
        """Entries with a sequence number above `after`, in order."""

    # Presence -----------------------------------------------------------------------------
    @abstractmethod
    async def put_presence(self, presence: Presence) -> None: ...

    @abstractmethod
    async def update_presence(self, staff_id: str, changes: dict[str, Any]) -> Presence | None:
        """Change some fields of a presence atomically; None if there is none."""

    @abstractmethod
    async def get_presence(self, staff_id: str) -> Presence | None: ...

    @abstractmethod
    async def line_presences(self, line: str) -> list[Presence]:
        """Counsellors of a line who are signed in (have a presence)."""

    @abstractmethod
    async def remove_presence(self, staff_id: str) -> None: ...

    @abstractmethod
    async def connect(self, staff_id: str, connection_id: str, ttl: float) -> None:
        """Record (or refresh) one live connection of a counsellor; it lapses after `ttl`."""

    async def renew(self, leases: list[Lease]) -> None:
        """`connect` and `schedule` for each lease (a process's heartbeat)."""
        for lease in leases:
            await self.connect(lease.name, lease.connection_id, lease.ttl)
            await self.schedule(lease.deadline, lease.deadline_at)

    @abstractmethod
    async def disconnect(self, staff_id: str, connection_id: str) -> int:
        """Forget one connection; how many live connections the counsellor still has."""

    @abstractmethod
    async def connection_counts(self, staff_ids: list[str]) -> dict[str, int]: ...

    # Deadlines ----------------------------------------------------------------------------
    @abstractmethod
    async def schedule(self, key: str, at: float) -> None:
        """Remember a deadline; whichever process is alive when it falls due handles it."""

    @abstractmethod
    async def cancel(self, key: str) -> None: ...

    @abstractmethod
    async def pop_due(self, now: float, limit: int = 100) -> list[str]:
        """Deadlines due by `now`, each handed to exactly one caller across processes."""

    # Small shared values ------------------------------------------------------------------
    @abstractmethod
    async def incr(self, key: str, ttl: float) -> int:
        """Increment a counter that expires `ttl` seconds after it was created."""

    @abstractmethod
    async def set_value(self, key: str, value: str, ttl: float) -> None: ...

    @abstractmethod
    async def set_value_if_absent(self, key: str, value: str, ttl: float) -> bool:
        """Set only if nothing is there yet; True if this call set it."""

    @abstractmethod
    async def get_value(self, key: str) -> str | None: ...

    @abstractmethod
    async def delete_value(self, key: str) -> None: ...

    @abstractmethod
    async def expire_value(self, key: str, ttl: float) -> None:
        """Let a value vanish within `ttl` seconds; never postpones an earlier expiry."""

    @abstractmethod
    async def push_recent(self, key: str, value: float, keep: int, ttl: float) -> None:
        """Keep the last `keep` values pushed under `key` (e.g. recent chat durations)."""

    @abstractmethod
    async def recent(self, key: str) -> list[float]: ...

    # Events -------------------------------------------------------------------------------
    @abstractmethod
    async def publish(self, channel: str, event: Event) -> None:
        """Deliver to every listener of `channel` in every process (local ones first).

        Fields whose names start with "_" reach only this process's listeners (e.g. an
        entry's plain text, which other processes read from its sealed form instead).
        """

    async def subscribe(self, channel: str, listener: Listener) -> None:
        if self.hub.add(channel, listener):
            await self._subscribe_remote(channel)

    async def unsubscribe(self, channel: str, listener: Listener) -> None:
        if self.hub.remove(channel, listener):
            await self._unsubscribe_remote(channel)

    async def _subscribe_remote(self, channel: str) -> None:
        """Start receiving `channel` from other processes (nothing to do in-process)."""

    async def _unsubscribe_remote(self, channel: str) -> None:
        """Stop receiving `channel` from other processes."""
