from __future__ import annotations

from collections.abc import Sequence

from app.kit.repository import RepositoryBase
from app.models import ChatStatistic, Wrapup


class ChatStatisticRepository(RepositoryBase[ChatStatistic]):
    model = ChatStatistic

    async def add_many(self, rows: Sequence[ChatStatistic]) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def for_line(self, line_key: str) -> Sequence[ChatStatistic]:
        return await self.get_all(self.select().where(ChatStatistic.line_key == line_key))


class WrapupRepository(RepositoryBase[Wrapup]):
    model = Wrapup
