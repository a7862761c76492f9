"""A line as the visitor side sees it (the API's `/api/lines/<key>` and the chat page)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from app.kit.db import unit_of_work
from app.lines.schemas import PublicLine, PublicMailbox
from app.lines.service import LineConfig
from app.mailbox import protocol
from app.mailbox.service import mailbox_service
from app.staff.permissions import plays_visitor

if TYPE_CHECKING:
    from app.runtime import Runtime


async def hidden(runtime: Runtime, connection: HTTPConnection, line: LineConfig | None) -> bool:
    """Whether the visitor side answers as if `line` did not exist: a practice line, to all
    but staff who may play its visitor (the staff session is read for practice lines only)."""
    return line is not None and line.practice and not await plays_visitor(connection, runtime)


async def public_line(runtime: Runtime, line: LineConfig) -> PublicLine:
    """What a visitor may know about a line before a chat: its texts and whether it is open."""
    staffed = await runtime.router.staffing(line)
    is_open = staffed.open
    return PublicLine(
        key=line.key,
        name=line.name,
        languages=list(line.languages),
        open=is_open,
        opening_hours=line.opening_hours,
        closed_message=line.closed_message,
        alternatives=line.alternatives,
        privacy_note=line.privacy_note,
        max_message_length=line.max_message_length,
        # While someone on duty is on a break, the next shift is not when it opens again.
        next_open_at=None
        if is_open or await runtime.router.staffed(line.key)
        else await runtime.openings.next_open_at(line.key),
        time_zone=line.time_zone,
        peer_available=staffed.peer_available,
        emergency_text=line.emergency_text,
        practice=line.practice,
        mailbox=await public_mailbox(runtime, line, is_open),
    )


async def public_mailbox(runtime: Runtime, line: LineConfig, is_open: bool) -> PublicMailbox:
    readable = line.mailbox != protocol.MailboxMode.off
    if not readable:
        # A line whose mailbox was turned off still lets its visitors read what is there.
        async with unit_of_work(runtime.sessionmaker) as session:
            readable = await mailbox_service.has_threads(session, line.key)
    return PublicMailbox(
        writable=protocol.writable(line.mailbox, is_open),
        readable=readable,
        answer_time=dict(line.mailbox_answer_time),
        retention_days=line.mailbox_retention_days,
    )
