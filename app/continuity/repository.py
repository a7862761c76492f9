from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from app.kit.repository import RepositoryBase
from app.models import ContinuityCode


class ContinuityCodeRepository(RepositoryBase[ContinuityCode]):
    model = ContinuityCode

    async def by_digest(self, digest: str) -> ContinuityCode | None:
        return await self.get_one_or_none(self.select().where(ContinuityCode.digest == digest))

    async def delete_by_digest(self, digest: str) -> bool:
        result = await self.session.execute(
            delete(ContinuityCode).where(ContinuityCode.digest == digest)
        )
        return bool(getattr(result, "rowcount", 0))

    async def delete_expired(self, now: datetime) -> int:
        result = await self.session.execute(
            delete(ContinuityCode).where(ContinuityCode.expires_at <= now)
        )
        return int(getattr(result, "rowcount", 0) or 0)
