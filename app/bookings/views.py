"""A mailbox thread's booking as its visitor and its counsellor see it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.service import booking_service, iso
from app.mailbox.repository import MailboxRepository
from app.models import MailboxThread


async def booking_fields(session: AsyncSession, thread: MailboxThread) -> dict[str, Any]:
    """The thread's `booking` and `times_offered`, as the visitor and its counsellor see them."""
    booking, offered = await booking_service.of_digest(session, thread.digest)
    aliases = await MailboxRepository(session).aliases({booking.staff_id} if booking else set())
    return {
        "booking": None
        if booking is None
        else {
            "at": iso(booking.starts_at),
            "line": booking.line_key,
            "counsellor": aliases.get(booking.staff_id),
        },
        "times_offered": offered,
    }
