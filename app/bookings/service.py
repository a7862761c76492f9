"""Booked chats: a counsellor offers up to three times inside their own shifts to a visitor
who holds a code; the visitor picks one with the code; at that time a chat started with the
code goes to that counsellor first. Services flush, never commit.

Bookings know a code only by its keyed digest (app/continuity/codes.py), the same one the
code's own row has, and nothing else about the visitor.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.repository import BookingOfferRepository, BookingRepository
from app.kit.errors import ApiError
from app.models import Booking, BookingOffer
from app.roster.repository import AssignmentRepository, RosterLookups
from app.roster.service import line_zone, roster_service

# A counsellor offers at most this many times at once.
MAX_TIMES = 3
# How far ahead a time may be offered (the console offers shift times of the next weeks).
OFFER_HORIZON = timedelta(days=35)
# How long a booked chat shows in a calendar (the booking holds one place, not a span).
CALENDAR_LENGTH = timedelta(minutes=30)


class BookingError(ApiError):
    """A time that cannot be offered or picked; `code` is stable for clients."""


@dataclass(frozen=True)
class Cancelled:
    """Times cancelled with a code's bookings: booked chats not started, and times offered
    and not picked that lie ahead."""

    booked: list[datetime]
    offered: list[datetime]

    @property
    def times(self) -> list[datetime]:
        """Every time cancelled that the visitor may still be waiting for, sorted."""
        return sorted({*self.booked, *self.offered})


def minute(moment: datetime) -> datetime:
    """Bookings are to the minute, in UTC."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def iso(moment: datetime) -> str:
    return minute(moment).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """A time as `iso` wrote it."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Held:
    """A counsellor's place kept free on a line for a booked chat, until it arrives."""

    line_key: str
    staff_id: str
    starts_at: float


class BookingService:
    async def shift_windows(
        self,
        session: AsyncSession,
        staff_id: uuid.UUID,
        line_key: str,
        start: datetime,
        end: datetime,
    ) -> list[tuple[datetime, datetime]]:
        """The counsellor's own roster shifts on the line that overlap [start, end)."""
        assignments = [
            a
            for a in await AssignmentRepository(session).for_staff([staff_id])
            if a.line_key == line_key
        ]
        assigned = await roster_service.assigned(session, assignments, start, end)
        return [(a.occurrence.starts_at, a.occurrence.ends_at) for a in assigned]

    async def check_times(
        self,
        session: AsyncSession,
        staff_id: uuid.UUID,
        line_key: str,
        times: Sequence[datetime],
        now: datetime,
    ) -> list[datetime]:
        """The times, to the minute and sorted, if each can be offered; else a BookingError."""
        if not times:
            raise BookingError("no_times", "offer at least one time")
        if len(times) > MAX_TIMES:
            raise BookingError("too_many_times", f"offer at most {MAX_TIMES} times")
        chosen = sorted({minute(t) for t in times})
        if any(t <= now for t in chosen):
            raise BookingError("time_past", "a time you offered has already passed")
        if chosen[-1] > now + OFFER_HORIZON:
            raise BookingError(
                "time_too_far", f"times may be at most {OFFER_HORIZON.days} days ahead"
            )
        windows = await self.shift_windows(
            session, staff_id, line_key, now, chosen[-1] + timedelta(minutes=1)
        )
        for t in chosen:
            if not any(start <= t < end for start, end in windows):
                raise BookingError(
                    "outside_shift", "a time you offered is not inside one of your shifts"
                )
        if await BookingRepository(session).taken(staff_id, chosen):
            raise BookingError("time_taken", "a time you offered is booked already", 409)
        return chosen

    async def offer(
        self,
        session: AsyncSession,
        *,
        staff_id: uuid.UUID,
        line_key: str,
        digest: str,
        times: Sequence[datetime],
        now: datetime,
    ) -> list[datetime]:
        """Offer times to the visitor whose code has `digest` (replacing an earlier offer)."""
        chosen = await self.check_times(session, staff_id, line_key, times, now)
        repo = BookingOfferRepository(session)
        await repo.delete_for_digest(digest)
        await repo.add(
            BookingOffer(
                code_digest=digest,
                line_key=line_key,
                staff_id=staff_id,
                times=[iso(t) for t in chosen],
                expires_at=chosen[-1],
            )
        )
        return chosen

    async def pick(
        self, session: AsyncSession, *, digest: str, time: datetime, now: datetime
    ) -> Booking | None:
        """Book an offered time for the code with `digest` (the caller has found the code's
        continuity code or mailbox thread alive); None when nothing was offered to it."""
        offer = await BookingOfferRepository(session).get(digest)
        if offer is None:
            return None
        picked = minute(time)
        if iso(picked) not in offer.times:
            raise BookingError("time_not_offered", "this time was not offered to you", 409)
        if picked <= now:
            raise BookingError("time_past", "this time has already passed", 409)
        windows = await self.shift_windows(
            session, offer.staff_id, offer.line_key, now, picked + timedelta(minutes=1)
        )
        if not any(start <= picked < end for start, end in windows):
            raise BookingError("outside_shift", "this time is no longer in a shift", 409)
        repo = BookingRepository(session)
        # One booking per code: picking again moves it.
        for earlier in await repo.for_digest(digest):
            await repo.delete(earlier)
        booking = Booking(
            line_key=offer.line_key,
            staff_id=offer.staff_id,
            starts_at=picked,
            code_digest=digest,
            arrived=False,
        )
        try:
            async with session.begin_nested():
                session.add(booking)
                await session.flush()
        except IntegrityError:
            raise BookingError("time_taken", "this time has just been booked", 409) from None
        await BookingOfferRepository(session).delete(offer)
        return booking

    async def due(
        self,
        session: AsyncSession,
        *,
        digest: str,
        line_key: str,
        now: datetime,
        early: timedelta,
        wait: timedelta,
    ) -> Booking | None:
        """The code's booking whose time is now: from `early` before until `wait` after."""
        for booking in await BookingRepository(session).for_digest(digest):
            if (
                booking.line_key == line_key
                and not booking.arrived
                and booking.starts_at - early <= now <= booking.starts_at + wait
            ):
                return booking
        return None

    async def arrived(self, session: AsyncSession, booking: Booking) -> None:
        booking.arrived = True
        await session.flush()

    async def held(
        self, session: AsyncSession, now: datetime, early: timedelta, wait: timedelta
    ) -> list[Held]:
        """Places kept free now: bookings whose chat has not arrived, inside their window."""
        return [
            Held(b.line_key, str(b.staff_id), b.starts_at.timestamp())
            for b in await BookingRepository(session).between(now - wait, now + early)
            if not b.arrived
        ]

    async def today(
        self, session: AsyncSession, staff_id: uuid.UUID, now: datetime
    ) -> list[tuple[Booking, str, str]]:
        """The counsellor's bookings on today's date (in each line's time zone), with the
        line's name and time zone."""
        rows = await BookingRepository(session).between(
            now - timedelta(days=1), now + timedelta(days=1), staff_id
        )
        lines = await RosterLookups(session).lines({b.line_key for b in rows})
        out: list[tuple[Booking, str, str]] = []
        for booking in rows:
            line = lines.get(booking.line_key)
            if line is None:
                continue
            tz = line_zone(line)
            if booking.starts_at.astimezone(tz).date() == now.astimezone(tz).date():
                out.append((booking, line.name, line.time_zone))
        return out

    async def of_digest(
        self, session: AsyncSession, digest: str
    ) -> tuple[Booking | None, list[str]]:
        """The code's booking (the next, if several) and the times offered and not picked."""
        booked = sorted(
            await BookingRepository(session).for_digest(digest), key=lambda b: b.starts_at
        )
        offer = await BookingOfferRepository(session).get(digest)
        return (booked[0] if booked else None), (list(offer.times) if offer is not None else [])

    async def upcoming(
        self, session: AsyncSession, staff_id: uuid.UUID, start: datetime, end: datetime
    ) -> Sequence[Booking]:
        return await BookingRepository(session).between(start, end, staff_id)

    async def cancel(self, session: AsyncSession, digest: str, now: datetime) -> Cancelled:
        """Cancel the code's booked chats that have not started and the times offered to it
        (they lie in a counsellor's shifts who no longer answers it)."""
        booked: list[datetime] = []
        repo = BookingRepository(session)
        for booking in await repo.for_digest(digest):
            if not booking.arrived:
                booked.append(minute(booking.starts_at))
                await repo.delete(booking)
        offered: list[datetime] = []
        offers = BookingOfferRepository(session)
        offer = await offers.get(digest)
        if offer is not None:
            offered = sorted(t for t in map(parse_iso, offer.times) if t > now)
            await offers.delete(offer)
        return Cancelled(sorted(booked), offered)

    async def forget_code(self, session: AsyncSession, digest: str) -> None:
        """The code is gone: so are its bookings and offers."""
        await BookingRepository(session).delete_for_digest(digest)
        await BookingOfferRepository(session).delete_for_digest(digest)

    async def purge(self, session: AsyncSession, now: datetime, wait: timedelta) -> int:
        """Bookings whose time and wait have passed, and lapsed offers."""
        gone = await BookingRepository(session).delete_before(now - wait)
        return gone + await BookingOfferRepository(session).delete_expired(now)


booking_service = BookingService()
