"""The mailbox as pure code: sealing a thread's messages, its statuses, its retention, and
what the visitor and the counsellor are shown. No I/O, no clock.

Each thread has its own random 256-bit key. A message's content (its kind, text or referral
card, and the counsellor's alias) is JSON sealed with AES-256-GCM under that key, with a fresh
random 96-bit nonce and associated data naming the thread and the message's sequence number,
so a sealed message cannot be moved to another thread or another place in its thread.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.kit import jsonutil

KEY_BYTES = 32
NONCE_BYTES = 12
# What KeyRing.wrap binds a thread key to: never usable as a chat's key, nor the reverse.
KEY_PURPOSE = "mailbox"


class Status(StrEnum):
    waiting = "waiting"  # the visitor wrote last and is not answered yet
    answered = "answered"  # the counsellor wrote last
    closed = "closed"  # the counsellor closed it (the visitor writing again reopens it)


class Author(StrEnum):
    visitor = "visitor"
    counsellor = "counsellor"
    note = "note"  # staff only: never in what the visitor reads


class MailboxMode(StrEnum):
    off = "off"
    closed = "closed"  # visitors may write while the line is closed
    always = "always"


class OpenError(Exception):
    """A sealed message did not authenticate for its thread and sequence number."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def _aad(thread_id: uuid.UUID, seq: int) -> bytes:
    return f"lykta-mailbox|{thread_id}|{seq}".encode()


def seal(
    key: bytes, thread_id: uuid.UUID, seq: int, content: dict[str, Any]
) -> tuple[bytes, bytes]:
    """(nonce, sealed) for one message's content."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(key).encrypt(nonce, jsonutil.dumpb(content), _aad(thread_id, seq))


def open_sealed(
    key: bytes, thread_id: uuid.UUID, seq: int, nonce: bytes, sealed: bytes
) -> dict[str, Any]:
    try:
        plain = AESGCM(key).decrypt(nonce, sealed, _aad(thread_id, seq))
    except InvalidTag as exc:
        raise OpenError(f"message {seq} of a thread failed authentication") from exc
    content: dict[str, Any] = jsonutil.loads(plain)
    return content


# Threads of a line that is no longer active are kept as long as any line may keep them.
MAX_RETENTION_DAYS = 60


def retention_days(configured: int | None) -> int:
    """A line's retention; the longest allowed for a line that is gone (deactivated)."""
    return MAX_RETENTION_DAYS if configured is None else configured


def to_minute(moment: datetime) -> datetime:
    """Thread times are kept to the minute, no finer."""
    return moment.replace(second=0, microsecond=0)


def deletes_on(last_at: datetime, retention_days: int) -> date:
    """The day (UTC) on which the thread is deleted, if nobody writes meanwhile."""
    return (last_at + timedelta(days=retention_days)).date()


def expired(last_at: datetime, retention_days: int, now: datetime) -> bool:
    return last_at + timedelta(days=retention_days) <= now


def writable(mode: str, line_open: bool) -> bool:
    """Whether a visitor may start a new thread on the line now."""
    return mode == MailboxMode.always or (mode == MailboxMode.closed and not line_open)


def answer_hours(first_at: datetime, answered_at: datetime) -> int:
    """Hours from a thread's first message to its first answer, rounded (statistics)."""
    return round((answered_at - first_at).total_seconds() / 3600)


@dataclass(frozen=True, slots=True)
class Opened:
    """A message as read from the database and opened."""

    id: uuid.UUID
    seq: int
    author: Author
    at: datetime
    content: dict[str, Any]


def iso_minute(moment: datetime) -> str:
    return to_minute(moment).isoformat().replace("+00:00", "Z")


def visitor_message(message: Opened) -> dict[str, Any]:
    """A message as the visitor sees it (never a note)."""
    kind = str(message.content.get("kind", "text"))
    from_counsellor = message.author is Author.counsellor
    return {
        "id": str(message.id),
        "from": "counsellor" if from_counsellor else "visitor",
        "alias": message.content.get("alias") if from_counsellor else None,
        "at": iso_minute(message.at),
        "kind": kind,
        "text": message.content.get("text") if kind == "text" else None,
        "card": message.content.get("card") if kind == "card" else None,
        # Times offered for a booked chat, or cancelled when the thread was handed over.
        "times": message.content.get("times") if kind in ("times", "times_cancelled") else None,
    }


def note_view(message: Opened) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "alias": message.content.get("alias"),
        "at": iso_minute(message.at),
        "text": message.content.get("text"),
    }
