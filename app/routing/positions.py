"""Queue positions for waiting visitors and queue cards for counsellors, coalesced.

Each process watches the lines its own clients wait on or look at. A change on a line (from
any process) marks it dirty; dirty lines are recomputed at most once per push interval, with
one read of the queue per line however many visitors wait, and a client is sent a frame only
when what it would show has changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from app.broker.base import Broker, log_failure
from app.broker.hub import Event
from app.broker.records import ChatRecord, ChatState, queued_at_of
from app.chats.channels import line_channel
from app.lines.directory import LineDirectory
from app.mailbox.live import MAILBOX_EVENT
from app.mailbox.live import count_key as mailbox_count_key
from app.routing.policy import (
    NO_ESTIMATE,
    Hold,
    Staffing,
    Wait,
    estimate_wait,
    hold,
    staffing,
    typical_length,
)
from app.routing.service import Router
from app.settings import Settings

logger = logging.getLogger(__name__)

Sink = Callable[[dict[str, Any]], None]
# What a waiting visitor was last shown: position, wait, and the wish they wait for.
Shown = tuple[int, Wait, Hold | None]

# Even without changes, estimates are refreshed this often (capacity and durations drift).
REFRESH_SECONDS = 10.0
# How many visitors' positions are pushed before other work gets a turn: each of them wakes
# a writer in the next turn, so a small chunk keeps an offer from waiting behind many.
YIELD_EVERY = 25
# An offer whose end no event told of stops counting this long after it expired (an event
# lost while Redis reconnected): the deadline that withdraws it has run by then.
OFFER_SLACK_SECONDS = 5.0


class QueueWatch:
    def __init__(
        self, broker: Broker, lines: LineDirectory, router: Router, settings: Settings
    ) -> None:
        self._broker = broker
        self._lines = lines
        self._router = router
        self._interval = settings.position_push_seconds
        self._waiting: dict[str, dict[str, Sink]] = {}
        self._watchers: dict[str, set[Sink]] = {}
        self._shown: dict[str, Shown] = {}
        self._summaries: dict[str, dict[str, Any]] = {}
        self._listeners: dict[str, Callable[[Event], None]] = {}
        # Per watched line, the chats offered now: chat id -> (offer expires at, queued at).
        # Offered chats are out of the queue's sorted set; the line's events say which they
        # are (Router.offered_event, settled_event), so counting them costs no read.
        self._offers: dict[str, dict[str, tuple[float, float]]] = {}
        # Per watched line, mailbox threads waiting for an answer (app/mailbox/live.py).
        self._mailbox: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        router.holds_changed = self.changed
        # Counted for the queue benchmark: position frames actually sent.
        self.position_frames_sent = 0

    async def first_shown(self, record: ChatRecord, position: int, staffed: Staffing) -> Shown:
        """What a visitor whose chat just started is shown: from who answered when the line
        was found open (each read goes through every on-duty counsellor's presence; a busy
        line has many starts)."""
        line = self._lines.get(record.line)
        held = None
        if line is not None:
            held = hold(record, line, staffed.candidates, self._broker.now())
        if held:
            return position, NO_ESTIMATE, held
        recent = typical_length(await self._router.recent_durations(record.line))
        return position, estimate_wait(position, staffed.capacity, staffed.free, recent), None

    async def add_waiting(
        self, line: str, chat_id: str, sink: Sink, shown: Shown | None = None
    ) -> None:
        self._waiting.setdefault(line, {})[chat_id] = sink
        if shown is not None:
            self._shown[chat_id] = shown
        await self._ensure_listening(line)
        self.changed(line)

    async def remove_waiting(self, line: str, chat_id: str) -> None:
        waiting = self._waiting.get(line)
        if waiting is not None:
            waiting.pop(chat_id, None)
            if not waiting:
                del self._waiting[line]
        self._shown.pop(chat_id, None)
        await self._maybe_stop_listening(line)

    async def add_watcher(self, line: str, sink: Sink) -> None:
        self._watchers.setdefault(line, set()).add(sink)
        await self._ensure_listening(line)
        # A new watcher gets the current card even if nothing changed.
        await self._send_summary(line, sink, force=True)

    async def remove_watcher(self, line: str, sink: Sink) -> None:
        watchers = self._watchers.get(line)
        if watchers is not None:
            watchers.discard(sink)
            if not watchers:
                del self._watchers[line]
        await self._maybe_stop_listening(line)

    def changed(self, line: str) -> None:
        self._dirty.add(line)
        self._wake.set()

    async def _ensure_listening(self, line: str) -> None:
        if line in self._listeners:
            return
        offers = self._offers.setdefault(line, {})

        def listener(event: Event) -> None:
            if event.get("type") == MAILBOX_EVENT:
                self._mailbox[line] = int(event.get("mailbox_waiting") or 0)
                self.changed(line)
                return
            offered = event.get("offered")
            if isinstance(offered, str):
                offers[offered] = (float(event["expires_at"]), float(event["queued_at"]))
            settled = event.get("settled")
            if isinstance(settled, str):
                offers.pop(settled, None)
            self.changed(line)

        self._listeners[line] = listener
        await self._broker.subscribe(line_channel(line), listener)
        # The count as last published, for a process that starts watching the line now.
        stored = await self._broker.get_value(mailbox_count_key(line))
        self._mailbox.setdefault(line, int(stored) if stored and stored.isdigit() else 0)
        # Offers made before this process listened, read once: from the load of each
        # counsellor of the line (a few chats each), never from every chat of the line.
        presences = await self._broker.line_presences(line)
        held = await asyncio.gather(*(self._broker.staff_chat_ids(p.staff_id) for p in presences))
        for chat in await self._broker.get_chats(sorted({c for ids in held for c in ids})):
            if chat.line == line and chat.state is ChatState.offered and chat.offer_expires_at:
                offers.setdefault(chat.id, (chat.offer_expires_at, chat.queued_at))

    async def _maybe_stop_listening(self, line: str) -> None:
        if line in self._waiting or line in self._watchers:
            return
        listener = self._listeners.pop(line, None)
        if listener is not None:
            await self._broker.unsubscribe(line_channel(line), listener)
        self._summaries.pop(line, None)
        self._offers.pop(line, None)
        self._mailbox.pop(line, None)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + REFRESH_SECONDS
        while True:
            # asyncio.timeout, not wait_for (see Router.run: shutdown must not hang).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REFRESH_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            if loop.time() >= next_refresh:
                next_refresh = loop.time() + REFRESH_SECONDS
                self._dirty.update(self._waiting, self._watchers)
            dirty, self._dirty = self._dirty, set()
            for line in dirty:
                try:
                    await self.flush(line)
                except Exception:
                    log_failure(logger, "queue position update failed", line=line)
            # Coalesce: whatever changes during the pause goes out in the next round.
            await asyncio.sleep(self._interval)

    async def flush(self, line: str) -> None:
        waiting = self._waiting.get(line)
        watchers = self._watchers.get(line)
        if not waiting and not watchers:
            return
        queued = await self._broker.queue(line)
        holds = self._router.holds(line)
        if waiting:
            await self._push_positions(line, waiting, queued, holds)
        if watchers:
            summary = self._summary(line, queued, holds)
            if self._summaries.get(line) != summary:
                self._summaries[line] = summary
                for sink in list(watchers):
                    sink(summary)

    async def _push_positions(
        self,
        line: str,
        waiting: dict[str, Sink],
        queued: list[tuple[str, float]],
        holds: dict[str, Hold],
    ) -> None:
        config = self._lines.get(line)
        capacity = free = 0
        if config is not None:
            now = self._broker.now()
            staffed = staffing(await self._router.candidates(line), config, now)
            capacity, free = staffed.capacity, staffed.free
        typical = typical_length(await self._router.recent_durations(line))
        positions = {chat_id: index for index, (chat_id, _) in enumerate(queued, start=1)}
        # How many ahead of each visitor wait for a wish (a peer, their language, a named
        # counsellor) and so let them pass to whoever is free (only behind a held chat).
        ahead: dict[str, int] = {}
        if holds:
            held = 0
            for chat_id, _ in queued:
                if held:
                    ahead[chat_id] = held
                if chat_id in holds:
                    held += 1
        for count, (chat_id, sink) in enumerate(list(waiting.items()), start=1):
            if count % YIELD_EVERY == 0:
                # A long queue: let offers and messages through between chunks, and
                # routing finish its pass first.
                await asyncio.sleep(0)
                await self._router.idle()
            if waiting.get(chat_id) is not sink:
                continue  # left the queue meanwhile
            position = positions.get(chat_id)
            if position is None:
                continue  # offered, active, away or gone: other frames tell the visitor
            wish = holds.get(chat_id) if holds else None
            wait = (
                NO_ESTIMATE
                if wish
                else estimate_wait(position - ahead.get(chat_id, 0), capacity, free, typical)
            )
            shown = (position, wait, wish)
            if self._shown.get(chat_id) == shown:
                continue
            self._shown[chat_id] = shown
            self.position_frames_sent += 1
            sink(position_frame(chat_id, *shown))

    def _summary(
        self, line: str, queued: list[tuple[str, float]], holds: dict[str, Hold]
    ) -> dict[str, Any]:
        now = self._broker.now()
        offers = self._offers.get(line, {})
        for chat_id, (expires_at, _) in list(offers.items()):
            if expires_at + OFFER_SLACK_SECONDS < now:
                del offers[chat_id]
        since = [queued_at_of(score) for _, score in queued]
        since += [queued_at for _, queued_at in offers.values()]
        oldest = min(since, default=now)
        if holds:
            # The last routing pass's, of those still in the queue.
            ids = {chat_id for chat_id, _ in queued}
            holds = {chat_id: held for chat_id, held in holds.items() if chat_id in ids}
        return summary_frame(
            line,
            len(queued) + len(offers),
            len(offers),
            max(0, round(now - oldest)),
            holds,
            mailbox_waiting=self._mailbox.get(line, 0),
        )

    async def _send_summary(self, line: str, sink: Sink, *, force: bool) -> None:
        summary = self._summary(line, await self._broker.queue(line), self._router.holds(line))
        if force or self._summaries.get(line) != summary:
            sink(summary)


def position_frame(chat_id: str, position: int, wait: Wait, held: Hold | None) -> dict[str, Any]:
    return {
        "type": "queue.position",
        "chat_id": chat_id,
        "position": position,
        "estimated_wait_seconds": wait.seconds,
        "soon": wait.soon,
        "waiting_for": None
        if held is None
        else {"reason": held.reason.value, "until": round(held.until)},
    }


def summary_frame(
    line: str,
    waiting: int,
    offered: int,
    longest_wait: int,
    holds: dict[str, Hold],
    *,
    mailbox_waiting: int = 0,
) -> dict[str, Any]:
    # Held chats by what they wait for: how many, and the earliest that relaxes.
    groups: dict[tuple[str, str | None], tuple[int, float]] = {}
    for held in holds.values():
        key = (held.reason.value, held.language)
        count, until = groups.get(key, (0, held.until))
        groups[key] = (count + 1, min(until, held.until))
    return {
        "type": "queue.summary",
        "line": line,
        "waiting": waiting,
        "offered": offered,
        "longest_wait_seconds": longest_wait,
        "held": [
            {"reason": reason, "language": language, "count": count, "until": round(until)}
            for (reason, language), (count, until) in sorted(groups.items(), key=_by_reason)
        ],
        # Mailbox threads waiting for an answer (unclaimed, or the visitor wrote last).
        "mailbox_waiting": mailbox_waiting,
    }


def _by_reason(item: tuple[tuple[str, str | None], tuple[int, float]]) -> tuple[str, str]:
    (reason, language), _ = item
    return reason, language or ""
