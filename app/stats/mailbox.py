"""Pure: mailbox statistics from anonymous rows (a line, the hour a thread's first message
came, the hours it waited for a first answer): threads per week and the median wait, kept
back where too few threads were answered to show it."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class MailboxRow:
    line: str
    hour: datetime
    # None: the thread was deleted (or expired) before anyone answered.
    first_answer_hours: int | None


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def median(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def shown_median(rows: Iterable[MailboxRow], small: int) -> float | None:
    """The median hours to a first answer of the answered threads among `rows`; None when
    none was answered, or fewer than `small` were: the median of one or two threads is
    their own answer time."""
    hours = [row.first_answer_hours for row in rows if row.first_answer_hours is not None]
    return median(hours) if len(hours) >= small else None


def by_week(
    rows: Iterable[MailboxRow], first: date, last: date, tz: ZoneInfo, small: int
) -> list[dict[str, object]]:
    """Every ISO week (local) that overlaps first..last, oldest first, empty ones too."""
    weeks: dict[str, list[MailboxRow]] = {}
    day = first - timedelta(days=first.weekday())
    while day <= last:
        weeks[iso_week(day)] = []
        day += timedelta(days=7)
    for row in rows:
        weeks.setdefault(iso_week(row.hour.astimezone(tz).date()), []).append(row)
    return [
        {
            "week": week,
            "threads": len(found),
            "median_first_answer_hours": shown_median(found, small),
        }
        for week, found in sorted(weeks.items())
    ]


def by_line_and_hour(rows: Iterable[MailboxRow]) -> dict[tuple[str, datetime], list[MailboxRow]]:
    found: dict[tuple[str, datetime], list[MailboxRow]] = {}
    for row in rows:
        found.setdefault((row.line, row.hour), []).append(row)
    return found
