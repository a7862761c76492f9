"""The roster as the running chat system sees it: duty windows, openings, change events."""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.broker.base import Broker
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.roster.service import Duty, roster_service
from app.settings import Settings

# Every process listens here and re-reads its counsellors' duty when the roster changes.
ROSTER_CHANNEL = "roster"
# The visitor side's "next opening" is cached this long (seconds) between roster changes.
OPENING_CACHE_SECONDS = 30.0


async def announce_change(broker: Broker) -> None:
    """Tell every process the roster changed (call after the change is committed)."""
    await broker.publish(ROSTER_CHANNEL, {"type": "roster.changed"})


async def current_duty(session: AsyncSession, settings: Settings, staff_id: uuid.UUID) -> Duty:
    """A counsellor's duty now, with the configured minutes before and after each shift."""
    return (await current_duties(session, settings, [staff_id]))[staff_id]


async def current_duties(
    session: AsyncSession, settings: Settings, staff_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Duty]:
    """`current_duty` for many counsellors, with the same few queries however many."""
    return await roster_service.duties(
        session,
        staff_ids,
        utcnow(),
        before=timedelta(minutes=settings.duty_before_minutes),
        after=timedelta(minutes=settings.duty_after_minutes),
    )


class Openings:
    """When each line next opens by the roster (epoch seconds), for the visitor side."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._cache: dict[str, tuple[float, float | None]] = {}

    async def next_open_at(self, line_key: str) -> float | None:
        now = time.time()
        cached = self._cache.get(line_key)
        if cached is not None and cached[0] > now and (cached[1] is None or cached[1] > now):
            return cached[1]
        async with unit_of_work(self._sessionmaker) as session:
            found = await roster_service.next_opening(session, line_key, utcnow())
        value = found[0].timestamp() if found else None
        self._cache[line_key] = (now + OPENING_CACHE_SECONDS, value)
        return value

    def invalidate(self) -> None:
        self._cache.clear()
