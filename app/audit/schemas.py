from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    action: str
    actor_id: uuid.UUID | None
    actor: str | None = None  # the actor's username, when there is one
    target_staff_id: uuid.UUID | None
    target: str | None = None
    line_key: str | None
    chat_id: str | None
    detail: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditEntryRead]
    limit: int
    offset: int
