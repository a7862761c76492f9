from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from app.kit.repository import RepositoryBase
from app.models import ReferralService


class ReferralServiceRepository(RepositoryBase[ReferralService]):
    model = ReferralService

    async def all(self) -> Sequence[ReferralService]:
        return await self.get_all(self.select().order_by(ReferralService.name, ReferralService.id))

    async def by_ids(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, ReferralService]:
        if not ids:
            return {}
        found = await self.get_all(self.select().where(ReferralService.id.in_(list(ids))))
        return {s.id: s for s in found}
