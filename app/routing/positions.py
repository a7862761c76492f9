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

from app.broker.base import Broker
from app.broker.hub import Event
from app.broker.records import queued_at_of
from app.chats.channels import line_channel
from app.lines.directory import LineDirectory
from app.routing.policy import estimate_wait
from app.routing.service import Router
from app.settings import Settings

logger = logging.getLogger(__name__)

Sink = Callable[[dict[str, Any]], None]

# Even without changes, estimates are refreshed this often (capacity and durations drift).
REFRESH_SECONDS = 10.0
# How many visitors' positions are pushed before other work gets a turn: each of them wakes
# a writer in the next turn, so a small chunk keeps an offer from waiting behind many.
YIELD_EVERY = 25


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
        self._shown: dict[str, tuple[int, int | None]] = {}
        self._summaries: dict[str, tuple[int, int]] = {}
        self._listeners: dict[str, Callable[[Event], None]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        # Counted for the queue benchmark: position frames actually sent.
        self.position_frames_sent = 0

    async def add_waiting(
        self, line: str, chat_id: str, sink: Sink, shown: tuple[int, int | None] | None = None
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

        def listener(_event: Event) -> None:
            self.changed(line)

        self._listeners[line] = listener
        await self._broker.subscribe(line_channel(line), listener)

    async def _maybe_stop_listening(self, line: str) -> None:
        if line in self._waiting or line in self._watchers:
            return
        listener = self._listeners.pop(line, None)
        if listener is not None:
            await self._broker.unsubscribe(line_channel(line), listener)
        self._summaries.pop(line, None)

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
                    logger.exception("queue position update failed", extra={"line": line})
            # Coalesce: whatever changes during the pause goes out in the next round.
            await asyncio.sleep(self._interval)

    async def flush(self, line: str) -> None:
        waiting = self._waiting.get(line)
        watchers = self._watchers.get(line)
        if not waiting and not watchers:
            return
        queued = await self._broker.queue(line)
        if waiting:
            config = self._lines.get(line)
            capacity = 0
            if config is not None:
                _, capacity = await self._router.line_status(config)
            mean_duration = await self._router.mean_duration(line)
            positions = {chat_id: index for index, (chat_id, _) in enumerate(queued, start=1)}
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
                    continue  # offered, active or gone: other frames tell the visitor
                shown = (position, estimate_wait(position, capacity, mean_duration))
                if self._shown.get(chat_id) == shown:
                    continue
                self._shown[chat_id] = shown
                self.position_frames_sent += 1
                sink(position_frame(chat_id, *shown))
        if watchers:
            summary = await self._summary(line, queued)
            if self._summaries.get(line) != summary:
                self._summaries[line] = summary
                frame = summary_frame(line, *summary)
                for sink in list(watchers):
                    sink(frame)

    async def _summary(self, line: str, queued: list[tuple[str, float]]) -> tuple[int, int]:
        now = self._broker.now()
        oldest = min((queued_at_of(score) for _, score in queued), default=now)
        return len(queued), max(0, round(now - oldest))

    async def _send_summary(self, line: str, sink: Sink, *, force: bool) -> None:
        summary = await self._summary(line, await self._broker.queue(line))
        if force or self._summaries.get(line) != summary:
            sink(summary_frame(line, *summary))


def position_frame(chat_id: str, position: int, estimate: int | None) -> dict[str, Any]:
    return {
        "type": "queue.position",
        "chat_id": chat_id,
        "position": position,
        "estimated_wait_seconds": estimate,
    }


def summary_frame(line: str, waiting: int, longest_wait: int) -> dict[str, Any]:
    return {
        "type": "queue.summary",
        "line": line,
        "waiting": waiting,
        "longest_wait_seconds": longest_wait,
    }
