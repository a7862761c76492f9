from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime


class MailboxStatistic(Base):
    """One anonymous row per mailbox thread: its line, the hour of its first message, and
    how many hours (rounded) it waited for a first answer (null: it was never answered).

    No thread id, no content; held until its hour is over (app/held/), random primary key.
    """

    __tablename__ = "mailbox_statistics"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    line_key: Mapped[str] = mapped_column(String(32), index=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    first_answer_hours: Mapped[int | None] = mapped_column(Integer, nullable=True)
