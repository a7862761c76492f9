from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, Enum, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.clock import utcnow
from app.kit.db import Base, UTCDateTime
from app.models.enums import Qualification


class Line(Base):
    """One helpline service with its own languages, staff qualification, rules and texts."""

    __tablename__ = "lines"
    __table_args__ = (
        CheckConstraint("max_queue_length >= 1", name="max_queue_length_positive"),
        CheckConstraint("offer_timeout_seconds >= 1", name="offer_timeout_positive"),
        CheckConstraint("max_message_length >= 1", name="max_message_length_positive"),
        CheckConstraint(
            "transcript_retention_seconds >= 0 AND transcript_retention_seconds <= 86400",
            name="transcript_retention_range",
        ),
        CheckConstraint(
            "mailbox_retention_days >= 1 AND mailbox_retention_days <= 60",
            name="mailbox_retention_range",
        ),
    )

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    required_qualification: Mapped[Qualification] = mapped_column(
        Enum(
            Qualification,
            native_enum=False,
            create_constraint=True,
            name="required_qualification",
            length=16,
        )
    )
    max_queue_length: Mapped[int] = mapped_column(Integer, default=20)
    offer_timeout_seconds: Mapped[int] = mapped_column(Integer, default=30)
    visitor_grace_seconds: Mapped[int] = mapped_column(Integer, default=120)
    counsellor_grace_seconds: Mapped[int] = mapped_column(Integer, default=60)
    # After this wait a chat may go to a counsellor who does not speak its language.
    language_relax_seconds: Mapped[int] = mapped_column(Integer, default=120)
    max_message_length: Mapped[int] = mapped_column(Integer, default=4000)
    auto_accept: Mapped[bool] = mapped_column(Boolean, default=False)
    # Seconds an ended chat's transcript is kept (at most a day); 0: shredded at once.
    transcript_retention_seconds: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0"
    )
    # Texts per language code, e.g. {"sv": "...", "en": "..."}.
    closed_message: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    alternatives: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    opening_hours: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    privacy_note: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # [{"language", "title", "text"}, ...]: prepared answers counsellors edit before sending.
    canned_responses: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # Seconds a chat that asked for a peer supporter waits for one before anyone may answer.
    peer_relax_seconds: Mapped[int] = mapped_column(Integer, default=120, server_default="120")
    wrapup_topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    wrapup_outcomes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Shift times of the line's roster are wall-clock times in this IANA zone.
    time_zone: Mapped[str] = mapped_column(
        String(64), default="Europe/Stockholm", server_default="Europe/Stockholm"
    )
    # Counsellors may sign themselves up for open places on this line's shifts.
    roster_signup: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The anonymous mailbox: "off", "closed" (visitors may write while the line is closed)
    # or "always"; when visitors are told to expect an answer; days a thread is kept after
    # its last message (docs/mailbox.md).
    mailbox: Mapped[str] = mapped_column(String(8), default="closed", server_default="closed")
    mailbox_answer_time: Mapped[dict[str, str]] = mapped_column(
        JSON, default=dict, server_default="{}"
    )
    mailbox_retention_days: Mapped[int] = mapped_column(Integer, default=14, server_default="14")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
