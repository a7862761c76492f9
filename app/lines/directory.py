"""An in-process cache of line settings: the chat hot path never waits for SQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.db import unit_of_work
from app.kit.ids import new_token
from app.lines.service import LineConfig, line_service

if TYPE_CHECKING:
    from app.broker.base import Broker
    from app.broker.hub import Event

logger = logging.getLogger(__name__)

# Every process listens here and reloads its directory when a coordinator changes a line.
LINES_CHANNEL = "lines"


class LineDirectory:
    """Every active line, reloaded when a coordinator changes one (and now and then)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._lines: dict[str, LineConfig] = {}
        self._id = new_token()[:12]
        self._reloads: set[asyncio.Task[None]] = set()
        # Called after each reload (e.g. open consoles take the new canned responses).
        self._listeners: set[Callable[[], None]] = set()

    async def reload(self) -> None:
        async with unit_of_work(self._sessionmaker) as session:
            lines = await line_service.list_active(session)
        self._lines = {line.key: LineConfig.from_model(line) for line in lines}
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                logger.exception("line reload listener failed")

    def on_reload(self, listener: Callable[[], None]) -> None:
        self._listeners.add(listener)

    def off_reload(self, listener: Callable[[], None]) -> None:
        self._listeners.discard(listener)

    def get(self, key: str) -> LineConfig | None:
        return self._lines.get(key)

    def all(self) -> list[LineConfig]:
        return list(self._lines.values())

    def keys(self) -> list[str]:
        return list(self._lines)

    async def follow(self, broker: Broker) -> None:
        """Reload whenever another process announces a change."""
        await broker.subscribe(LINES_CHANNEL, self._on_event)

    async def changed(self, broker: Broker) -> None:
        """A line changed (committed): reload here now, and everywhere else."""
        await self.reload()
        await broker.publish(LINES_CHANNEL, {"type": "lines.changed", "origin": self._id})

    def _on_event(self, event: Event) -> None:
        if event.get("origin") == self._id:
            return
        task = asyncio.create_task(self._reload_logged())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except Exception:
            logger.exception("line reload failed")
