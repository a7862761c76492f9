from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.clock import utcnow
from app.kit.db import Base, UTCDateTime


class Enrolment(Base):
    """A one-time enrolment link: the person sets what their account lacks (password, TOTP).

    The link holds the token; we keep only its SHA-256. Used links are deleted.
    """

    __tablename__ = "enrolments"

    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("staff.id", ondelete="CASCADE"), index=True
    )
    # The TOTP secret shown as a QR code, sealed, until a code from it confirms it.
    pending_totp_secret: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
