"""Demand from the anonymous hourly statistics, as pure functions of the rows.

A row is one chat: the UTC hour it started in, its outcome, and how long the visitor waited.
Waits are summarised over answered chats (how long until someone answered); abandoned
chats are counted, their waits are not part of the percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from statistics import median
from zoneinfo import ZoneInfo

from app.models.enums import ChatOutcome
from app.roster.occurrences import HOURS_PER_WEEK, hour_of_week


@dataclass(frozen=True, slots=True)
class StatRow:
    line: str
    hour: datetime
    outcome: ChatOutcome
    waited_seconds: int | None
    duration_seconds: int | None


@dataclass(slots=True)
class Bucket:
    """Chats of one slice of time: counts by outcome and the waits of answered chats."""

    requested: int = 0
    answered: int = 0
    abandoned: int = 0
    closed: int = 0
    full: int = 0
    waits: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)

    def add(self, row: StatRow) -> None:
        self.requested += 1
        if row.outcome is ChatOutcome.answered:
            self.answered += 1
            if row.waited_seconds is not None:
                self.waits.append(row.waited_seconds)
            if row.duration_seconds is not None:
                self.durations.append(row.duration_seconds)
        elif row.outcome is ChatOutcome.abandoned:
            self.abandoned += 1
        elif row.outcome is ChatOutcome.closed:
            self.closed += 1
        else:
            self.full += 1

    @property
    def median_wait(self) -> float | None:
        return float(median(self.waits)) if self.waits else None

    @property
    def p90_wait(self) -> float | None:
        return percentile(self.waits, 90)

    @property
    def mean_duration(self) -> float | None:
        return sum(self.durations) / len(self.durations) if self.durations else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile by the nearest-rank method (always one of the values), or None."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def period_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC [start, end) of local dates first..last inclusive."""
    start = datetime.combine(first, time(), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tz).astimezone(UTC)
    return start, end


def hours_in_period(start: datetime, end: datetime, tz: ZoneInfo) -> list[int]:
    """How many times each local hour of the week occurs in [start, end)."""
    counts = [0] * HOURS_PER_WEEK
    moment = start
    while moment < end:
        counts[hour_of_week(moment, tz)] += 1
        moment += timedelta(hours=1)
    return counts


def by_hour_of_week(rows: Iterable[StatRow], tz: ZoneInfo) -> list[Bucket]:
    """168 buckets, 0 = Monday 00:00–01:00 local time."""
    buckets = [Bucket() for _ in range(HOURS_PER_WEEK)]
    for row in rows:
        buckets[hour_of_week(row.hour, tz)].add(row)
    return buckets


def by_line_and_hour(rows: Iterable[StatRow]) -> dict[tuple[str, datetime], Bucket]:
    """One bucket per line and UTC hour that had chats, in order."""
    buckets: dict[tuple[str, datetime], Bucket] = {}
    for row in sorted(rows, key=lambda r: (r.line, r.hour)):
        buckets.setdefault((row.line, row.hour), Bucket()).add(row)
    return buckets
