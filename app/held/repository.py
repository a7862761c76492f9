from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.held.rows import HeldRow

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
            self.session.add_all(fresh)
            added += len(fresh)
        await self.session.flush()
        return added

    async def _existing(self, model: type[HeldRow], ids: list[uuid.UUID]) -> set[uuid.UUID]:
        found: set[uuid.UUID] = set()
        for start in range(0, len(ids), _LOOKUP):
            chunk = ids[start : start + _LOOKUP]
            result = await self.session.execute(select(model.id).where(model.id.in_(chunk)))
            found.update(result.scalars())
        return found
