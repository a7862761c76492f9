from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, Enum, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.clock import utcnow
from app.kit.db import Base, UTCDateTime
from app.models.enums import AssignmentSource


class ShiftAssignment(Base):
    """A staff member on a shift: every occurrence of a pattern, one occurrence, or an extra.

    With `pattern_id` and no `occurrence_date` it covers every occurrence from `starts_on`
    (to `ends_on`); with an `occurrence_date` only that one; with `extra_shift_id` that shift.
    """

    __tablename__ = "shift_assignments"
    __table_args__ = (
        CheckConstraint(
            "(pattern_id IS NULL) <> (extra_shift_id IS NULL)", name="pattern_or_extra"
        ),
        CheckConstraint(
            "occurrence_date IS NULL OR pattern_id IS NOT NULL", name="occurrence_of_pattern"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    staff_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("staff.id", ondelete="CASCADE"), index=True
    )
    line_key: Mapped[str] = mapped_column(
        String(32), ForeignKey("lines.key", ondelete="CASCADE"), index=True
    )
    pattern_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("shift_patterns.id", ondelete="CASCADE"), nullable=True, index=True
    )
    occurrence_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    extra_shift_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("extra_shifts.id", ondelete="CASCADE"), nullable=True, index=True
    )
    starts_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    ends_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    source: Mapped[AssignmentSource] = mapped_column(
        Enum(AssignmentSource, native_enum=False, create_constraint=True, name="source", length=16)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
