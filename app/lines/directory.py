"""An in-process cache of line settings: the chat hot path never waits for SQL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.db import unit_of_work
from app.lines.service import LineConfig, line_service


class LineDirectory:
    """Every active line, reloaded when a coordinator changes one (and now and then)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._lines: dict[str, LineConfig] = {}

    async def reload(self) -> None:
        async with unit_of_work(self._sessionmaker) as session:
            lines = await line_service.list_active(session)
        self._lines = {line.key: LineConfig.from_model(line) for line in lines}

    def get(self, key: str) -> LineConfig | None:
        return self._lines.get(key)

    def all(self) -> list[LineConfig]:
        return list(self._lines.values())

    def keys(self) -> list[str]:
        return list(self._lines)
