"""Recording staff actions. Services flush; whoever opened the unit of work commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.repository import AuditFilter, AuditRepository
from app.kit.clock import utcnow
from app.models import AuditEntry


class AuditAction(StrEnum):
    sign_in = "sign_in"
    sign_in_failed = "sign_in.failed"
    sign_in_locked = "sign_in.locked"
    sign_out = "sign_out"
    access_denied = "access.denied"
    enrolment_completed = "enrolment.completed"
    staff_invited = "staff.invited"
    staff_updated = "staff.updated"
    staff_deactivated = "staff.deactivated"
    staff_reactivated = "staff.reactivated"
    staff_reset = "staff.reset"
    line_created = "line.created"
    line_updated = "line.updated"
    offer_accepted = "chat.accepted"
    chat_taken = "chat.taken"
    chat_observed = "chat.observed"
    chat_whispered = "chat.whispered"
    chat_taken_over = "chat.taken_over"
    chat_transferred = "chat.transferred"
    chat_blocked = "chat.blocked"
    help_requested = "chat.help_requested"
    roster_changed = "roster.changed"
    # Interpreters: who asked, joined and left which chat (never what was said).
    interpreter_requested = "interpreter.requested"
    interpreter_joined = "interpreter.joined"
    interpreter_left = "interpreter.left"
    risk_set = "chat.risk_set"
    # Who offered times for a booked chat in which chat; never the times or the code.
    chat_times_offered = "chat.times_offered"
    debrief_asked = "chat.debrief_asked"
    debrief_opened = "chat.debrief_opened"
    # The mailbox: which counsellor did what on which line, never which thread or what.
    mailbox_claimed = "mailbox.claimed"
    mailbox_answered = "mailbox.answered"
    mailbox_noted = "mailbox.noted"
    mailbox_closed = "mailbox.closed"
    mailbox_handed_over = "mailbox.handed_over"
    mailbox_deleted = "mailbox.deleted"
    mailbox_times_offered = "mailbox.times_offered"


def entry_time(now: datetime, chat_id: str | None) -> datetime:
    """A chat leaves no timestamp finer than the hour (DESIGN.md), in the audit log too."""
    if chat_id is not None:
        return now.replace(minute=0, second=0, microsecond=0)
    return now.replace(microsecond=0)


class AuditService:
    async def record(
        self,
        session: AsyncSession,
        action: AuditAction,
        *,
        actor_id: uuid.UUID | str | None,
        target_staff_id: uuid.UUID | str | None = None,
        line_key: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """An entry that names no chat, written with the caller's unit of work."""
        return await self.add(
            session,
            self.entry(
                action,
                actor_id=actor_id,
                target_staff_id=target_staff_id,
                line_key=line_key,
                detail=detail,
            ),
        )

    async def add(self, session: AsyncSession, entry: AuditEntry) -> AuditEntry:
        if entry.chat_id is not None:
            raise ValueError("an entry about a chat is held until its hour is over")
        return await AuditRepository(session).add(entry)

    def entry(
        self,
        action: AuditAction,
        *,
        actor_id: uuid.UUID | str | None,
        target_staff_id: uuid.UUID | str | None = None,
        line_key: str | None = None,
        chat_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """An entry, not yet stored. One that names a chat is held with the chat's other rows
        until its hour is over (`HeldRows.hold`), never written at once."""
        return AuditEntry(
            at=entry_time(utcnow(), chat_id),
            actor_id=_uuid(actor_id),
            action=action.value,
            target_staff_id=_uuid(target_staff_id),
            line_key=line_key,
            chat_id=chat_id,
            detail=dict(detail or {}),
        )

    async def search(
        self, session: AsyncSession, where: AuditFilter, *, limit: int, offset: int
    ) -> Sequence[AuditEntry]:
        return await AuditRepository(session).search(where, limit=limit, offset=offset)


def _uuid(value: uuid.UUID | str | None) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(value)


audit_service = AuditService()
