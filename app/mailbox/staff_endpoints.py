"""The staff side of the mailbox: the line's waiting threads, claiming, reading, answering,
notes, closing with a wrap-up, and (coordinators) handing a thread to a colleague.

Only a thread's counsellor reads it; coordinators see who holds which thread, never content.
Audit entries name the action, the staff member and the line, never the thread or its words,
and are held with the hour's batch like a chat's (app/held/), so they tell no finer time.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditAction, audit_service
from app.bookings.repository import BookingRepository
from app.bookings.views import booking_fields
from app.deps import RuntimeDep, SessionDep
from app.directory.service import card, directory_service
from app.kit.clock import hour_bucket, utcnow
from app.kit.db import after_commit
from app.kit.errors import REFUSALS, ApiError
from app.kit.fields import CleanText
from app.lines.schemas import LineKeyStr
from app.lines.service import LineConfig
from app.mailbox import protocol
from app.mailbox.endpoints import thread_view
from app.mailbox.protocol import Author, Status
from app.mailbox.repository import MailboxRepository
from app.mailbox.schemas import Answer, CloseIn, HandIn, NoteIn
from app.mailbox.service import mailbox_service
from app.models import MailboxThread, Staff, Wrapup
from app.models.enums import StaffRole
from app.runtime import Runtime
from app.staff.permissions import ManageRoster, TakeChats

router = APIRouter(prefix="/api/mailbox", tags=["mailbox"], responses=REFUSALS)

LineQuery = Annotated[str | None, Query(max_length=32), CleanText()]


def _qualified(staff: Staff, line: LineConfig) -> bool:
    return staff.qualification is not None and staff.qualification.satisfies(
        line.required_qualification
    )


def _line(runtime: Runtime, key: str) -> LineConfig:
    line = runtime.lines.get(key)
    if line is None:
        raise ApiError("not_found", "no such line", 404)
    return line


def _iso(moment: Any) -> str | None:
    return None if moment is None else protocol.iso_minute(moment)


def summary(
    thread: MailboxThread,
    aliases: dict[uuid.UUID, str],
    now: Any,
    booked: frozenset[str] | set[str] = frozenset(),
) -> dict[str, Any]:
    waiting = thread.waiting_since
    return {
        "id": str(thread.id),
        "line": thread.line_key,
        "status": thread.status,
        "waiting_since": _iso(waiting),
        "age_seconds": None if waiting is None else max(0, int((now - waiting).total_seconds())),
        "last_at": _iso(thread.last_at),
        "counsellor": aliases.get(thread.staff_id) if thread.staff_id else None,
        # A chat is booked with the thread's code (app/bookings).
        "booked": thread.digest in booked,
    }


async def staff_thread(
    session: AsyncSession, runtime: Runtime, thread: MailboxThread
) -> dict[str, Any]:
    """A thread as its counsellor reads it: the visitor's view, the notes, who holds it."""
    messages = await mailbox_service.opened(session, runtime.mailbox.keyring, thread)
    aliases = await MailboxRepository(session).aliases(
        {thread.staff_id} if thread.staff_id else set()
    )
    return {
        **thread_view(thread, runtime.lines.get(thread.line_key), messages),
        "id": str(thread.id),
        "language": thread.language,
        "counsellor": aliases.get(thread.staff_id) if thread.staff_id else None,
        "notes": [protocol.note_view(m) for m in messages if m.author is Author.note],
        **await booking_fields(session, thread),
    }


async def hold_audit(
    session: AsyncSession,
    runtime: Runtime,
    action: AuditAction,
    actor: Staff,
    line_key: str,
    target: uuid.UUID | None = None,
) -> None:
    entry = audit_service.entry(
        action, actor_id=actor.id, target_staff_id=target, line_key=line_key
    )
    # Held to the hour, like a chat's entries: the minute would match the thread's times.
    entry.at = entry.at.replace(minute=0, second=0, microsecond=0)
    runtime.mailbox.hold(session, [entry])


async def _member(session: AsyncSession, staff: Staff, line_key: str) -> bool:
    return line_key in await MailboxRepository(session).member_lines(staff.id)


async def _own(
    session: AsyncSession, runtime: Runtime, staff: Staff, thread_id: uuid.UUID
) -> MailboxThread:
    """The thread, locked, if `staff` is its counsellor (and still works on its line)."""
    thread = await mailbox_service.locked(session, thread_id)
    if thread.staff_id != staff.id or not await _member(session, staff, thread.line_key):
        raise ApiError("not_your_thread", "this thread is another counsellor's", 403)
    return thread


@router.get("")
async def list_threads(
    staff: TakeChats, session: SessionDep, line: LineQuery = None
) -> dict[str, Any]:
    """Threads waiting for someone to claim them (oldest first), and one's own."""
    repo = MailboxRepository(session)
    keys = await repo.member_lines(staff.id)
    if line is not None:
        if line not in keys:
            raise ApiError("not_member", "you do not work on this line", 403)
        keys = [line]
    waiting = await repo.waiting(keys)
    mine = await repo.claimed_by(staff.id, keys)
    aliases = await repo.aliases({t.staff_id for t in mine if t.staff_id})
    now = utcnow()
    booked = await BookingRepository(session).booked_digests([t.digest for t in mine])
    return {
        "waiting": [summary(t, aliases, now) for t in waiting],
        "mine": [summary(t, aliases, now, booked) for t in mine],
    }


@router.post("/{thread_id}/claim")
async def claim(
    thread_id: uuid.UUID, staff: TakeChats, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """The thread becomes this counsellor's: from now on only they read and answer it."""
    thread = await mailbox_service.locked(session, thread_id)
    line = _line(runtime, thread.line_key)
    if not await _member(session, staff, line.key) or not _qualified(staff, line):
        raise ApiError("not_member", "you do not answer on this thread's line", 403)
    if thread.staff_id != staff.id:
        if not await mailbox_service.claim(session, thread, staff):
            raise ApiError("already_claimed", "another counsellor has claimed this thread", 409)
        await hold_audit(session, runtime, AuditAction.mailbox_claimed, staff, line.key)
        runtime.mailbox.changed(session, line.key)
    return await staff_thread(session, runtime, thread)


@router.get("/{thread_id}")
async def read_thread(
    thread_id: uuid.UUID, staff: TakeChats, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """The whole thread with its notes: only for its counsellor."""
    thread = await _own(session, runtime, staff, thread_id)
    return await staff_thread(session, runtime, thread)


@router.post("/{thread_id}/answer")
async def answer(
    thread_id: uuid.UUID,
    body: Answer,
    staff: TakeChats,
    session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Answer with text, or with a referral card in the visitor's language."""
    if (body.text is None) == (body.card is None):
        raise ApiError("invalid_answer", "send either 'text' or 'card'", 422)
    thread = await _own(session, runtime, staff, thread_id)
    line = _line(runtime, thread.line_key)
    content: dict[str, Any]
    if body.text is not None:
        _check_text(line, body.text)
        content = {"kind": "text", "text": body.text}
    else:
        assert body.card is not None
        service = await directory_service.find(session, body.card)
        if service is None:
            raise ApiError("unknown_service", "there is no such service in the directory", 404)
        content = {"kind": "card", "card": card(service, thread.language, line.languages)}
    row = await mailbox_service.answer(
        session, runtime.mailbox.keyring, thread, staff, content, utcnow()
    )
    runtime.mailbox.hold(session, [row] if row is not None else [])
    await hold_audit(session, runtime, AuditAction.mailbox_answered, staff, line.key)
    runtime.mailbox.changed(session, line.key)
    return await staff_thread(session, runtime, thread)


def _check_text(line: LineConfig, text: str) -> None:
    if not text.strip():
        raise ApiError("empty", "the message is empty", 422)
    if len(text) > line.max_message_length:
        raise ApiError(
            "message_too_long",
            f"the message has {len(text)} characters; the limit is {line.max_message_length}",
            422,
        )


@router.post("/{thread_id}/notes")
async def add_note(
    thread_id: uuid.UUID,
    body: NoteIn,
    staff: TakeChats,
    session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """A note for staff only: sealed with the thread, never shown to the visitor."""
    thread = await _own(session, runtime, staff, thread_id)
    _check_text(_line(runtime, thread.line_key), body.text)
    await mailbox_service.note(session, runtime.mailbox.keyring, thread, staff, body.text, utcnow())
    await hold_audit(session, runtime, AuditAction.mailbox_noted, staff, thread.line_key)
    return await staff_thread(session, runtime, thread)


@router.post("/{thread_id}/close")
async def close(
    thread_id: uuid.UUID,
    body: CloseIn,
    staff: TakeChats,
    session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Close with a wrap-up, counted with the chats' (anonymous `wrapups` rows)."""
    thread = await _own(session, runtime, staff, thread_id)
    line = _line(runtime, thread.line_key)
    if thread.status == Status.closed:
        raise ApiError("already_closed", "the thread is closed already", 409)
    unknown = sorted(set(body.topics) - set(line.wrapup_topics))
    if unknown:
        raise ApiError("invalid_wrapup", f"unknown topics: {', '.join(unknown)}", 422)
    if line.wrapup_outcomes and body.outcome not in line.wrapup_outcomes:
        raise ApiError("invalid_wrapup", "unknown outcome", 422)
    await mailbox_service.close(session, thread)
    wrapup = Wrapup(
        id=uuid.uuid4(),
        line_key=line.key,
        hour=hour_bucket(thread.created_at.timestamp()),
        topics=sorted(set(body.topics)),
        outcome=body.outcome,
    )
    runtime.mailbox.hold(session, [wrapup])
    await hold_audit(session, runtime, AuditAction.mailbox_closed, staff, line.key)
    runtime.mailbox.changed(session, line.key)
    return await staff_thread(session, runtime, thread)


@router.post("/{thread_id}/delete")
async def delete_thread(
    thread_id: uuid.UUID, staff: TakeChats, session: SessionDep, runtime: RuntimeDep
) -> dict[str, str]:
    """The counsellor shreds the thread now (e.g. abuse); the visitor's code then finds nothing."""
    thread = await _own(session, runtime, staff, thread_id)
    rows = await mailbox_service.shred(session, [thread])
    runtime.mailbox.hold(session, rows)
    await hold_audit(session, runtime, AuditAction.mailbox_deleted, staff, thread.line_key)
    runtime.mailbox.changed(session, thread.line_key)
    runtime.mailbox.shredded(session)
    return {"status": "deleted"}


# Coordinators: who holds which thread, without content ------------------------------------


def _holder(thread: MailboxThread, aliases: dict[uuid.UUID, str]) -> dict[str, Any]:
    return {
        "id": str(thread.id),
        "status": thread.status,
        "counsellor": aliases.get(thread.staff_id) if thread.staff_id else None,
        "counsellor_id": str(thread.staff_id) if thread.staff_id else None,
        "last_at": _iso(thread.last_at),
    }


@router.get("/lines/{key}/threads")
async def line_threads(
    key: LineKeyStr, _: ManageRoster, session: SessionDep, runtime: RuntimeDep
) -> list[dict[str, Any]]:
    """The line's threads and who holds them (for a hand-over); no content."""
    _line(runtime, key)
    repo = MailboxRepository(session)
    threads = await repo.of_line(key)
    aliases = await repo.aliases({t.staff_id for t in threads if t.staff_id})
    return [_holder(t, aliases) for t in threads]


@router.post("/{thread_id}/hand")
async def hand_over(
    thread_id: uuid.UUID,
    body: HandIn,
    actor: ManageRoster,
    session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Give the thread to another counsellor of its line (its own is away for days). Its
    booked chat not yet started and its offered times are cancelled (they were in the first
    counsellor's shifts), and the answer says how many; the new counsellor may offer new
    ones."""
    thread = await mailbox_service.locked(session, thread_id)
    line = _line(runtime, thread.line_key)
    repo = MailboxRepository(session)
    target = await repo.staff(body.staff_id)
    if (
        target is None
        or not target.is_active
        or target.role is not StaffRole.counsellor
        or not _qualified(target, line)
        or not await _member(session, target, line.key)
    ):
        raise ApiError(
            "not_eligible",
            "hand it to an active counsellor who works on the line and is qualified for it",
            422,
        )
    if thread.staff_id == target.id:
        raise ApiError("same_counsellor", "the thread is theirs already", 409)
    cancelled = await mailbox_service.hand_over(
        session, runtime.mailbox.keyring, thread, target, utcnow()
    )
    await hold_audit(session, runtime, AuditAction.mailbox_handed_over, actor, line.key, target.id)
    runtime.mailbox.changed(session, line.key)
    if cancelled.booked:

        async def release() -> None:
            # The first counsellor's place is no longer held for the booked chat.
            runtime.continuity.holds.invalidate()

        after_commit(session, release)
    # The coordinator is told what went with it: the visitor was told in the thread.
    return {
        **_holder(thread, {target.id: target.alias}),
        "cancelled": {"booked": len(cancelled.booked), "offered": len(cancelled.offered)},
    }
