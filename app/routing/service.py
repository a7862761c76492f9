"""The router: offers queued chats to eligible counsellors, one line at a time.

Any process may route any line at any time: every offer is an atomic claim in the broker, so
two processes routing the same line at once cannot give one chat to two counsellors or push a
counsellor over capacity. Routing runs when something changes here, and once a second for
preferences that relax with time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

from app.broker.base import Broker, Refusal, Transition, log_failure
from app.broker.records import WAITING_STATES, ChatRecord, ChatState, StaffStatus
from app.chats.channels import Deadline, deadline_key, line_channel, staff_channel
from app.lines.directory import LineDirectory
from app.lines.service import LineConfig
from app.routing.policy import (
    Candidate,
    Hold,
    Staffing,
    can_take,
    choose,
    hold,
    interpreter_hint,
    on_duty,
    staffing,
)
from app.settings import Settings
from app.stats.counters import ChatCounters

logger = logging.getLogger(__name__)

# How many queued chats one routing pass looks at; the rest wait for the next pass.
ROUTE_WINDOW = 200
# How many of them are read at a time (one freed counsellor needs only the first few).
ROUTE_PAGE = 20

OfferHook = Callable[[ChatRecord, LineConfig], Awaitable[None]]
# The counsellors on a line whose last place is kept for a booked chat now (app/bookings).
Reservations = Callable[[str], Awaitable[frozenset[str]]]


def keep_place(
    candidates: list[Candidate], reserved: frozenset[str], chat: ChatRecord
) -> list[Candidate]:
    """The candidates as `chat` may have them: a counsellor whose last place is kept for a
    booked chat has one place fewer, unless `chat` is the one waiting for them."""
    if not reserved:
        return candidates
    out: list[Candidate] = []
    for c in candidates:
        if c.staff_id in reserved and chat.target_counsellor != c.staff_id:
            fewer = replace(c.presence, capacity=max(0, c.presence.capacity - 1))
            out.append(Candidate(fewer, c.connected, c.load))
        else:
            out.append(c)
    return out


def duration_key(line: str) -> str:
    return f"durations:{line}"


class Router:
    def __init__(
        self,
        broker: Broker,
        lines: LineDirectory,
        settings: Settings,
        counters: ChatCounters | None = None,
    ) -> None:
        self._broker = broker
        self._counters = counters or ChatCounters()
        self._lines = lines
        self._settings = settings
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._locks: dict[str, asyncio.Lock] = {}
        # Routing passes under way, on any line (see `idle`).
        self._passes = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Called after a successful offer on an auto-accept line (set by the chat service).
        self.auto_accept: OfferHook | None = None
        # Called when an offer turns out to be for a visitor who dropped just before it was
        # made (set by the chat service): it is withdrawn, and offered to someone present.
        self.visitor_gone: OfferHook | None = None
        # Per line, the waiting chats the last pass here kept from someone free, and why
        # (see `holds`); `holds_changed(line)` is called when they change (set by QueueWatch).
        self._holds: dict[str, dict[str, Hold]] = {}
        self.holds_changed: Callable[[str], None] | None = None
        # Whose last place is kept for a booked chat (set by the runtime; none without it).
        self.reservations: Reservations | None = None

    def kick(self, line: str) -> None:
        """Ask for a routing pass of `line` soon (coalesced)."""
        self._pending.add(line)
        self._wake.set()

    async def candidates(self, line: str) -> list[Candidate]:
        presences = await self._broker.line_presences(line)
        if not presences:
            return []
        ids = [p.staff_id for p in presences]
        # One round trip for both: a freed counsellor's offer waits on each one.
        connected, loads = await asyncio.gather(
            self._broker.connection_counts(ids), self._broker.staff_loads(ids)
        )
        return [
            Candidate(p, connected.get(p.staff_id, 0) > 0, loads.get(p.staff_id, 0))
            for p in presences
        ]

    async def staffing(self, line: LineConfig) -> Staffing:
        """Who answers the line now: open or not, places and free places, a peer or not."""
        return staffing(await self.candidates(line.key), line, self._broker.now())

    async def line_status(self, line: LineConfig) -> tuple[bool, int]:
        """(open, capacity of those answering): open when a connected, available counsellor
        is on duty."""
        now = self._broker.now()
        capacity = 0
        for c in await self.candidates(line.key):
            if (
                c.connected
                and c.presence.status is StaffStatus.available
                and on_duty(c.presence, line.key, now)
            ):
                capacity += c.presence.capacity
        return capacity > 0, capacity

    async def staffed(self, line: str) -> bool:
        """Someone on duty is connected, available or not (a break ends; a closed line does not)."""
        now = self._broker.now()
        return any(
            c.connected and on_duty(c.presence, line, now) for c in await self.candidates(line)
        )

    async def supervisors_on_duty(self, line: str, now: float, *, besides: str) -> list[str]:
        """The connected supervisors on duty on the line, other than `besides` (who asks)."""
        return [
            c.presence.staff_id
            for c in await self.candidates(line)
            if c.presence.supervisor
            and c.connected
            and c.presence.staff_id != besides
            and on_duty(c.presence, line, now)
        ]

    async def recent_durations(self, line: str) -> list[float]:
        """How long the line's recent answered chats lasted (seconds), up to the last 50."""
        return await self._broker.recent(duration_key(line))

    def holds(self, line: str) -> dict[str, Hold]:
        """The waiting chats the last routing pass of `line` in this process kept from someone
        who was free, by chat id, with the wish they wait for (every process routes every
        line once a second, so this is never more than a pass old)."""
        return self._holds.get(line, {})

    def _set_holds(self, line: str, holds: dict[str, Hold]) -> None:
        if self._holds.get(line, {}) == holds:
            return
        if holds:
            self._holds[line] = holds
        else:
            self._holds.pop(line, None)
        if self.holds_changed is not None:
            self.holds_changed(line)

    async def dispatch(self, line_key: str) -> int:
        """One routing pass over a line's queue; how many offers were made."""
        line = self._lines.get(line_key)
        if line is None:
            return 0
        lock = self._locks.setdefault(line_key, asyncio.Lock())
        async with lock:
            self._passes += 1
            self._idle.clear()
            try:
                return await self._dispatch(line)
            finally:
                self._passes -= 1
                if not self._passes:
                    self._idle.set()

    async def idle(self) -> None:
        """Until no routing pass is under way. Work that can wait (position pushes to a long
        queue) waits here between chunks, so a freed counsellor's offer does not share the
        process with it: each of the pass's round trips would otherwise wait for a chunk."""
        await self._idle.wait()

    async def _dispatch(self, line: LineConfig) -> int:
        holds: dict[str, Hold] = {}
        try:
            return await self._route(line, holds)
        finally:
            self._set_holds(line.key, holds)

    async def _route(self, line: LineConfig, holds: dict[str, Hold]) -> int:
        """The pass itself; the chats kept from someone free go into `holds`."""
        if not line.offers_chats:
            # Counsellors take this line's chats from the queue (app/chats/taking.py).
            return 0
        queued = await self._broker.queue(line.key, ROUTE_WINDOW)
        if not queued:
            return 0
        now = self._broker.now()
        candidates = await self.candidates(line.key)
        if not any(can_take(c, line, now) for c in candidates):
            return 0
        offers = 0
        reserved = (
            await self.reservations(line.key) if self.reservations is not None else frozenset()
        )
        async for chat in self._waiting_chats(queued, candidates, line, now):
            if not chat.visitor_connected or chat.state not in WAITING_STATES:
                continue
            view = keep_place(candidates, reserved, chat)
            pick = choose(chat, line, view, now)
            if pick is None:
                held = hold(chat, line, view, now)
                if held is not None:
                    holds[chat.id] = held
                continue
            index = view.index(pick)
            # The broker checks the capacity as this chat sees it (one fewer if kept).
            capacity = pick.presence.capacity
            pick = candidates[index]
            expires_at = now + line.offer_timeout_seconds
            result = await self._broker.transition(
                chat.id,
                Transition(
                    expect=WAITING_STATES,
                    changes={
                        "state": ChatState.offered,
                        "offered_to": pick.staff_id,
                        "offer_expires_at": expires_at,
                    },
                    dequeue=True,
                    assign=(pick.staff_id, capacity),
                ),
            )
            if result is Refusal.capacity and capacity < pick.presence.capacity:
                continue
            if result is Refusal.capacity:
                # Another process filled this counsellor meanwhile; count them as full.
                candidates[index] = Candidate(pick.presence, pick.connected, pick.presence.capacity)
                continue
            if isinstance(result, Refusal):
                continue
            if not result.visitor_connected:
                # The visitor dropped between the read and the claim: not an offer to make.
                if self.visitor_gone is not None:
                    await self.visitor_gone(result, line)
                continue
            offers += 1
            self._counters.offer_made(line.key)
            pick.presence.last_offer_at = now
            candidates[index] = Candidate(pick.presence, pick.connected, pick.load + 1)
            await asyncio.gather(
                self._broker.update_presence(pick.staff_id, {"last_offer_at": now}),
                self._broker.schedule(
                    deadline_key(Deadline.offer, chat.id, pick.staff_id), expires_at
                ),
            )
            # The queue cards count the offer (QueueWatch) before anyone can answer it: the
            # answer's event then comes after this one, whichever process sends it.
            await self._broker.publish(line_channel(line.key), offered_event(result, expires_at))
            interpreter = interpreter_hint(candidates, line, result.language, now)
            await self._broker.publish(
                staff_channel(pick.staff_id), offer_event(result, line, now, interpreter)
            )
            if line.auto_accept and self.auto_accept is not None:
                await self.auto_accept(result, line)
            if not any(can_take(c, line, now) for c in candidates):
                break
        return offers

    async def _waiting_chats(
        self,
        queued: list[tuple[str, float]],
        candidates: list[Candidate],
        line: LineConfig,
        now: float,
    ) -> AsyncIterator[ChatRecord]:
        """The queued chats in order, read a page at a time: a pass usually stops at the first."""
        for start in range(0, len(queued), ROUTE_PAGE):
            if not any(can_take(c, line, now) for c in candidates):
                return
            page = [chat_id for chat_id, _ in queued[start : start + ROUTE_PAGE]]
            for chat in await self._broker.get_chats(page):
                yield chat

    async def run(self) -> None:
        """Route lines when kicked, and every line with a queue once a second."""
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        while True:
            # asyncio.timeout rather than wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the event is set, and shutdown then waits forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()
            self._wake.clear()
            lines = set(self._pending)
            self._pending.clear()
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + 1.0
                lines.update(self._lines.keys())
            for line in sorted(lines):
                try:
                    await self.dispatch(line)
                except Exception:
                    log_failure(logger, "routing pass failed", line=line)


def offered_event(chat: ChatRecord, expires_at: float) -> dict[str, object]:
    """On the line's channel: the chat is offered until `expires_at` (for the queue cards)."""
    return {
        "type": "queue.changed",
        "offered": chat.id,
        "expires_at": expires_at,
        "queued_at": chat.queued_at,
    }


def settled_event(chat_id: str) -> dict[str, object]:
    """On the line's channel: an offer of the chat ended (answered, passed, withdrawn, or the
    chat ended)."""
    return {"type": "queue.changed", "settled": chat_id}


def offer_event(
    chat: ChatRecord, line: LineConfig, now: float, interpreter: bool = False
) -> dict[str, object]:
    return {
        # Nobody on duty speaks the visitor's language, but an interpreter for it is on duty.
        "interpreter_available": interpreter,
        "type": "offer",
        "chat_id": chat.id,
        "line": line.key,
        "line_name": line.name,
        "language": chat.language,
        "waited_seconds": max(0, round(now - chat.created_at)),
        "expires_at": chat.offer_expires_at,
        "timeout_seconds": line.offer_timeout_seconds,
        "transfer": chat.transferred,
        "peer_requested": chat.peer_requested,
        # The visitor pressed "I am in danger right now" (docs/risk.md).
        "in_danger": chat.in_danger,
        # A returning visitor whose continuity code names this counsellor.
        "continuity": chat.continuity_for is not None and chat.continuity_for == chat.offered_to,
        # A booked chat (app/bookings) of this counsellor's.
        "booked": chat.booked and chat.continuity_for == chat.offered_to,
    }
