from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.held.rows import HeldRow
from app.models import Debrief, Staff

# Ids looked up per statement (parameters stay well below every database's limit).
_LOOKUP = 500


class HeldRowRepository:
    """Writes a batch of held rows in the order given, skipping rows already written."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_new(self, rows: Sequence[HeldRow]) -> int:
        """Add the rows not yet in their tables (a batch whose writer died after its commit
        comes again); how many were added. Each table gets its rows in the order given."""
        by_model: dict[type[HeldRow], list[HeldRow]] = {}
        for row in rows:
            by_model.setdefault(type(row), []).append(row)
        added = 0
        for model, group in by_model.items():
            existing = await self._existing(model, [row.id for row in group])
            fresh = [row for row in group if row.id not in existing]
            if model is Debrief:
                fresh = await self._staff_still_there(fresh)
            self.session.add_all(fresh)
            added += len(fresh)
        await self.session.flush()
        return added

    async def _staff_still_there(self, rows: list[HeldRow]) -> list[HeldRow]:
        """A debrief whose counsellor's account is gone goes with it, as the foreign key's
        cascade would have taken it (one such row must not hold up the hour's batch)."""
        wanted = {row.staff_id for row in rows if isinstance(row, Debrief)}
        if not wanted:
            return rows
        result = await self.session.execute(select(Staff.id).where(Staff.id.in_(wanted)))
        found = set(result.scalars())
        return [row for row in rows if not isinstance(row, Debrief) or row.staff_id in found]

    async def _existing(self, model: type[HeldRow], ids: list[uuid.UUID]) -> set[uuid.UUID]:
        found: set[uuid.UUID] = set()
        for start in range(0, len(ids), _LOOKUP):
            chunk = ids[start : start + _LOOKUP]
            result = await self.session.execute(select(model.id).where(model.id.in_(chunk)))
            found.update(result.scalars())
        return found
