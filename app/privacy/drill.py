"""The subpoena drill: everything Lykta could hand over about a time window.

By design that is staff records, the audit log, hourly aggregates (and the lines'
configuration, which is about no one). Every table in the database must be classified here:
an unclassified table makes the drill fail, so no new table can hold data Lykta does not
account for. Live chats are not here: they exist only in the broker, encrypted, while they
last (plus their line's retention, at most a day), and are about the present, not a window.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.privacy.repository import DatabaseReader


class Kind(StrEnum):
    staff = "staff records"
    audit = "audit log"
    hourly = "hourly aggregates"
    configuration = "configuration"
    continuity = "continuity codes"
    mailbox = "mailbox threads"


@dataclass(frozen=True, slots=True)
class TableRule:
    kind: Kind
    # Rows in the window: by one time column, by a [begin, finish] span, or all of them.
    time_column: str | None = None
    span: tuple[str, str] | None = None
    # Secrets that are never handed over (they would let someone act as the staff member).
    withheld: tuple[str, ...] = ()


RULES: dict[str, TableRule] = {
    "staff": TableRule(Kind.staff, withheld=("password_hash", "totp_secret")),
    "line_memberships": TableRule(Kind.staff),
    "staff_sessions": TableRule(
        Kind.staff, span=("created_at", "expires_at"), withheld=("token_digest",)
    ),
    "enrolments": TableRule(
        Kind.staff,
        span=("created_at", "expires_at"),
        withheld=("token_digest", "pending_totp_secret"),
    ),
    "recovery_codes": TableRule(Kind.staff, withheld=("digest",)),
    "calendar_feeds": TableRule(Kind.staff, withheld=("token_digest",)),
    # Rosters say which staff member works when: staff records.
    "shift_assignments": TableRule(Kind.staff),
    "drop_requests": TableRule(Kind.staff, time_column="created_at"),
    "duty_additions": TableRule(Kind.staff, span=("starts_at", "ends_at")),
    # Which counsellor asked for a debrief after a chat of which line, hour and risk level:
    # about the counsellor (no chat id, no content).
    "debriefs": TableRule(Kind.staff, time_column="hour"),
    "audit_log": TableRule(Kind.audit, time_column="at"),
    "chat_statistics": TableRule(Kind.hourly, time_column="hour"),
    "wrapups": TableRule(Kind.hourly, time_column="hour"),
    "lines": TableRule(Kind.configuration),
    "shift_patterns": TableRule(Kind.configuration),
    "extra_shifts": TableRule(Kind.configuration),
    "roster_closures": TableRule(Kind.configuration),
    # The referral directory: services and how to reach them, about no visitor.
    "referral_services": TableRule(Kind.configuration),
    # Which counsellor and line a code leads to, and when it expires (to the hour). The
    # keyed hash and the sealed note are withheld: without the visitor's words they are
    # unreadable anyway (docs/continuity.md), and the hash would let its holder test guesses.
    "continuity_codes": TableRule(
        Kind.continuity, withheld=("digest", "kdf_salt", "note_nonce", "note_sealed")
    ),
    # Booked chats: which counsellor, line and time; the code's keyed hash is withheld, as
    # above. Deleted once the time has passed, and with the code.
    "bookings": TableRule(Kind.continuity, time_column="starts_at", withheld=("code_digest",)),
    "booking_offers": TableRule(Kind.continuity, withheld=("code_digest",)),
    # Mailbox threads: which line, which counsellor, their status and times (to the minute).
    # The keyed hash of the code, the wrapped key and the language are withheld, and so is
    # every message's sealed content: only who wrote (visitor, counsellor, note) and when is
    # handed over.
    "mailbox_threads": TableRule(
        Kind.mailbox,
        span=("created_at", "last_at"),
        withheld=("digest", "wrapped_key", "language"),
    ),
    "mailbox_messages": TableRule(Kind.mailbox, time_column="at", withheld=("nonce", "sealed")),
    "mailbox_statistics": TableRule(Kind.hourly, time_column="hour"),
}
# Bookkeeping of the schema itself, about nothing and no one.
IGNORED = frozenset({"alembic_version"})
WITHHELD = "(withheld: a secret)"


class UnclassifiedTableError(RuntimeError):
    """A table nobody has said anything about; the message names it."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


async def drill(session: AsyncSession, start: datetime, end: datetime) -> dict[str, Any]:
    """The report: every table, classified, with its rows for [start, end)."""
    reader = DatabaseReader(session)
    names = [n for n in await reader.table_names() if n not in IGNORED]
    unknown = sorted(set(names) - set(RULES))
    if unknown:
        raise UnclassifiedTableError(
            f"table(s) {', '.join(unknown)} are not classified in app/privacy/drill.py; "
            "say what they hold before Lykta can account for them"
        )
    report: dict[str, Any] = {
        "window": {"from": _plain(start), "to": _plain(end)},
        **{kind.value: {} for kind in Kind},
    }
    for name in names:
        rule = RULES[name]
        rows = await reader.rows(
            name,
            within=(rule.time_column, start, end) if rule.time_column else None,
            overlapping=(*rule.span, start, end) if rule.span else None,
        )
        report[rule.kind.value][name] = [
            {str(k): WITHHELD if k in rule.withheld else _plain(v) for k, v in sorted(row.items())}
            for row in rows
        ]
    return report
