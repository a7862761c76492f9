from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.repository import AuditFilter
from app.audit.schemas import AuditEntryRead, AuditPage
from app.audit.service import audit_service
from app.deps import SessionDep
from app.kit.fields import CleanText, Moment
from app.staff.permissions import ReadAudit
from app.staff.service import staff_service

router = APIRouter(prefix="/api/audit", tags=["audit"])

ChatId = Annotated[
    str,
    StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    CleanText(),
]
Action = Annotated[str, StringConstraints(min_length=1, max_length=48), CleanText()]
LineKey = Annotated[str, StringConstraints(min_length=1, max_length=32), CleanText()]


class AuditQuery(BaseModel):
    """Filters for `POST /api/audit/search`: a chat id is a filter too, and never goes in a URL
    (URLs end up in proxy logs)."""

    model_config = ConfigDict(extra="forbid")

    action: Action | None = None
    actor_id: uuid.UUID | None = None
    target_staff_id: uuid.UUID | None = None
    staff_id: uuid.UUID | None = None
    chat_id: ChatId | None = None
    line: LineKey | None = None
    since: Moment | None = None
    until: Moment | None = None
    limit: StrictInt = Field(default=100, ge=1, le=500)
    offset: StrictInt = Field(default=0, ge=0, le=1_000_000)


@router.get("", response_model=AuditPage)
async def read_audit_log(
    session: SessionDep,
    reader: ReadAudit,
    action: Action | None = None,
    actor_id: uuid.UUID | None = None,
    target_staff_id: uuid.UUID | None = None,
    staff_id: uuid.UUID | None = None,
    line: LineKey | None = None,
    since: Moment | None = None,
    until: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AuditPage:
    """Audit entries, newest first, filtered; nobody can change or delete them."""
    where = AuditFilter(
        action=action,
        actor_id=actor_id,
        target_staff_id=target_staff_id,
        staff_id=staff_id,
        line_key=line,
        since=since,
        until=until,
    )
    return await _page(session, where, limit, offset)


@router.post("/search", response_model=AuditPage)
async def search_audit_log(query: AuditQuery, session: SessionDep, reader: ReadAudit) -> AuditPage:
    """The same as GET, with every filter (a chat id included) in the body."""
    where = AuditFilter(
        action=query.action,
        actor_id=query.actor_id,
        target_staff_id=query.target_staff_id,
        staff_id=query.staff_id,
        chat_id=query.chat_id,
        line_key=query.line,
        since=query.since,
        until=query.until,
    )
    return await _page(session, where, query.limit, query.offset)


async def _page(session: AsyncSession, where: AuditFilter, limit: int, offset: int) -> AuditPage:
    entries = await audit_service.search(session, where, limit=limit, offset=offset)
    names = await staff_service.usernames(
        session,
        {e.actor_id for e in entries if e.actor_id}
        | {e.target_staff_id for e in entries if e.target_staff_id},
    )
    out = []
    for entry in entries:
        read = AuditEntryRead.model_validate(entry)
        read.actor = names.get(entry.actor_id) if entry.actor_id else None
        read.target = names.get(entry.target_staff_id) if entry.target_staff_id else None
        out.append(read)
    return AuditPage(entries=out, limit=limit, offset=offset)
