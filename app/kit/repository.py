"""A small generic repository base: all SQL lives in repositories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.db import Base

M = TypeVar("M", bound=Base)


class RepositoryBase(Generic[M]):
    """CRUD helpers shared by every repository; subclasses set `model`."""

    model: type[M]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def select(self) -> Select[M]:
        return select(self.model)

    async def get(self, key: Any) -> M | None:
        return await self.session.get(self.model, key)

    async def get_all(self, statement: Select[M]) -> Sequence[M]:
        result = await self.session.execute(statement)
        return result.scalars().all()

    async def get_one_or_none(self, statement: Select[M]) -> M | None:
        result = await self.session.execute(statement)
        return result.scalars().one_or_none()

    async def add(self, obj: M, *, flush: bool = True) -> M:
        self.session.add(obj)
        if flush:
            await self.session.flush()
        return obj

    async def delete(self, obj: M) -> None:
        await self.session.delete(obj)
        await self.session.flush()
