from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.kit.repository import RepositoryBase
from app.models import AuditEntry


@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: str | None = None
    actor_id: uuid.UUID | None = None
    target_staff_id: uuid.UUID | None = None
    staff_id: uuid.UUID | None = None  # as actor or as target
    chat_id: str | None = None
    line_key: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository(RepositoryBase[AuditEntry]):
    """Adds and reads entries; there is deliberately no way to change or delete one."""

    model = AuditEntry

    async def search(self, where: AuditFilter, *, limit: int, offset: int) -> Sequence[AuditEntry]:
        statement = self.select()
        if where.action is not None:
            # "sign_in" matches "sign_in.failed" too: actions are dotted families.
            statement = statement.where(
                (AuditEntry.action == where.action)
                | AuditEntry.action.startswith(where.action + ".", autoescape=True)
            )
        if where.actor_id is not None:
            statement = statement.where(AuditEntry.actor_id == where.actor_id)
        if where.target_staff_id is not None:
            statement = statement.where(AuditEntry.target_staff_id == where.target_staff_id)
        if where.staff_id is not None:
            statement = statement.where(
                (AuditEntry.actor_id == where.staff_id)
                | (AuditEntry.target_staff_id == where.staff_id)
            )
        if where.chat_id is not None:
            statement = statement.where(AuditEntry.chat_id == where.chat_id)
        if where.line_key is not None:
            statement = statement.where(AuditEntry.line_key == where.line_key)
        if where.since is not None:
            statement = statement.where(AuditEntry.at >= where.since)
        if where.until is not None:
            statement = statement.where(AuditEntry.at < where.until)
        statement = (
            statement.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return await self.get_all(statement)
