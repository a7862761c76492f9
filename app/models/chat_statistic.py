from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, Enum, Integer, String, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime
from app.models.enums import ChatOutcome


class ChatStatistic(Base):
    """One anonymous row per chat: no chat id, no content, no time finer than the hour.

    The primary key is random so row order says nothing about when a chat happened.
    """

    __tablename__ = "chat_statistics"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    line_key: Mapped[str] = mapped_column(String(32), index=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    waited_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[ChatOutcome] = mapped_column(
        Enum(ChatOutcome, native_enum=False, create_constraint=True, name="outcome", length=16)
    )
    answered: Mapped[bool] = mapped_column(Boolean)
    # The counsellor's last risk level on the chat (`none`, `concern`, `acute`), and whether
    # the visitor pressed "I am in danger right now" (docs/risk.md).
    risk: Mapped[str] = mapped_column(String(8), default="none", server_default="none")
    in_danger: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
