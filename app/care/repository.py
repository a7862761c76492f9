from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import select

from app.kit.repository import RepositoryBase
from app.models import Debrief, Staff


class DebriefRepository(RepositoryBase[Debrief]):
    model = Debrief

    async def on_lines(self, lines: Collection[str], limit: int) -> Sequence[tuple[Debrief, str]]:
        """The newest debriefs of these lines, with the alias of the counsellor who asked."""
        if not lines:
            return []
        statement = (
            select(Debrief, Staff.alias)
            .join(Staff, Staff.id == Debrief.staff_id)
            .where(Debrief.line_key.in_(sorted(lines)))
            .order_by(Debrief.hour.desc(), Debrief.id)
            .limit(limit)
        )
        result = await self.session.execute(statement)
        return [(row[0], row[1]) for row in result.all()]

    async def find(self, debrief_id: uuid.UUID) -> Debrief | None:
        return await self.get(debrief_id)
