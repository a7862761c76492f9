from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime


class Wrapup(Base):
    """A counsellor's anonymous categorisation of a chat, not linkable to the chat or its stats."""

    __tablename__ = "wrapups"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    line_key: Mapped[str] = mapped_column(String(32), index=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    outcome: Mapped[str] = mapped_column(String(64))
    # The counsellor's risk level on the chat when the wrap-up was saved (`none`, `concern`,
    # `acute`): set in the chat or during the wrap-up, after the visitor left (docs/risk.md).
    risk: Mapped[str] = mapped_column(String(8), default="none", server_default="none")
