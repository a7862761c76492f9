from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from app.audit.service import AuditAction, audit_service
from app.deps import RuntimeDep, SessionDep
from app.kit.db import after_commit
from app.kit.fields import Text
from app.lines.public import hidden, public_line
from app.lines.schemas import LineKeyStr, LineSettings, PracticeLine, PublicLine
from app.lines.service import line_service
from app.staff.permissions import ManageLines, PlayVisitor, public
from app.staff.service import OnCallError, staff_service

router = APIRouter(prefix="/api/lines", tags=["lines"])


@router.get("", response_model=list[PublicLine], dependencies=[public()])
async def list_lines(runtime: RuntimeDep) -> list[PublicLine]:
    """Every line with whether it is open now: what the widget needs before a chat (practice
    lines are for training: not listed)."""
    return [await public_line(runtime, line) for line in runtime.lines.all() if not line.practice]


@router.get("/practice", response_model=list[PracticeLine])
async def practice_lines(runtime: RuntimeDep, _: PlayVisitor) -> list[PracticeLine]:
    """Practice lines with their scripted openings, for playing the visitor."""
    return [
        PracticeLine(
            key=line.key,
            name=line.name,
            languages=list(line.languages),
            openings={language: list(texts) for language, texts in line.practice_openings.items()},
        )
        for line in sorted(runtime.lines.all(), key=lambda c: c.key)
        if line.practice
    ]


@router.get("/{key}", response_model=PublicLine, dependencies=[public()])
async def get_line(key: Text, request: Request, runtime: RuntimeDep) -> PublicLine:
    """One line; while it is closed, `next_open_at` says when the roster next opens it (a
    practice line is unknown to all but staff who may play its visitor)."""
    line = runtime.lines.get(key)
    if line is None or await hidden(runtime, request, line):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such line")
    return await public_line(runtime, line)


# Line settings (coordinators) -------------------------------------------------------------


async def _check_on_call(session: SessionDep, body: LineSettings) -> None:
    try:
        await staff_service.check_on_call(session, body.on_call)
    except OnCallError as exc:
        # Shaped like a validation error, so the console shows it by the on-call field.
        problem = {
            "type": exc.kind,
            "loc": ["body", "on_call", exc.index],
            "msg": str(exc),
            "ctx": {"alias": exc.alias},
        }
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [problem]) from None


@router.get("/{key}/settings", response_model=LineSettings)
async def get_line_settings(
    key: LineKeyStr, session: SessionDep, actor: ManageLines
) -> LineSettings:
    """Everything a coordinator configures about a line."""
    line = await line_service.get(session, key)
    if line is None or not line.is_active:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such line")
    return line_service.settings_of(line)


@router.put("/{key}/settings", response_model=LineSettings)
async def update_line_settings(
    key: LineKeyStr,
    body: LineSettings,
    session: SessionDep,
    runtime: RuntimeDep,
    actor: ManageLines,
) -> LineSettings:
    """Replace a line's settings; every process picks them up at once."""
    if body.key != key:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "the key in the body differs from the URL"
        )
    line = await line_service.get(session, key)
    if line is None or not line.is_active:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such line")
    changed = line_service.changed_fields(line, body)
    await _check_on_call(session, body)
    await line_service.upsert(session, body)
    if changed:
        await audit_service.record(
            session,
            AuditAction.line_updated,
            actor_id=actor.id,
            line_key=key,
            detail={"fields": changed},
        )
    # Every process reloads the line once the change is stored.
    after_commit(session, lambda: runtime.lines.changed(runtime.broker))
    return body


@router.post("", response_model=LineSettings, status_code=status.HTTP_201_CREATED)
async def create_line(
    body: LineSettings, session: SessionDep, runtime: RuntimeDep, actor: ManageLines
) -> LineSettings:
    """A new line; counsellors are then given it with PATCH /api/staff/{id}."""
    existing = await line_service.get(session, body.key)
    if existing is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"a line {body.key!r} already exists")
    await _check_on_call(session, body)
    await line_service.upsert(session, body)
    await audit_service.record(
        session, AuditAction.line_created, actor_id=actor.id, line_key=body.key
    )
    # Every process reloads the line once the change is stored.
    after_commit(session, lambda: runtime.lines.changed(runtime.broker))
    return body
