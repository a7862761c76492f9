"""The in-process broker of the embedded default: one process, no external service.

Every operation completes without awaiting anything in between, so each is atomic with
respect to the event loop: the same guarantee the Redis broker gets from Lua scripts.

Expiry (TTLs) runs on the monotonic clock, so a jump of the wall clock can neither keep an
expired value alive nor drop one early; deadlines are absolute times on `now()`, the wall clock.
"""

from __future__ import annotations

import bisect
import heapq
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.broker.base import (
    CHAT_MAX_LIFETIME,
    Appending,
    AppendStatus,
    Broker,
    Queued,
    Quota,
    Refusal,
    Transition,
)
from app.broker.hub import Event
from app.broker.records import (
    LIVE_STATES,
    QUEUE_TIE_STEP,
    ChatRecord,
    ChatState,
    Presence,
    queue_band,
    queue_score,
    queued_at_of,
)


@dataclass(slots=True)
class _Chat:
    record: ChatRecord
    expires_at: float  # monotonic
    entries: list[tuple[int, bytes]] = field(default_factory=list)
    dedupe: dict[str, int] = field(default_factory=dict)
    transcript_expires_at: float | None = None  # monotonic


class _Queue:
    """A line's queue: (score, chat id) kept sorted."""

    def __init__(self) -> None:
        self.items: list[tuple[float, str]] = []
        self.scores: dict[str, float] = {}

    def add(self, chat_id: str, score: float) -> None:
        self.remove(chat_id)
        bisect.insort(self.items, (score, chat_id))
        self.scores[chat_id] = score

    def remove(self, chat_id: str) -> None:
        score = self.scores.pop(chat_id, None)
        if score is None:
            return
        index = bisect.bisect_left(self.items, (score, chat_id))
        if index < len(self.items) and self.items[index] == (score, chat_id):
            del self.items[index]

    def last_below(self, score: float) -> float | None:
        """The highest score under `score`, if any."""
        index = bisect.bisect_left(self.items, (score, ""))
        return self.items[index - 1][0] if index else None

    def rank(self, chat_id: str) -> int | None:
        score = self.scores.get(chat_id)
        if score is None:
            return None
        return bisect.bisect_left(self.items, (score, chat_id))


class MemoryBroker(Broker):
    """Ephemeral state in this process's memory: held rows are written out when the process
    stops (Runtime.stop)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        # The wall clock of `now()`; a test may pass one that jumps.
        self._clock = clock
        self._chats: dict[str, _Chat] = {}
        self._queues: dict[str, _Queue] = {}
        self._line_chats: dict[str, set[str]] = {}
        self._loads: dict[str, set[str]] = {}
        self._presence: dict[str, Presence] = {}
        self._connections: dict[str, dict[str, float]] = {}
        self._deadlines: dict[str, float] = {}
        self._deadline_heap: list[tuple[float, str]] = []
        self._values: dict[str, tuple[str, float]] = {}
        self._counters: dict[str, tuple[int, float]] = {}
        self._recent: dict[str, tuple[deque[float], float]] = {}
        # staff id -> {chat id: monotonic expiry}
        self._wrapups: dict[str, dict[str, float]] = {}
        # hour -> ({row id: serialised row}, monotonic expiry); hour -> (claim, expiry)
        self._held: dict[int, tuple[dict[str, str], float]] = {}
        self._held_claims: dict[int, tuple[str, float]] = {}
        self._next_purge = 0.0

    def now(self) -> float:
        return self._clock()

    # Chats --------------------------------------------------------------------------------
    async def create_chat(self, record: ChatRecord, *, queue_limit: int) -> Queued | None:
        queue = self._queues.setdefault(record.line, _Queue())
        if len(queue.items) >= queue_limit:
            return None
        # Stamped now, with no await since the queue was looked at (see Broker.create_chat).
        base, end = queue_band(record.priority)
        score = queue_score(record.priority, self._clock())
        last = queue.last_below(end)
        if last is not None and last >= base and last >= score:
            score = last + QUEUE_TIE_STEP
        record = record.copy(queued_at=queued_at_of(score))
        self._chats[record.id] = _Chat(
            record=record, expires_at=time.monotonic() + CHAT_MAX_LIFETIME
        )
        self._line_chats.setdefault(record.line, set()).add(record.id)
        queue.add(record.id, score)
        rank = queue.rank(record.id)
        assert rank is not None
        return Queued(rank + 1, record.queued_at)

    def _live(self, chat_id: str, now: float | None = None) -> _Chat | None:
        chat = self._chats.get(chat_id)
        if chat is None:
            return None
        if now is None:
            now = time.monotonic()
        if chat.expires_at <= now:
            self._drop(chat_id)
            return None
        if chat.transcript_expires_at is not None and chat.transcript_expires_at <= now:
            chat.entries = []
            chat.dedupe = {}
        return chat

    async def get_chat(self, chat_id: str) -> ChatRecord | None:
        chat = self._live(chat_id)
        return None if chat is None else chat.record.copy()

    async def get_chats(self, chat_ids: list[str]) -> list[ChatRecord]:
        out = []
        for chat_id in chat_ids:
            chat = self._live(chat_id)
            if chat is not None:
                out.append(chat.record.copy())
        return out

    async def transition(self, chat_id: str, change: Transition) -> ChatRecord | Refusal:
        chat = self._live(chat_id)
        if chat is None:
            return Refusal.missing
        record = chat.record
        if record.state not in change.expect:
            return Refusal.state
        if change.offered_to is not None and record.offered_to != change.offered_to:
            return Refusal.mismatch
        if change.counsellor is not None and record.counsellor_id != change.counsellor:
            return Refusal.mismatch
        if change.continuity is not None and record.continuity != change.continuity:
            return Refusal.mismatch
        if change.interpreter is not None and (record.interpreter or "") != change.interpreter:
            return Refusal.mismatch
        if change.assign is not None:
            staff_id, capacity = change.assign
            load = self._loads.get(staff_id, set())
            if chat_id not in load and len(load) >= capacity:
                return Refusal.capacity
        old_line = record.line
        updated = record.copy(**change.changes)
        if change.dequeue:
            self._queues.get(old_line, _Queue()).remove(chat_id)
        if updated.line != old_line:
            self._line_chats.get(old_line, set()).discard(chat_id)
            self._line_chats.setdefault(updated.line, set()).add(chat_id)
        if updated.state not in LIVE_STATES:
            self._line_chats.get(updated.line, set()).discard(chat_id)
        if change.enqueue is not None:
            self._queues.setdefault(updated.line, _Queue()).add(chat_id, change.enqueue)
        if change.release is not None:
            self._loads.get(change.release, set()).discard(chat_id)
        if change.assign is not None:
            self._loads.setdefault(change.assign[0], set()).add(chat_id)
        if change.owe_wrapup is not None:
            staff_id, window = change.owe_wrapup
            self._wrapups.setdefault(staff_id, {})[chat_id] = time.monotonic() + window
        chat.record = updated
        return updated.copy()

    async def delete_chat(self, chat_id: str) -> None:
        self._drop(chat_id)

    async def expire_chat(
        self, chat_id: str, *, record: float | None = None, transcript: float | None = None
    ) -> None:
        chat = self._live(chat_id)
        if chat is None:
            return
        now = time.monotonic()
        if record is not None:
            chat.expires_at = min(chat.expires_at, now + record)
        if transcript is not None:
            current = chat.transcript_expires_at
            chat.transcript_expires_at = (
                now + transcript if current is None else min(current, now + transcript)
            )

    def _drop(self, chat_id: str) -> None:
        chat = self._chats.pop(chat_id, None)
        if chat is None:
            return
        line = chat.record.line
        self._queues.get(line, _Queue()).remove(chat_id)
        self._line_chats.get(line, set()).discard(chat_id)
        for load in self._loads.values():
            load.discard(chat_id)

    async def line_chat_ids(self, line: str) -> list[str]:
        return sorted(self._line_chats.get(line, set()))

    # Queues -------------------------------------------------------------------------------
    async def queue(self, line: str, limit: int | None = None) -> list[tuple[str, float]]:
        queue = self._queues.get(line)
        if queue is None:
            return []
        items = queue.items if limit is None else queue.items[:limit]
        return [(chat_id, score) for score, chat_id in items]

    async def queue_length(self, line: str) -> int:
        queue = self._queues.get(line)
        return 0 if queue is None else len(queue.items)

    # Counsellor load ----------------------------------------------------------------------
    async def staff_chat_ids(self, staff_id: str) -> list[str]:
        return sorted(self._loads.get(staff_id, set()))

    async def staff_loads(self, staff_ids: list[str]) -> dict[str, int]:
        return {staff_id: len(self._loads.get(staff_id, ())) for staff_id in staff_ids}

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
        answers: list[tuple[int, AppendStatus]] = []
        for seq, entry, dedupe, announce in entries:
            if interpreter is not None:
                record = self._live(chat_id)
                if (
                    record is not None
                    and record.record.state is not ChatState.ended
                    and (
                        record.record.state is not ChatState.active
                        or record.record.interpreter != f"in:{interpreter}"
                    )
                ):
                    answers.append((0, "forbidden"))
                    continue
            answer = self._append(chat_id, seq, entry, dedupe, counsellor, announce, quota)
            answers.append(answer)
            if answer[1] == "conflict":
                break
        return answers

    def _append(
        self,
        chat_id: str,
        seq: int,
        entry: bytes,
        dedupe: str | None,
        counsellor: str | None,
        announce: tuple[str, Event] | None,
        quota: Quota | None,
    ) -> tuple[int, AppendStatus]:
        # One reading of the clock for the whole append (it runs for every message).
        now = time.monotonic()
        chat = self._live(chat_id, now)
        if chat is None or chat.record.state is ChatState.ended:
            return 0, "ended"
        if counsellor is not None and (
            chat.record.state is not ChatState.active or chat.record.counsellor_id != counsellor
        ):
            return 0, "forbidden"
        if dedupe is not None and dedupe in chat.dedupe:
            return chat.dedupe[dedupe], "duplicate"
        if quota is not None:
            count, expires = self._window(quota.key, quota.window, now)
            if count >= quota.limit:
                return 0, "limited"
        if seq != chat.record.last_seq + 1:
            return chat.record.last_seq, "conflict"
        chat.record.last_seq = seq
        chat.entries.append((seq, entry))
        if dedupe is not None:
            chat.dedupe[dedupe] = seq
        if quota is not None:
            self._counters[quota.key] = (count + 1, expires)
        if announce is not None:
            self.hub.dispatch(*announce)
        return seq, "ok"

    async def read(self, chat_id: str, after: int = 0) -> list[tuple[int, bytes]]:
        chat = self._live(chat_id)
        if chat is None:
            return []
        # Entries are kept in sequence order; after a shred the list is empty.
        index = bisect.bisect_right(chat.entries, after, key=lambda item: item[0])
        return chat.entries[index:]

    async def delete_transcript(self, chat_id: str) -> None:
        chat = self._chats.get(chat_id)
        if chat is not None:
            chat.entries = []
            chat.dedupe = {}

    # Presence -----------------------------------------------------------------------------
    async def put_presence(self, presence: Presence) -> None:
        self._presence[presence.staff_id] = Presence.from_json(presence.to_json())

    async def update_presence(self, staff_id: str, changes: dict[str, Any]) -> Presence | None:
        presence = self._presence.get(staff_id)
        if presence is None:
            return None
        for name, value in changes.items():
            setattr(presence, name, value)
        return Presence.from_json(presence.to_json())

    async def get_presence(self, staff_id: str) -> Presence | None:
        presence = self._presence.get(staff_id)
        return None if presence is None else Presence.from_json(presence.to_json())

    async def line_presences(self, line: str) -> list[Presence]:
        return [Presence.from_json(p.to_json()) for p in self._presence.values() if line in p.duty]

    async def remove_presence(self, staff_id: str) -> None:
        self._presence.pop(staff_id, None)

    async def connect(self, staff_id: str, connection_id: str, ttl: float) -> None:
        self._connections.setdefault(staff_id, {})[connection_id] = time.monotonic() + ttl

    async def disconnect(self, staff_id: str, connection_id: str) -> int:
        connections = self._connections.get(staff_id, {})
        connections.pop(connection_id, None)
        return self._count_connections(staff_id)

    def _count_connections(self, staff_id: str) -> int:
        connections = self._connections.get(staff_id)
        if not connections:
            return 0
        now = time.monotonic()
        for connection_id in [c for c, until in connections.items() if until <= now]:
            del connections[connection_id]
        if not connections:
            del self._connections[staff_id]
        return len(connections)

    async def connection_counts(self, staff_ids: list[str]) -> dict[str, int]:
        return {staff_id: self._count_connections(staff_id) for staff_id in staff_ids}

    # Deadlines ----------------------------------------------------------------------------
    async def schedule(self, key: str, at: float) -> None:
        self._deadlines[key] = at
        heapq.heappush(self._deadline_heap, (at, key))

    async def cancel(self, key: str) -> None:
        self._deadlines.pop(key, None)

    async def pop_due(self, now: float, limit: int = 100) -> list[str]:
        self._purge()
        due: list[str] = []
        heap = self._deadline_heap
        while heap and heap[0][0] <= now and len(due) < limit:
            at, key = heapq.heappop(heap)
            # Skip stale heap entries left by cancel() or a later reschedule.
            if self._deadlines.get(key) == at:
                del self._deadlines[key]
                due.append(key)
        return due

    # Small shared values ------------------------------------------------------------------
    async def incr(self, key: str, ttl: float) -> int:
        return self._count(key, ttl)

    def _count(self, key: str, ttl: float) -> int:
        count, expires = self._window(key, ttl, time.monotonic())
        self._counters[key] = (count + 1, expires)
        return count + 1

    def _window(self, key: str, ttl: float, now: float) -> tuple[int, float]:
        """A counter's count and expiry as of `now` (a new window once the last has expired)."""
        count, expires = self._counters.get(key, (0, now + ttl))
        if expires <= now:
            return 0, now + ttl
        return count, expires

    async def set_value(self, key: str, value: str, ttl: float) -> None:
        self._values[key] = (value, time.monotonic() + ttl)

    async def set_value_if_absent(self, key: str, value: str, ttl: float) -> bool:
        if await self.get_value(key) is not None:
            return False
        self._values[key] = (value, time.monotonic() + ttl)
        return True

    async def get_value(self, key: str) -> str | None:
        item = self._values.get(key)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            del self._values[key]
            return None
        return item[0]

    async def delete_value(self, key: str) -> None:
        self._values.pop(key, None)

    async def expire_value(self, key: str, ttl: float) -> None:
        if await self.get_value(key) is None:
            return
        value, expires = self._values[key]
        self._values[key] = (value, min(expires, time.monotonic() + ttl))

    async def push_recent(self, key: str, value: float, keep: int, ttl: float) -> None:
        values, _ = self._recent.get(key, (deque(maxlen=keep), 0.0))
        values.append(value)
        self._recent[key] = (values, time.monotonic() + ttl)

    async def recent(self, key: str) -> list[float]:
        item = self._recent.get(key)
        if item is None or item[1] <= time.monotonic():
            return []
        return list(item[0])

    async def owed_wrapups(self, staff_id: str) -> list[str]:
        owed = self._wrapups.get(staff_id, {})
        now = time.monotonic()
        for chat_id in [c for c, exp in owed.items() if exp <= now]:
            del owed[chat_id]
        if not owed:
            self._wrapups.pop(staff_id, None)
        return [c for c, _ in sorted(owed.items(), key=lambda item: item[1])]

    async def settle_wrapup(self, staff_id: str, chat_id: str) -> None:
        owed = self._wrapups.get(staff_id)
        if owed is not None:
            owed.pop(chat_id, None)
            if not owed:
                del self._wrapups[staff_id]

    async def hold_rows(self, hour: int, rows: Sequence[tuple[str, str]]) -> None:
        if not rows:
            return
        held = self._held_rows(hour)
        held.update(rows)
        self._held[hour] = (held, time.monotonic() + CHAT_MAX_LIFETIME)

    def _held_rows(self, hour: int) -> dict[str, str]:
        item = self._held.get(hour)
        if item is None or item[1] <= time.monotonic():
            self._held.pop(hour, None)
            return {}
        return item[0]

    async def held_hours(self) -> list[int]:
        return sorted(hour for hour in list(self._held) if self._held_rows(hour))

    async def peek_held(self, hour: int) -> dict[str, str]:
        return dict(self._held_rows(hour))

    async def claim_held(self, hour: int, claim: str, ttl: float) -> dict[str, str] | None:
        now = time.monotonic()
        current = self._held_claims.get(hour)
        if current is not None and current[1] > now:
            return None
        self._held_claims[hour] = (claim, now + ttl)
        return dict(self._held_rows(hour))

    async def release_held(self, hour: int, claim: str, row_ids: Sequence[str]) -> None:
        held = self._held_rows(hour)
        for row_id in row_ids:
            held.pop(row_id, None)
        if not held:
            self._held.pop(hour, None)
        current = self._held_claims.get(hour)
        if current is not None and current[0] == claim:
            del self._held_claims[hour]

    def _purge(self) -> None:
        """Forget expired things now and then, as Redis would by TTL."""
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + 1.0
        for chat_id in list(self._chats):
            self._live(chat_id)
        for key in [k for k, (_, exp) in self._values.items() if exp <= now]:
            del self._values[key]
        for key in [k for k, (_, exp) in self._counters.items() if exp <= now]:
            del self._counters[key]
        for key in [k for k, (_, exp) in self._recent.items() if exp <= now]:
            del self._recent[key]
        for staff_id in list(self._wrapups):
            owed = {c: exp for c, exp in self._wrapups[staff_id].items() if exp > now}
            if owed:
                self._wrapups[staff_id] = owed
            else:
                del self._wrapups[staff_id]

    # Events -------------------------------------------------------------------------------
    async def publish(self, channel: str, event: Event) -> None:
        self.hub.dispatch(channel, event)

    def dump(self) -> bytes:
        """Everything this broker holds, expired or not, raw (as a copy of Redis would be)."""
        parts: list[bytes] = []
        for chat in self._chats.values():
            parts.append(repr(chat.record).encode())
            parts.extend(entry for _, entry in chat.entries)
            parts.extend(key.encode() for key in chat.dedupe)
        parts.extend(f"queue {line} {q.items!r}".encode() for line, q in self._queues.items())
        parts.extend(f"line {k} {v!r}".encode() for k, v in self._line_chats.items())
        parts.extend(f"load {k} {v!r}".encode() for k, v in self._loads.items())
        parts.extend(repr(p).encode() for p in self._presence.values())
        parts.extend(f"connections {k} {v!r}".encode() for k, v in self._connections.items())
        parts.extend(f"{k}={v}".encode() for k, (v, _) in self._values.items())
        parts.extend(f"deadline {k} {at}".encode() for k, at in self._deadlines.items())
        parts.extend(f"counter {k} {v!r}".encode() for k, v in self._counters.items())
        parts.extend(f"recent {k} {list(v)!r}".encode() for k, (v, _) in self._recent.items())
        parts.extend(f"wrapups {k} {list(v)!r}".encode() for k, v in self._wrapups.items())
        for hour, (rows, _) in self._held.items():
            parts.extend(f"held {hour} {k} {v}".encode() for k, v in rows.items())
        return b"\n".join(parts)
