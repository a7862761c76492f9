"""Reading every table of the database as it is (reflected, not from the models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import MetaData, Table, and_, inspect, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession


class DatabaseReader:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def table_names(self) -> list[str]:
        connection = await self.session.connection()

        def names(sync: Connection) -> list[str]:
            return sorted(inspect(sync).get_table_names())

        return await connection.run_sync(names)

    async def _table(self, name: str) -> Table:
        connection = await self.session.connection()

        def reflect(sync: Connection) -> Table:
            return Table(name, MetaData(), autoload_with=sync)

        return await connection.run_sync(reflect)

    async def rows(
        self,
        name: str,
        *,
        within: tuple[str, datetime, datetime] | None = None,
        overlapping: tuple[str, str, datetime, datetime] | None = None,
    ) -> list[dict[str, Any]]:
        """Every row, or those whose `column` lies in [start, end), or whose [begin, finish]
        span overlaps [start, end)."""
        table = await self._table(name)
        statement = select(table)
        if within is not None:
            column, start, end = within
            statement = statement.where(and_(table.c[column] >= start, table.c[column] < end))
        if overlapping is not None:
            begin, finish, start, end = overlapping
            statement = statement.where(
                and_(table.c[begin] < end, or_(table.c[finish] >= start, table.c[finish].is_(None)))
            )
        result = await self.session.execute(statement)
        return [dict(row._mapping) for row in result]
