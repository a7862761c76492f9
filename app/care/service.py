"""Debriefs: a counsellor asks for one after a chat; supervisors of the line see the list.

The row says which counsellor, line, hour and risk level; the chat's id never reaches SQL.
While the line's retention keeps the chat's transcript, the broker holds the way from the
debrief to it (`transcript_key`), expiring with the retention.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.care.repository import DebriefRepository
from app.kit.clock import hour_bucket
from app.models import Debrief

# The newest debriefs a supervisor's list shows.
DEBRIEF_LIST_LIMIT = 100


def transcript_key(debrief_id: uuid.UUID | str) -> str:
    return f"debrief:{debrief_id}"


def asked_key(chat_id: str) -> str:
    """Set by the first request for a debrief of a chat: one per chat."""
    return f"debrief-asked:{chat_id}"


class DebriefService:
    async def ask(
        self, session: AsyncSession, *, line: str, ended_at: float, risk: str, staff_id: str
    ) -> Debrief:
        return await DebriefRepository(session).add(
            Debrief(
                line_key=line,
                hour=hour_bucket(ended_at),
                risk=risk,
                staff_id=uuid.UUID(staff_id),
            )
        )

    async def listing(self, session: AsyncSession, lines: Collection[str]) -> list[dict[str, Any]]:
        rows = await DebriefRepository(session).on_lines(lines, DEBRIEF_LIST_LIMIT)
        return [
            {
                "id": str(debrief.id),
                "line": debrief.line_key,
                "hour": debrief.hour.isoformat(),
                "risk": debrief.risk,
                "counsellor": {"id": str(debrief.staff_id), "alias": alias},
            }
            for debrief, alias in rows
        ]

    async def find(self, session: AsyncSession, debrief_id: str) -> Debrief | None:
        return await DebriefRepository(session).find(uuid.UUID(debrief_id))


debrief_service = DebriefService()
