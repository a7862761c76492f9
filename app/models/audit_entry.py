from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime


class AuditEntry(Base):
    """One staff action: who, what, when, and the random chat id where relevant; never content.

    Append-only: Lykta has no code path that changes or deletes a row, and the migration adds
    database triggers that refuse UPDATE and DELETE. Entries that name a chat keep only the
    hour (DESIGN.md: a chat leaves no timestamp finer than the hour); the random primary key
    keeps rows from being ordered by id.
    """

    __tablename__ = "audit_log"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # No foreign keys: the log outlives whatever it names.
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(48), index=True)
    target_staff_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True, index=True)
    line_key: Mapped[str | None] = mapped_column(String(32), nullable=True)
    chat_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # Small facts without content, e.g. {"fields": ["role"]} or {"reason": "wrong_code"}.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
