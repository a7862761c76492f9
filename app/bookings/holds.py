"""Which counsellors' last place routing keeps free for a booked chat, as each process sees
it: read from SQL at most every few seconds (bookings change rarely, and a process that
learns of one a few seconds late only keeps a place a few seconds late)."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bookings.service import Held, booking_service
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.settings import Settings

REFRESH_SECONDS = 5.0


class BookingHolds:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._held: list[Held] = []
        self._read_at = float("-inf")

    def invalidate(self) -> None:
        self._read_at = float("-inf")

    async def reserved(self, line_key: str) -> frozenset[str]:
        """Counsellors on the line whose last place is kept now: from the line's early minutes
        before a booked time until the booked chat arrives or the continuity wait after it
        runs out."""
        now = time.monotonic()
        if now - self._read_at >= REFRESH_SECONDS:
            settings = self._settings
            async with unit_of_work(self._sessionmaker) as session:
                self._held = await booking_service.held(
                    session,
                    utcnow(),
                    timedelta(minutes=settings.booking_early_minutes),
                    timedelta(seconds=settings.continuity_wait_seconds),
                )
            self._read_at = now
        return frozenset(h.staff_id for h in self._held if h.line_key == line_key)
