from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from app.deps import RuntimeDep
from app.lines.schemas import PublicLine
from app.lines.service import LineConfig

router = APIRouter(prefix="/api/lines", tags=["lines"])


@router.get("", response_model=list[PublicLine])
async def list_lines(runtime: RuntimeDep) -> list[PublicLine]:
    """Every line with whether it is open now: what the widget needs before a chat."""
    out = []
    for line in runtime.lines.all():
        is_open, _ = await runtime.router.line_status(line)
        out.append(_public(line, is_open))
    return out


@router.get("/{key}", response_model=PublicLine)
async def get_line(key: str, runtime: RuntimeDep) -> PublicLine:
    line = runtime.lines.get(key)
    if line is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such line")
    is_open, _ = await runtime.router.line_status(line)
    return _public(line, is_open)


def _public(line: LineConfig, is_open: bool) -> PublicLine:
    return PublicLine(
        key=line.key,
        name=line.name,
        languages=list(line.languages),
        open=is_open,
        opening_hours=line.opening_hours,
        closed_message=line.closed_message,
        alternatives=line.alternatives,
        max_message_length=line.max_message_length,
    )
