"""Shift occurrences as pure functions of patterns, dates and a time zone (no I/O, no clock).

Times of day are local to the line's time zone and kept as minutes since midnight; every
instant that leaves this module is an aware UTC datetime. A local time that does not exist
(the hour skipped when clocks go forward) is moved forward by the gap; a local time that
happens twice (clocks go back) means its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
HOURS_PER_WEEK = 7 * 24


class TimeZoneError(ValueError):
    """A time zone name that is not in the IANA database."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; TimeZoneError if there is no such zone."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise TimeZoneError(f"unknown time zone {name[:64]!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimeZoneError(f"unknown time zone {name[:64]!r}") from None


@dataclass(frozen=True, slots=True)
class ShiftTimes:
    """A shift's local start and end: minutes since midnight, the end possibly the next day."""

    start_minute: int
    end_minute: int
    ends_next_day: bool = False

    def problem(self) -> str | None:
        """Why these times cannot make a shift, or None."""
        if not 0 <= self.start_minute < MINUTES_PER_DAY:
            return "start must be between 00:00 and 23:59"
        if not 0 <= self.end_minute <= MINUTES_PER_DAY:
            return "end must be between 00:00 and 24:00"
        if self.ends_next_day:
            if self.end_minute == MINUTES_PER_DAY:
                return "an end of 24:00 is already the next day; leave ends_next_day false"
            if self.end_minute > self.start_minute:
                return "a shift lasts at most 24 hours"
            return None
        if self.end_minute == self.start_minute:
            return "a shift cannot end when it starts (zero length)"
        if self.end_minute < self.start_minute:
            return "the end is before the start; set ends_next_day for a shift across midnight"
        return None

    def window(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The UTC instants of this shift when it starts on local date `day`."""
        end_day = day + timedelta(days=1) if self.ends_next_day else day
        return local_instant(day, self.start_minute, tz), local_instant(
            end_day, self.end_minute, tz
        )


def local_instant(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of local wall time `day` + `minute` in `tz` (gaps move forward)."""
    naive = datetime.combine(day, time()) + timedelta(minutes=minute)
    # fold=0: in a gap zoneinfo uses the offset before the change, which lands after the gap;
    # in an overlap it picks the first of the two instants.
    return naive.replace(tzinfo=tz).astimezone(UTC)


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_minute(text: str, *, allow_24: bool = False) -> int:
    """'HH:MM' → minutes since midnight; ValueError with a clear message otherwise."""
    if len(text) != 5 or text[2] != ":" or not (text[:2] + text[3:]).isdigit():
        raise ValueError(f"{text[:16]!r} is not a time of day as HH:MM")
    hours, minutes = int(text[:2]), int(text[3:])
    if allow_24 and hours == 24 and minutes == 0:
        return MINUTES_PER_DAY
    if hours > 23 or minutes > 59:
        raise ValueError(f"{text!r} is not a time of day as HH:MM")
    return hours * 60 + minutes


@dataclass(frozen=True, slots=True)
class PatternSpec:
    """A weekly recurring shift: on these weekdays (0 = Monday), from these times."""

    id: str
    weekdays: frozenset[int]
    times: ShiftTimes
    valid_from: date
    valid_until: date | None
    needed: int

    def runs_on(self, day: date) -> bool:
        return (
            day.weekday() in self.weekdays
            and day >= self.valid_from
            and (self.valid_until is None or day <= self.valid_until)
        )


@dataclass(frozen=True, slots=True)
class ExtraSpec:
    """A one-off shift on one local date."""

    id: str
    day: date
    times: ShiftTimes
    needed: int


@dataclass(frozen=True, slots=True)
class ClosureSpec:
    """Local dates (inclusive) on which a line's recurring shifts do not happen."""

    id: str
    first_day: date
    last_day: date
    reason: str = ""

    def covers(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One concrete shift: a pattern on one date, or an extra shift."""

    key: str
    day: date
    starts_at: datetime
    ends_at: datetime
    needed: int
    pattern_id: str | None = None
    extra_id: str | None = None
    cancelled_by: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancelled_by is not None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.starts_at < end and start < self.ends_at


def pattern_key(pattern_id: str, day: date) -> str:
    return f"p:{pattern_id}:{day.isoformat()}"


def extra_key(extra_id: str) -> str:
    return f"x:{extra_id}"


def days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def pattern_occurrences(
    pattern: PatternSpec,
    tz: ZoneInfo,
    first_day: date,
    last_day: date,
    closures: Sequence[ClosureSpec] = (),
) -> list[Occurrence]:
    """Occurrences of `pattern` starting on local dates first_day..last_day, closures marked."""
    out = []
    for day in days(max(first_day, pattern.valid_from), last_day):
        if not pattern.runs_on(day):
            continue
        starts_at, ends_at = pattern.times.window(day, tz)
        closure = next((c for c in closures if c.covers(day)), None)
        out.append(
            Occurrence(
                key=pattern_key(pattern.id, day),
                day=day,
                starts_at=starts_at,
                ends_at=ends_at,
                needed=pattern.needed,
                pattern_id=pattern.id,
                cancelled_by=closure.id if closure else None,
            )
        )
    return out


def extra_occurrence(extra: ExtraSpec, tz: ZoneInfo) -> Occurrence:
    starts_at, ends_at = extra.times.window(extra.day, tz)
    return Occurrence(
        key=extra_key(extra.id),
        day=extra.day,
        starts_at=starts_at,
        ends_at=ends_at,
        needed=extra.needed,
        extra_id=extra.id,
    )


def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> tuple[date, date]:
    """Local start dates of shifts that may reach into [start, end) (from the day before)."""
    return start.astimezone(tz).date() - timedelta(days=1), end.astimezone(tz).date()


def pattern_occurrences_between(
    pattern: PatternSpec,
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
    closures: Sequence[ClosureSpec] = (),
) -> list[Occurrence]:
    """Occurrences of `pattern` that overlap the UTC span [start, end)."""
    first, last = local_days(start, end, tz)
    return [
        o for o in pattern_occurrences(pattern, tz, first, last, closures) if o.overlaps(start, end)
    ]


def first_overlap(
    left: Sequence[Occurrence], right: Sequence[Occurrence]
) -> tuple[Occurrence, Occurrence] | None:
    """A pair of live occurrences, one from each side, that overlap in time (the earliest found).

    One sweep in start order: an occurrence overlaps the other side exactly when the
    longest-running occurrence seen so far on that side ends after it starts.
    """
    items = sorted(
        [(o.starts_at, 0, o) for o in left if not o.cancelled]
        + [(o.starts_at, 1, o) for o in right if not o.cancelled],
        key=lambda item: (item[0], item[1]),
    )
    longest: list[Occurrence | None] = [None, None]
    for start, side, occurrence in items:
        other = longest[1 - side]
        if other is not None and other.ends_at > start:
            return (occurrence, other) if side == 0 else (other, occurrence)
        mine = longest[side]
        if mine is None or occurrence.ends_at > mine.ends_at:
            longest[side] = occurrence
    return None


Window = tuple[float, float]


def merge(windows: Iterable[Window]) -> list[Window]:
    """Windows (epoch seconds) merged where they overlap or touch, in order."""
    out: list[Window] = []
    for start, end in sorted(w for w in windows if w[1] > w[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def until(windows: Iterable[Window], now: float) -> float:
    """The end of the merged window that holds `now`, or 0.0 if none does."""
    for start, end in merge(windows):
        if start <= now < end:
            return end
    return 0.0


def since(windows: Iterable[Window], now: float) -> float:
    """The start of the merged window that holds `now`, or 0.0 if none does."""
    for start, end in merge(windows):
        if start <= now < end:
            return start
    return 0.0


def next_start(windows: Iterable[Window], now: float) -> float | None:
    """The first start of a window after `now` (when duty will change next), if any."""
    starts = [start for start, _ in windows if start > now]
    return min(starts) if starts else None


def week_start(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def hour_of_week(moment: datetime, tz: ZoneInfo) -> int:
    """0 = Monday 00:00–01:00 local time … 167 = Sunday 23:00–24:00."""
    local = moment.astimezone(tz)
    return local.weekday() * 24 + local.hour
