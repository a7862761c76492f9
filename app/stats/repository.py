from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.repository import RepositoryBase
from app.models import ChatStatistic, MailboxStatistic, Wrapup
from app.models.enums import ChatOutcome
from app.stats.demand import StatRow
from app.stats.mailbox import MailboxRow


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
