"""Debriefs: a counsellor asks for one after a chat; supervisors of the line see the list.

The row says which counsellor, line, hour and risk level; the chat's id never reaches SQL.
Like the chat's other rows it is held in the broker and written with its hour's batch
(app/held/): written at once, the moment of writing would tell when the counsellor asked,
minutes after the chat ended, next to the audit entry that names the chat. Until then the
supervisors' list reads it from the broker. While the line's retention keeps the chat's
transcript, the broker also holds the way from the debrief to it (`transcript_key`),
expiring with the retention.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.care.repository import DebriefRepository
from app.held.service import HeldRows
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
        self, held_rows: HeldRows, *, line: str, ended_at: float, risk: str, staff_id: str
    ) -> Debrief:
        """Hold the request until its hour's batch (it counts as asked from now on)."""
        row = Debrief(
            id=uuid.uuid4(),
            line_key=line,
            hour=hour_bucket(ended_at),
            risk=risk,
            staff_id=uuid.UUID(staff_id),
        )
        await held_rows.hold(row)
        return row

    async def listing(
        self, session: AsyncSession, held_rows: HeldRows, lines: Collection[str]
    ) -> list[dict[str, Any]]:
        """The newest debriefs of these lines, written or still held."""
        if not lines:
            return []
        repository = DebriefRepository(session)
        rows = {
            debrief.id: debrief for debrief in await repository.on_lines(lines, DEBRIEF_LIST_LIMIT)
        }
        for debrief in await held_rows.pending(Debrief):
            if debrief.line_key in lines:
                rows.setdefault(debrief.id, debrief)
        aliases = await repository.aliases({debrief.staff_id for debrief in rows.values()})
        # A held request of a counsellor whose account is gone is not written either.
        kept = [debrief for debrief in rows.values() if debrief.staff_id in aliases]
        newest = sorted(kept, key=lambda d: (-d.hour.timestamp(), str(d.id)))
        return [
            {
                "id": str(debrief.id),
                "line": debrief.line_key,
                "hour": debrief.hour.isoformat(),
                "risk": debrief.risk,
                "counsellor": {"id": str(debrief.staff_id), "alias": aliases[debrief.staff_id]},
            }
            for debrief in newest[:DEBRIEF_LIST_LIMIT]
        ]

    async def find(
        self, session: AsyncSession, held_rows: HeldRows, debrief_id: str
    ) -> Debrief | None:
        wanted = uuid.UUID(debrief_id)
        found = await DebriefRepository(session).find(wanted)
        if found is not None:
            return found
        return next((d for d in await held_rows.pending(Debrief) if d.id == wanted), None)


debrief_service = DebriefService()
