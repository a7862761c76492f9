from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime


class Debrief(Base):
    """A counsellor asked a supervisor for a debrief after a chat (docs/risk.md).

    About the counsellor, not the visitor: no chat id, no content, the hour the chat ended.
    While the line's retention keeps the transcript, the way to it is in the broker only.
    """

    __tablename__ = "debriefs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    line_key: Mapped[str] = mapped_column(String(32), index=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    risk: Mapped[str] = mapped_column(String(8))
    staff_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("staff.id", ondelete="CASCADE"), index=True
    )
