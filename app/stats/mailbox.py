"""Pure: mailbox statistics from anonymous rows (a line, the hour a thread's first message
came, the hours it waited for a first answer): threads per week and the median wait."""

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


def by_week(
    rows: Iterable[MailboxRow], first: date, last: date, tz: ZoneInfo
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
            "median_first_answer_hours": median(
                [r.first_answer_hours for r in found if r.first_answer_hours is not None]
            ),
        }
        for week, found in sorted(weeks.items())
    ]


def by_line_and_hour(rows: Iterable[MailboxRow]) -> dict[tuple[str, datetime], list[MailboxRow]]:
    found: dict[tuple[str, datetime], list[MailboxRow]] = {}
    for row in rows:
        found.setdefault((row.line, row.hour), []).append(row)
    return found
