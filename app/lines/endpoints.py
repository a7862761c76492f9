from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, status

from app.deps import RuntimeDep
from app.lines.schemas import PublicLine
from app.lines.service import LineConfig

if TYPE_CHECKING:
    from app.runtime import Runtime

router = APIRouter(prefix="/api/lines", tags=["lines"])


@router.get("", response_model=list[PublicLine])
async def list_lines(runtime: RuntimeDep) -> list[PublicLine]:
    """Every line with whether it is open now: what the widget needs before a chat."""
    return [await _public(runtime, line) for line in runtime.lines.all()]


@router.get("/{key}", response_model=PublicLine)
async def get_line(key: str, runtime: RuntimeDep) -> PublicLine:
    """One line; while it is closed, `next_open_at` says when the roster next opens it."""
    line = runtime.lines.get(key)
    if line is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such line")
    return await _public(runtime, line)


async def _public(runtime: Runtime, line: LineConfig) -> PublicLine:
    is_open, _ = await runtime.router.line_status(line)
    return PublicLine(
        key=line.key,
        name=line.name,
        languages=list(line.languages),
        open=is_open,
        opening_hours=line.opening_hours,
        closed_message=line.closed_message,
        alternatives=line.alternatives,
        max_message_length=line.max_message_length,
        next_open_at=None if is_open else await runtime.openings.next_open_at(line.key),
        time_zone=line.time_zone,
    )
