"""Booked chats from the mailbox: a thread's counsellor offers up to three times in their own
shifts (a "times" message in the thread), and the visitor books one with the mailbox code.
The booking is keyed by the thread's digest, so a chat started with the mailbox code at that
time goes to that counsellor (app/continuity/chats.py); shredding the thread deletes it.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app.abuse.visitor_requests import BodyRefusal, json_answer, visitor_code_body
from app.audit.service import AuditAction
from app.bookings.service import BookingError, booking_service, iso
from app.bookings.views import booking_fields
from app.chats.frames import ContinuityCode
from app.deps import RuntimeDep, SessionDep
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.kit.errors import REFUSALS, ApiError
from app.kit.fields import Moment
from app.mailbox.endpoints import NO_THREAD, thread_view
from app.mailbox.repository import MailboxRepository
from app.mailbox.service import mailbox_service
from app.mailbox.staff_endpoints import hold_audit, staff_thread
from app.runtime import Runtime
from app.staff.permissions import TakeChats, public

router = APIRouter(prefix="/api/mailbox", tags=["mailbox"], responses=REFUSALS)
visitor_router = APIRouter(prefix="/api/visitor/mailbox", tags=["visitor"], responses=REFUSALS)


class TimesIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # More than three are refused with their own error (too_many_times), not as malformed.
    times: Annotated[list[Moment], Field(max_length=10)]


class BookIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: ContinuityCode
    time: Moment


@router.post("/{thread_id}/times")
async def offer_times(
    thread_id: uuid.UUID,
    body: TimesIn,
    staff: TakeChats,
    session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """The thread's counsellor offers up to three times inside their own shifts on its line."""
    thread = await mailbox_service.locked(session, thread_id)
    if thread.staff_id != staff.id or thread.line_key not in await MailboxRepository(
        session
    ).member_lines(staff.id):
        raise ApiError("not_your_thread", "this thread is another counsellor's", 403)
    chosen = await booking_service.offer(
        session,
        staff_id=staff.id,
        line_key=thread.line_key,
        digest=thread.digest,
        times=body.times,
        now=utcnow(),
    )
    # A message from the counsellor like an answer: the thread is answered, and counted.
    row = await mailbox_service.answer(
        session,
        runtime.mailbox.keyring,
        thread,
        staff,
        {"kind": "times", "times": [iso(t) for t in chosen]},
        utcnow(),
    )
    runtime.mailbox.hold(session, [row] if row is not None else [])
    # Which counsellor offered times on which line, held to the hour: never the thread.
    await hold_audit(session, runtime, AuditAction.mailbox_times_offered, staff, thread.line_key)
    runtime.mailbox.changed(session, thread.line_key)
    return {**await staff_thread(session, runtime, thread), **await booking_fields(session, thread)}


@visitor_router.post("/book", dependencies=[public(embedding_sites=True)])
async def book(request: Request, runtime: RuntimeDep) -> Response:
    """The visitor books one of the offered times with the mailbox code (in the body)."""
    body = await visitor_code_body(request, runtime, BookIn)
    if isinstance(body, BodyRefusal):
        return body.answer()
    return await _book(runtime, body)


async def _book(runtime: Runtime, body: BookIn) -> Response:
    now = utcnow()
    try:
        async with unit_of_work(runtime.sessionmaker) as session:
            thread = await mailbox_service.find(
                session, runtime.settings, body.code, runtime.lines.get, now
            )
            if thread is None:
                return json_answer(404, NO_THREAD)
            booked = await booking_service.pick(
                session, digest=thread.digest, time=body.time, now=now
            )
            if booked is None:
                raise BookingError("time_not_offered", "this time was not offered to you", 409)
            messages = await mailbox_service.opened(session, runtime.mailbox.keyring, thread)
            view = {
                **thread_view(thread, runtime.lines.get(thread.line_key), messages),
                **await booking_fields(session, thread),
            }
    except BookingError as exc:
        return json_answer(exc.status, {"detail": exc.message, "code": exc.code})
    # Routing keeps the counsellor's last place for it from a little before the time.
    runtime.continuity.holds.invalidate()
    return json_answer(200, view)
