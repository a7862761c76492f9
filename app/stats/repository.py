from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.kit import jsonutil
from app.kit.repository import RepositoryBase
from app.models import ChatStatistic, MailboxStatistic, Wrapup
from app.models.enums import ChatOutcome
from app.stats.demand import StatRow
from app.stats.mailbox import MailboxRow
from app.stats.wrapups import RiskCount, WrapupCount

# A column or expression to group by.
_Key = ColumnElement[Any] | InstrumentedAttribute[Any]


class ChatStatisticRepository(RepositoryBase[ChatStatistic]):
    model = ChatStatistic

    async def add_many(self, rows: Sequence[ChatStatistic]) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def for_line(self, line_key: str) -> Sequence[ChatStatistic]:
        return await self.get_all(self.select().where(ChatStatistic.line_key == line_key))


class WrapupRepository(RepositoryBase[Wrapup]):
    model = Wrapup


async def statistic_rows(
    session: AsyncSession, line_keys: Sequence[str] | None, start: datetime, end: datetime
) -> list[StatRow]:
    """Rows of chats that started in [start, end), for some lines or all."""
    statement = select(
        ChatStatistic.line_key,
        ChatStatistic.hour,
        ChatStatistic.outcome,
        ChatStatistic.waited_seconds,
        ChatStatistic.duration_seconds,
    ).where(ChatStatistic.hour >= start, ChatStatistic.hour < end)
    if line_keys is not None:
        statement = statement.where(ChatStatistic.line_key.in_(line_keys))
    result = await session.execute(statement)
    return [
        StatRow(line, hour, ChatOutcome(outcome), waited, duration)
        for line, hour, outcome, waited, duration in result.all()
    ]


async def wrapup_counts(
    session: AsyncSession,
    line_keys: Sequence[str] | None,
    start: datetime,
    end: datetime,
    *,
    by_hour: bool,
) -> list[WrapupCount]:
    """Wrap-ups of chats that started in [start, end), for some lines or all, counted in SQL
    by line, topics and outcome (and hour, if asked): a few rows however many wrap-ups."""
    # Topics are a JSON list (sorted when written); compared as text, which both databases
    # can group by (PostgreSQL's json type has no equality).
    topics = cast(Wrapup.topics, String)
    keys: list[_Key] = [Wrapup.line_key, topics, Wrapup.outcome]
    if by_hour:
        keys.append(Wrapup.hour)
    statement = (
        select(*keys, func.count()).where(Wrapup.hour >= start, Wrapup.hour < end).group_by(*keys)
    )
    if line_keys is not None:
        statement = statement.where(Wrapup.line_key.in_(line_keys))
    result = await session.execute(statement)
    return [
        WrapupCount(
            row[0],
            row[3] if by_hour else None,
            tuple(jsonutil.loads(row[1]) or ()),
            row[2],
            row[-1],
        )
        for row in result.all()
    ]


async def risk_counts(
    session: AsyncSession,
    line_keys: Sequence[str] | None,
    start: datetime,
    end: datetime,
    *,
    by_hour: bool,
) -> list[RiskCount]:
    """Answered chats that started in [start, end), counted in SQL by line, risk level and
    "in danger" (and hour, if asked)."""
    keys: list[_Key] = [
        ChatStatistic.line_key,
        ChatStatistic.risk,
        ChatStatistic.in_danger,
    ]
    if by_hour:
        keys.append(ChatStatistic.hour)
    statement = (
        select(*keys, func.count())
        .where(
            ChatStatistic.hour >= start,
            ChatStatistic.hour < end,
            ChatStatistic.outcome == ChatOutcome.answered,
        )
        .group_by(*keys)
    )
    if line_keys is not None:
        statement = statement.where(ChatStatistic.line_key.in_(line_keys))
    result = await session.execute(statement)
    return [
        RiskCount(row[0], row[3] if by_hour else None, row[1], bool(row[2]), row[-1])
        for row in result.all()
    ]


async def mailbox_rows(
    session: AsyncSession, line_keys: Sequence[str] | None, start: datetime, end: datetime
) -> list[MailboxRow]:
    """Rows of mailbox threads whose first message came in [start, end)."""
    statement = select(
        MailboxStatistic.line_key, MailboxStatistic.hour, MailboxStatistic.first_answer_hours
    ).where(MailboxStatistic.hour >= start, MailboxStatistic.hour < end)
    if line_keys is not None:
        statement = statement.where(MailboxStatistic.line_key.in_(line_keys))
    result = await session.execute(statement)
    return [MailboxRow(line, hour, hours) for line, hour, hours in result.all()]
