"""What the console is told about chats, lines and the counsellor: records as frames' bodies.

Nothing here holds content: a chat's summary is its state, line, language and times.
"""

from __future__ import annotations

from typing import Any

from app.broker.records import ChatRecord
from app.lines.service import LineConfig
from app.staff.service import StaffContext


def chat_summary(record: ChatRecord, now: float) -> dict[str, Any]:
    return {
        "chat_id": record.id,
        "line": record.line,
        "language": record.language,
        "state": record.state.value,
        "last_seq": record.last_seq,
        "visitor_connected": record.visitor_connected,
        "visitor_grace_until": record.visitor_grace_until,
        "waited_seconds": max(0, round((record.answered_at or now) - record.created_at)),
        # How long it has been answered (null while waiting).
        "active_seconds": max(0, round(now - record.answered_at)) if record.answered_at else None,
        "peer_requested": record.peer_requested,
        "risk": record.risk or "none",
        "in_danger": record.in_danger,
        # The visitor holds a continuity code of this chat (taken in it, or brought back), so
        # the counsellor may offer times for a booked chat (the code itself is never here).
        "has_code": record.code_digest is not None,
        # The interpreter in the chat (a counsellor who takes it over finds them there).
        "interpreter": {"name": record.interpreter_alias, "language": record.interpreter_language}
        if record.interpreter_id is not None
        else None,
    }


def live_summary(record: ChatRecord, now: float, observing: bool) -> dict[str, Any]:
    """What a supervisor sees of a live chat: its state and who answers it, no content."""
    counsellor = (
        {"id": record.counsellor_id, "alias": record.counsellor_alias}
        if record.counsellor_id
        else None
    )
    return {
        **chat_summary(record, now),
        "counsellor": counsellor,
        "observing": observing,
        "help_requested_at": record.help_requested_at,
    }


def profile(staff: StaffContext) -> dict[str, Any]:
    """The counsellor's own profile, as the console shows it."""
    return {
        "id": staff.id,
        "alias": staff.alias,
        "qualification": staff.qualification.value if staff.qualification else None,
        "capacity": staff.capacity,
        "languages": list(staff.languages),
        "peer": staff.peer,
        "supervisor": staff.supervisor,
    }


def line_info(
    key: str, line: LineConfig | None, until: float, since: float | None, now: float
) -> dict[str, Any]:
    """One of the counsellor's lines: on duty or not, and what the console needs to answer."""
    on_duty = until > now
    return {
        "key": key,
        "name": line.name if line else key,
        "on_duty": on_duty,
        "on_duty_until": until if on_duty else None,
        # The shift now (joined with any back-to-back one), as the roster has it.
        "on_duty_since": since if on_duty else None,
        # The roster's times are wall-clock times here (the console shows it when the
        # browser's zone differs).
        "time_zone": line.time_zone if line else None,
        "languages": list(line.languages) if line else [],
        "max_message_length": line.max_message_length if line else 4000,
        "canned_responses": [dict(c) for c in line.canned_responses] if line else [],
        "wrapup_topics": list(line.wrapup_topics) if line else [],
        "wrapup_outcomes": list(line.wrapup_outcomes) if line else [],
        # A training line: its chats are marked as practice in the console.
        "practice": line.practice if line else False,
        # "offered", "taken" or "both": whether the queue card offers "Take the next chat".
        "assignment": line.assignment if line else "offered",
    }
