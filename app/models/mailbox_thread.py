from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime


class MailboxThread(Base):
    """One visitor's written exchange with one counsellor, opened only by its mailbox code.

    Only a keyed hash of the code is kept (the same digest as continuity codes). The thread's
    own 256-bit key is stored wrapped by the deployment's KEK; its messages are sealed under
    it. Times are kept to the minute; the thread and its key are shredded a line's retention
    after its last message (docs/mailbox.md).
    """

    __tablename__ = "mailbox_threads"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    line_key: Mapped[str] = mapped_column(
        String(32), ForeignKey("lines.key", ondelete="CASCADE"), index=True
    )
    # HMAC-SHA256 of the Argon2id-stretched code (app/continuity/codes.py `digest`).
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    # The counsellor who claimed it; null while it waits for someone to claim it.
    staff_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("staff.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # The thread's data key, AES-256-GCM wrapped by the KEK (KeyRing.wrap, purpose "mailbox").
    wrapped_key: Mapped[str] = mapped_column(String(200))
    # "waiting" (the visitor wrote last), "answered" (the counsellor did) or "closed".
    status: Mapped[str] = mapped_column(String(16), index=True)
    # The language the visitor wrote in: referral cards are shown in it.
    language: Mapped[str] = mapped_column(String(16))
    # The sequence number the next message gets (its AES-GCM associated data binds it).
    next_seq: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The last message of either side (retention counts from it), to the minute.
    last_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Since when the visitor's unanswered message waits (null when nothing waits).
    waiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Whether the anonymous statistics row of the thread has been held (at the first answer,
    # or when it is deleted unanswered), so it is counted once.
    counted: Mapped[bool] = mapped_column(default=False)
