from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base


class RecoveryCode(Base):
    """One unused recovery code of a staff member, kept only as its SHA-256 (80 random bits)."""

    __tablename__ = "recovery_codes"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("staff.id", ondelete="CASCADE"), index=True
    )
