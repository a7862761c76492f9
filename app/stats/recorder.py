"""Writes the anonymous statistics rows of ended chats, in batches, off the chat hot path."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.clock import hour_bucket
from app.kit.db import unit_of_work
from app.models import ChatStatistic
from app.models.enums import ChatOutcome
from app.stats.repository import ChatStatisticRepository

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChatFacts:
    """What is kept of an ended chat: no id, no content, the hour rather than the time."""

    line: str
    started_at: float
    waited_seconds: int | None
    duration_seconds: int | None
    outcome: ChatOutcome

    def row(self) -> ChatStatistic:
        return ChatStatistic(
            line_key=self.line,
            hour=hour_bucket(self.started_at),
            waited_seconds=self.waited_seconds,
            duration_seconds=self.duration_seconds,
            outcome=self.outcome,
            answered=self.outcome is ChatOutcome.answered,
        )


class StatsRecorder:
    """Queues rows and flushes them in one transaction every so often."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, interval: float = 0.5
    ) -> None:
        self._sessionmaker = sessionmaker
        self._interval = interval
        self._pending: list[ChatFacts] = []
        self._wake = asyncio.Event()

    def record(self, facts: ChatFacts) -> None:
        self._pending.append(facts)
        self._wake.set()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            async with unit_of_work(self._sessionmaker) as session:
                await ChatStatisticRepository(session).add_many([f.row() for f in batch])
        except Exception:
            # Put the batch back so a passing database error loses nothing.
            self._pending[:0] = batch
            raise

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                logger.exception("could not write chat statistics; will retry")
                self._wake.set()
