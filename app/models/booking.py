from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime


class Booking(Base):
    """A booked chat: a time in a counsellor's shift that a visitor with a code picked.

    Nothing about the visitor but the keyed digest of the code it was picked with (the same
    digest as the code's own row), so that only a chat started with that code is it. Deleted
    once its time and the wait after it have passed, and with the code (docs/continuity.md).
    """

    __tablename__ = "bookings"
    __table_args__ = (UniqueConstraint("staff_id", "starts_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    line_key: Mapped[str] = mapped_column(
        String(32), ForeignKey("lines.key", ondelete="CASCADE"), index=True
    )
    staff_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("staff.id", ondelete="CASCADE"), index=True
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    code_digest: Mapped[str] = mapped_column(String(64), index=True)
    # The booked chat has started (its counsellor's place is no longer held for it).
    arrived: Mapped[bool] = mapped_column(Boolean, default=False)


class BookingOffer(Base):
    """Times a counsellor offered to the visitor holding a code, until one is picked."""

    __tablename__ = "booking_offers"

    code_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    line_key: Mapped[str] = mapped_column(
        String(32), ForeignKey("lines.key", ondelete="CASCADE"), index=True
    )
    staff_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("staff.id", ondelete="CASCADE"), index=True
    )
    # ISO times (UTC, to the minute); the offer lapses after the last of them.
    times: Mapped[list[str]] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
