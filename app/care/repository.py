from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import select

from app.kit.repository import RepositoryBase
from app.models import Debrief, Staff


class DebriefRepository(RepositoryBase[Debrief]):
    model = Debrief

    async def on_lines(self, lines: Collection[str], limit: int) -> Sequence[Debrief]:
        """The newest debriefs of these lines."""
        if not lines:
            return []
        statement = (
            select(Debrief)
            .where(Debrief.line_key.in_(sorted(lines)))
            .order_by(Debrief.hour.desc(), Debrief.id)
            .limit(limit)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def aliases(self, staff_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The alias of each of these counsellors who still has an account."""
        if not staff_ids:
            return {}
        statement = select(Staff.id, Staff.alias).where(Staff.id.in_(sorted(staff_ids)))
        return {row[0]: row[1] for row in (await self.session.execute(statement)).all()}

    async def find(self, debrief_id: uuid.UUID) -> Debrief | None:
        return await self.get(debrief_id)
