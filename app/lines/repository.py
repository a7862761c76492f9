from __future__ import annotations

from collections.abc import Sequence

from app.kit.repository import RepositoryBase
from app.models import Line


class LineRepository(RepositoryBase[Line]):
    model = Line

    async def list_active(self) -> Sequence[Line]:
        return await self.get_all(self.select().where(Line.is_active.is_(True)).order_by(Line.key))
