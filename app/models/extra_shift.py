from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.clock import utcnow
from app.kit.db import Base, UTCDateTime


class ExtraShift(Base):
    """A one-off shift on one local date of a line (closures do not cancel it)."""

    __tablename__ = "extra_shifts"
    __table_args__ = (
        CheckConstraint("needed >= 1", name="needed_positive"),
        CheckConstraint("start_minute >= 0 AND start_minute < 1440", name="start_minute_range"),
        CheckConstraint("end_minute >= 0 AND end_minute <= 1440", name="end_minute_range"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    line_key: Mapped[str] = mapped_column(
        String(32), ForeignKey("lines.key", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100), default="")
    day: Mapped[date] = mapped_column(Date, index=True)
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)
    ends_next_day: Mapped[bool] = mapped_column(Boolean, default=False)
    needed: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
