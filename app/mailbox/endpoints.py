"""The visitor's HTTP side of the mailbox: write a new thread, read it with its code, write
again, delete it. The code is only ever in a request body.

Every miss (a wrong, unknown, deleted or expired code) gets one answer after the same digest
work; presenting a code counts against the client's code attempts (bucket "code", shared with
continuity codes).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.abuse.ratelimit import Limit
from app.abuse.visitor_requests import (
    BodyRefusal,
    allowed,
    json_answer,
    visitor_body,
    visitor_code_body,
)
from app.bookings.views import booking_fields
from app.deps import RuntimeDep
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.kit.errors import REFUSALS
from app.lines.public import hidden
from app.lines.service import LineConfig
from app.mailbox import protocol
from app.mailbox.protocol import Author, Opened
from app.mailbox.schemas import CodeOnly, NewThread, VisitorWrite
from app.mailbox.service import mailbox_service
from app.models import MailboxThread
from app.runtime import Runtime
from app.staff.permissions import public

router = APIRouter(prefix="/api/visitor/mailbox", tags=["visitor"], responses=REFUSALS)

NO_THREAD = {"detail": "no thread was found for this code", "code": "no_thread"}


async def _find(session: AsyncSession, runtime: Runtime, code: str) -> MailboxThread | None:
    return await mailbox_service.find(session, runtime.settings, code, runtime.lines.get, utcnow())


def thread_view(
    thread: MailboxThread, line: LineConfig | None, messages: list[Opened]
) -> dict[str, Any]:
    """A thread as its visitor reads it (never a note)."""
    days = protocol.retention_days(line.mailbox_retention_days if line else None)
    return {
        "line": thread.line_key,
        "line_name": line.name if line is not None else thread.line_key,
        "status": thread.status,
        "deletes_on": protocol.deletes_on(thread.last_at, days).isoformat(),
        "messages": [protocol.visitor_message(m) for m in messages if m.author is not Author.note],
        "booking": None,
        "times_offered": [],
    }


def _too_long(line: LineConfig, text: str) -> Response | None:
    if not text.strip():
        return json_answer(422, {"detail": "the message is empty", "code": "empty"})
    if len(text) > line.max_message_length:
        return json_answer(
            422,
            {
                "detail": f"the message has {len(text)} characters; "
                f"the limit is {line.max_message_length}",
                "code": "message_too_long",
            },
        )
    return None


@router.post("/threads", status_code=201, dependencies=[public(embedding_sites=True)])
async def new_thread(request: Request, runtime: RuntimeDep) -> Response:
    """Write to a line's mailbox: a new thread, and its code, shown this once."""
    body = await visitor_body(request, runtime, NewThread)
    if isinstance(body, BodyRefusal):
        return body.answer()
    line = runtime.lines.get(body.line)
    # A practice line's mailbox is for staff who may play its visitor; to others, no line.
    if line is None or await hidden(runtime, request, line):
        return json_answer(404, {"detail": "no such line", "code": "no_line"})
    refused = _too_long(line, body.text)
    if refused is not None:
        return refused
    staffed = await runtime.router.staffing(line)
    if not protocol.writable(line.mailbox, staffed.open):
        return json_answer(
            409,
            {"detail": "the line's mailbox does not take messages now", "code": "mailbox_closed"},
        )
    settings = runtime.settings
    limit = Limit(settings.mailbox_new_threads, settings.mailbox_new_thread_window_seconds)
    if not await allowed(request, runtime, "mailbox", limit):
        return json_answer(
            429,
            {"detail": "too many new threads; try again later", "code": "too_many_threads"},
        )
    language = body.language if body.language in line.languages else line.languages[0]
    async with unit_of_work(runtime.sessionmaker) as session:
        created = await mailbox_service.create(
            session,
            settings,
            runtime.mailbox.keyring,
            line=line,
            language=language,
            text=body.text,
            now=utcnow(),
        )
        runtime.mailbox.changed(session, line.key)
    return json_answer(
        201,
        {
            "code": created.code,
            "line": line.key,
            "retention_days": line.mailbox_retention_days,
            "answer_time": line.text(line.mailbox_answer_time, body.language),
        },
    )


@router.post("/read", dependencies=[public(embedding_sites=True)])
async def read_thread(request: Request, runtime: RuntimeDep) -> Response:
    """The thread of a code: its messages, the counsellor's answers, when it is deleted."""
    body = await visitor_code_body(request, runtime, CodeOnly)
    if isinstance(body, BodyRefusal):
        return body.answer()
    async with unit_of_work(runtime.sessionmaker) as session:
        thread = await _find(session, runtime, body.code)
        if thread is None:
            return json_answer(404, NO_THREAD)
        messages = await mailbox_service.opened(session, runtime.mailbox.keyring, thread)
        view = thread_view(thread, runtime.lines.get(thread.line_key), messages)
        return json_answer(200, {**view, **await booking_fields(session, thread)})


@router.post("/write", dependencies=[public(embedding_sites=True)])
async def write_again(request: Request, runtime: RuntimeDep) -> Response:
    """The visitor writes again in their thread (a closed one reopens, to the same counsellor)."""
    body = await visitor_code_body(request, runtime, VisitorWrite)
    if isinstance(body, BodyRefusal):
        return body.answer()
    async with unit_of_work(runtime.sessionmaker) as session:
        thread = await _find(session, runtime, body.code)
        if thread is None:
            return json_answer(404, NO_THREAD)
        thread = await mailbox_service.locked(session, thread.id)
        line = runtime.lines.get(thread.line_key)
        if line is None or line.mailbox == protocol.MailboxMode.off:
            return json_answer(
                409,
                {
                    "detail": "the line's mailbox does not take messages now",
                    "code": "mailbox_closed",
                },
            )
        refused = _too_long(line, body.text)
        if refused is not None:
            return refused
        await mailbox_service.write(session, runtime.mailbox.keyring, thread, body.text, utcnow())
        messages = await mailbox_service.opened(session, runtime.mailbox.keyring, thread)
        runtime.mailbox.changed(session, thread.line_key)
        view = {**thread_view(thread, line, messages), **await booking_fields(session, thread)}
    return json_answer(200, view)


@router.post("/delete", dependencies=[public(embedding_sites=True)])
async def delete_thread(request: Request, runtime: RuntimeDep) -> Response:
    """Shred the thread now. The answer is the same whether it existed or not."""
    body = await visitor_code_body(request, runtime, CodeOnly)
    if isinstance(body, BodyRefusal):
        return body.answer()
    async with unit_of_work(runtime.sessionmaker) as session:
        thread = await _find(session, runtime, body.code)
        if thread is not None:
            rows = await mailbox_service.shred(session, [thread])
            runtime.mailbox.hold(session, rows)
            runtime.mailbox.changed(session, thread.line_key)
            runtime.mailbox.shredded(session)
    return json_answer(200, {"status": "deleted"})
