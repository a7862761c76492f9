"""Wrap-ups read: topics, outcomes, risk levels and "in danger" per line by week or month,
as pure functions of the anonymous rows (hour buckets; nothing per chat).

Small counts are shown as "fewer than N" (None here): a topic chosen once in a week on a
small line could point at one visitor for someone who knows when she wrote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

# The risk levels a counsellor sets on a chat, in order.
RISK_LEVELS = ("none", "concern", "acute")


class Period(StrEnum):
    week = "week"
    month = "month"


@dataclass(frozen=True, slots=True)
class WrapupRow:
    line: str
    hour: datetime
    topics: tuple[str, ...]
    outcome: str


@dataclass(frozen=True, slots=True)
class RiskRow:
    """A chat's statistics row as far as risk goes: its final level and the visitor's signal."""

    line: str
    hour: datetime
    risk: str | None
    in_danger: bool | None


@dataclass(slots=True)
class Tally:
    """One line's wrap-ups and chats of one week or month."""

    start: date
    wrapups: int = 0
    topics: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    chats: int = 0
    risk: Counter[str] = field(default_factory=Counter)
    in_danger: int = 0


def period_start(moment: datetime, tz: ZoneInfo, period: Period) -> date:
    """The local date the week (Monday) or month of `moment` starts on."""
    local = moment.astimezone(tz).date()
    if period is Period.week:
        return local - timedelta(days=local.weekday())
    return local.replace(day=1)


def next_start(start: date, period: Period) -> date:
    if period is Period.week:
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_starts(first: date, last: date, period: Period) -> list[date]:
    """Every whole week or month that overlaps first..last, in order."""
    start = (
        first - timedelta(days=first.weekday()) if period is Period.week else first.replace(day=1)
    )
    out = []
    while start <= last:
        out.append(start)
        start = next_start(start, period)
    return out


def tally(
    wrapups: Iterable[WrapupRow],
    risks: Iterable[RiskRow],
    tz: ZoneInfo,
    period: Period,
    first: date,
    last: date,
) -> list[Tally]:
    """One tally per week or month of first..last (empty ones too), oldest first."""
    tallies = {start: Tally(start) for start in period_starts(first, last, period)}
    for row in wrapups:
        found = tallies.get(period_start(row.hour, tz, period))
        if found is None:
            continue
        found.wrapups += 1
        found.topics.update(set(row.topics))
        found.outcomes[row.outcome] += 1
    for chat in risks:
        found = tallies.get(period_start(chat.hour, tz, period))
        if found is None:
            continue
        found.chats += 1
        if chat.risk is not None:
            found.risk[chat.risk] += 1
        if chat.in_danger:
            found.in_danger += 1
    return list(tallies.values())


def shown(count: int, small: int) -> int | None:
    """A count as it may be shown: None for 1..small-1 (too few to show), else the count."""
    return None if 0 < count < small else count


def utc_bounds(starts: list[date], period: Period, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC [start, end) of the whole periods that begin at `starts`."""
    end = next_start(starts[-1], period)
    return (
        datetime.combine(starts[0], time(), tz).astimezone(UTC),
        datetime.combine(end, time(), tz).astimezone(UTC),
    )
