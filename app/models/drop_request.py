from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, Enum, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.clock import utcnow
from app.kit.db import Base, UTCDateTime
from app.models.enums import DropState


class DropRequest(Base):
    """A counsellor asks to drop a shift; once approved it takes them off that occurrence.

    `occurrence_date` names one occurrence of a pattern-wide assignment; without it the
    whole assignment (one occurrence or an extra shift) is meant.
    """

    __tablename__ = "drop_requests"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    assignment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("shift_assignments.id", ondelete="CASCADE"), index=True
    )
    occurrence_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    state: Mapped[DropState] = mapped_column(
        Enum(DropState, native_enum=False, create_constraint=True, name="state", length=16)
    )
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("staff.id", ondelete="SET NULL"), nullable=True
    )
