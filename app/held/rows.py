"""Pure: a held row as text and back. Only the models below are ever held, and none of them
has a column for content."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum as PyEnum
from typing import Any

from sqlalchemy import Enum, Uuid

from app.kit import jsonutil
from app.kit.db import UTCDateTime
from app.models import AuditEntry, ChatStatistic, Debrief, MailboxStatistic, Wrapup

HeldRow = AuditEntry | ChatStatistic | Debrief | MailboxStatistic | Wrapup

MODELS: dict[str, type[HeldRow]] = {
    model.__tablename__: model
    for model in (AuditEntry, ChatStatistic, Debrief, MailboxStatistic, Wrapup)
}


def serialise(row: HeldRow) -> tuple[str, str]:
    """(row id, the row as JSON). The id is the row's primary key, given here if it has none
    yet: it is what makes writing a batch twice write it once."""
    if row.id is None:
        row.id = uuid.uuid4()
    fields: dict[str, Any] = {}
    for column in row.__table__.columns:
        value = getattr(row, column.key)
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, PyEnum):
            value = value.value
        fields[column.key] = value
    return str(row.id), jsonutil.dumps({"table": row.__tablename__, "row": fields})


def deserialise(text: str) -> HeldRow:
    """The row, ready to be added to a session."""
    data = jsonutil.loads(text)
    model = MODELS[data["table"]]
    values: dict[str, Any] = {}
    columns = model.__table__.columns
    for name, value in data["row"].items():
        values[name] = _load(columns[name].type, value)
    return model(**values)


def _load(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, Uuid):
        return uuid.UUID(value)
    if isinstance(kind, UTCDateTime):
        return datetime.fromisoformat(value)
    if isinstance(kind, Enum) and kind.enum_class is not None:
        return kind.enum_class(value)
    return value
