from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base


class LineMembership(Base):
    """A counsellor works on a line: they see its queue and may sign up for its shifts.

    Whether they are on duty there comes from the roster (app/roster), not from here.
    """

    __tablename__ = "line_memberships"

    staff_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True
    )
    line_key: Mapped[str] = mapped_column(
        String(32), ForeignKey("lines.key", ondelete="CASCADE"), primary_key=True
    )
