"""Private iCalendar feeds of a counsellor's own shifts, behind a revocable secret URL token."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from icalendar import Calendar, Event
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.repository import BookingRepository
from app.kit.ids import new_token, token_digest
from app.models import CalendarFeed, Staff
from app.roster.repository import CalendarFeedRepository, RosterLookups
from app.roster.service import roster_service

# What a feed shows: the recent past (so a finished shift does not vanish at once) and ahead.
FEED_PAST = timedelta(days=30)
FEED_AHEAD = timedelta(days=180)
MAX_TOKEN_LENGTH = 128
# A booked chat's event in the calendar (the booking is a time; the chat may run longer).
BOOKED_LENGTH = timedelta(minutes=30)


class CalendarService:
    async def create(self, session: AsyncSession, staff: Staff) -> str:
        """A new feed token for the staff member; any earlier one stops working."""
        repository = CalendarFeedRepository(session)
        await repository.delete_for_staff(staff.id)
        token = new_token()
        await repository.add(CalendarFeed(staff_id=staff.id, token_digest=token_digest(token)))
        return token

    async def revoke(self, session: AsyncSession, staff_id: uuid.UUID) -> bool:
        """Stop the staff member's feed; True if there was one."""
        return await CalendarFeedRepository(session).delete_for_staff(staff_id)

    async def owner(self, session: AsyncSession, token: str) -> Staff | None:
        """The active staff member whose feed this token opens, if any."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        feed = await CalendarFeedRepository(session).by_digest(token_digest(token))
        if feed is None:
            return None
        staff = await RosterLookups(session).staff(feed.staff_id)
        if staff is None or not staff.is_active:
            return None
        return staff

    async def feed(self, session: AsyncSession, staff: Staff, now: datetime) -> bytes:
        """The staff member's own shifts and ad hoc duty as an iCalendar document."""
        assigned, additions, _ = await roster_service.own_shifts(
            session, staff, now - FEED_PAST, now + FEED_AHEAD
        )
        lines = await RosterLookups(session).lines(
            {a.line_key for a in assigned} | {d.line_key for d in additions}
        )
        calendar = Calendar()
        calendar.add("prodid", "-//Lykta//Roster//EN")
        calendar.add("version", "2.0")
        calendar.add("calscale", "GREGORIAN")
        calendar.add("method", "PUBLISH")
        calendar.add("x-wr-calname", "Lykta shifts")
        calendar.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
        calendar.add("x-published-ttl", "PT1H")
        for item in assigned:
            line = lines[item.line_key]
            calendar.add_component(
                _event(
                    uid=_uid(staff, item.occurrence.key),
                    summary=f"Lykta: {line.name}",
                    description=f"Shift on the line {line.name} ({line.key}).",
                    start=item.occurrence.starts_at,
                    end=item.occurrence.ends_at,
                    stamp=now,
                )
            )
        for addition in additions:
            line = lines[addition.line_key]
            calendar.add_component(
                _event(
                    uid=_uid(staff, f"d:{addition.id}"),
                    summary=f"Lykta: {line.name} (ad hoc)",
                    description=f"On duty on the line {line.name} ({line.key}), added ad hoc.",
                    start=addition.starts_at,
                    end=addition.ends_at,
                    stamp=now,
                )
            )
        # Booked chats: when and on which line, nothing about the visitor or their code.
        for booking in await BookingRepository(session).between(
            now - FEED_PAST, now + FEED_AHEAD, staff.id
        ):
            known = lines.get(booking.line_key) or await RosterLookups(session).line(
                booking.line_key
            )
            name = known.name if known is not None else booking.line_key
            calendar.add_component(
                _event(
                    uid=_uid(staff, f"b:{booking.id}"),
                    summary=f"Lykta: booked chat ({name})",
                    description=f"Booked chat on the line {name}.",
                    start=booking.starts_at,
                    end=booking.starts_at + BOOKED_LENGTH,
                    stamp=now,
                )
            )
        body: bytes = calendar.to_ical()
        return body


def _uid(staff: Staff, key: str) -> str:
    # Stable per shift and person, so calendar apps update events instead of duplicating them.
    digest = hashlib.sha256(f"{staff.id}|{key}".encode()).hexdigest()[:32]
    return f"{digest}@lykta"


def _event(
    *, uid: str, summary: str, description: str, start: datetime, end: datetime, stamp: datetime
) -> Event:
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", summary)
    event.add("description", description)
    event.add("transp", "OPAQUE")
    return event


calendar_service = CalendarService()
