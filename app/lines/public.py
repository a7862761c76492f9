"""A line as the visitor side sees it (the API's `/api/lines/<key>` and the chat page)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.lines.schemas import PublicLine
from app.lines.service import LineConfig

if TYPE_CHECKING:
    from app.runtime import Runtime


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
    )
