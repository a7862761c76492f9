from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime


class MailboxMessage(Base):
    """One message of a thread: the visitor's, the counsellor's, or a staff-only note.

    Its content (text or referral card, and the author's alias) is sealed with AES-256-GCM
    under the thread's key; the associated data binds it to its thread and sequence number.
    """

    __tablename__ = "mailbox_messages"
    __table_args__ = (UniqueConstraint("thread_id", "seq", name="uq_mailbox_messages_thread_seq"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    thread_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("mailbox_threads.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    # "visitor", "counsellor" or "note" (staff only, never shown to the visitor).
    author: Mapped[str] = mapped_column(String(16))
    staff_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("staff.id", ondelete="SET NULL"), nullable=True
    )
    # To the minute.
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    sealed: Mapped[bytes] = mapped_column(LargeBinary(65536))
