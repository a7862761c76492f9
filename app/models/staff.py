from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Enum, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.clock import utcnow
from app.kit.db import Base, UTCDateTime
from app.models.enums import Qualification, StaffRole


class Staff(Base):
    """A person with an account: the only identities Lykta keeps."""

    __tablename__ = "staff"
    __table_args__ = (CheckConstraint("capacity >= 1 AND capacity <= 5", name="capacity_range"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # The first name or alias a visitor sees; never the account id.
    alias: Mapped[str] = mapped_column(String(40))
    role: Mapped[StaffRole] = mapped_column(
        Enum(StaffRole, native_enum=False, create_constraint=True, name="role", length=16)
    )
    qualification: Mapped[Qualification | None] = mapped_column(
        Enum(
            Qualification,
            native_enum=False,
            create_constraint=True,
            name="qualification",
            length=16,
        ),
        nullable=True,
    )
    is_peer: Mapped[bool] = mapped_column(Boolean, default=False)
    is_supervisor: Mapped[bool] = mapped_column(Boolean, default=False)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    capacity: Mapped[int] = mapped_column(Integer, default=2)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The TOTP secret, sealed with a key derived from LYKTA_SECRET_KEY (app/staff/totp.py).
    totp_secret: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The last accepted TOTP time step: a code is accepted once, never again.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Demo accounts have published passwords; they are refused outside development.
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
