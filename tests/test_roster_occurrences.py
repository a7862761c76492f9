"""Shift occurrences as pure functions: explicit dates, Europe/Stockholm, DST and midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from app.models.enums import ChatOutcome
from app.roster.occurrences import (
    ClosureSpec,
    ExtraSpec,
    PatternSpec,
    ShiftTimes,
    TimeZoneError,
    extra_occurrence,
    first_overlap,
    hour_of_week,
    merge,
    next_start,
    parse_minute,
    pattern_occurrences,
    pattern_occurrences_between,
    until,
    week_start,
    zone,
)
from app.stats.demand import (
    Bucket,
    StatRow,
    by_hour_of_week,
    hours_in_period,
    percentile,
    period_bounds,
)

STOCKHOLM = zone("Europe/Stockholm")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def pattern(
    weekdays: tuple[int, ...],
    start: str,
    end: str,
    *,
    next_day: bool = False,
    valid_from: date = date(2026, 1, 1),
    valid_until: date | None = None,
    needed: int = 2,
    pattern_id: str = "p1",
) -> PatternSpec:
    return PatternSpec(
        id=pattern_id,
        weekdays=frozenset(weekdays),
        times=ShiftTimes(parse_minute(start), parse_minute(end, allow_24=True), next_day),
        valid_from=valid_from,
        valid_until=valid_until,
        needed=needed,
    )


EVERY_DAY = (0, 1, 2, 3, 4, 5, 6)


# Daylight-saving changes in Europe/Stockholm: 2026-03-29 and 2027-03-28 clocks go forward
# at 02:00 (CET +1 → CEST +2); 2026-10-25 and 2027-10-31 they go back at 03:00.


@pytest.mark.parametrize(
    ("day", "start_utc", "end_utc"),
    [
        # The evening before, on the day, and after: 18:00–21:00 local is always 3 hours.
        (date(2026, 3, 28), utc(2026, 3, 28, 17), utc(2026, 3, 28, 20)),
        (date(2026, 3, 29), utc(2026, 3, 29, 16), utc(2026, 3, 29, 19)),
        (date(2026, 10, 24), utc(2026, 10, 24, 16), utc(2026, 10, 24, 19)),
        (date(2026, 10, 25), utc(2026, 10, 25, 17), utc(2026, 10, 25, 20)),
        (date(2027, 3, 27), utc(2027, 3, 27, 17), utc(2027, 3, 27, 20)),
        (date(2027, 3, 28), utc(2027, 3, 28, 16), utc(2027, 3, 28, 19)),
        (date(2027, 10, 30), utc(2027, 10, 30, 16), utc(2027, 10, 30, 19)),
        (date(2027, 10, 31), utc(2027, 10, 31, 17), utc(2027, 10, 31, 20)),
    ],
)
def test_an_evening_shift_keeps_its_local_hours_across_dst(
    day: date, start_utc: datetime, end_utc: datetime
) -> None:
    spec = pattern(EVERY_DAY, "18:00", "21:00")
    (occurrence,) = pattern_occurrences(spec, STOCKHOLM, day, day)
    assert (occurrence.starts_at, occurrence.ends_at) == (start_utc, end_utc)
    assert occurrence.starts_at.astimezone(STOCKHOLM).hour == 18
    assert occurrence.ends_at.astimezone(STOCKHOLM).hour == 21


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (date(2026, 3, 27), 8),
        (date(2026, 3, 28), 7),  # the night the clocks go forward is an hour shorter
        (date(2026, 3, 29), 8),
        (date(2026, 10, 24), 9),  # the night they go back is an hour longer
        (date(2026, 10, 25), 8),
        (date(2027, 3, 27), 7),
        (date(2027, 10, 30), 9),
    ],
)
def test_a_night_shift_across_midnight_is_as_long_as_the_night(day: date, hours: int) -> None:
    spec = pattern(EVERY_DAY, "22:00", "06:00", next_day=True)
    (occurrence,) = pattern_occurrences(spec, STOCKHOLM, day, day)
    assert occurrence.day == day
    assert occurrence.starts_at.astimezone(STOCKHOLM).replace(tzinfo=None) == datetime(
        day.year, day.month, day.day, 22
    )
    following = day + timedelta(days=1)
    assert occurrence.ends_at.astimezone(STOCKHOLM).replace(tzinfo=None) == datetime(
        following.year, following.month, following.day, 6
    )
    assert occurrence.ends_at - occurrence.starts_at == timedelta(hours=hours)


def test_a_start_in_the_skipped_hour_moves_forward_and_an_ambiguous_one_takes_the_first() -> None:
    spec = pattern(EVERY_DAY, "02:30", "04:00")
    (spring,) = pattern_occurrences(spec, STOCKHOLM, date(2026, 3, 29), date(2026, 3, 29))
    # 02:30 does not exist that morning: the shift starts at 03:30 CEST (01:30 UTC).
    assert spring.starts_at == utc(2026, 3, 29, 1, 30)
    assert spring.starts_at.astimezone(STOCKHOLM).strftime("%H:%M") == "03:30"
    assert spring.ends_at - spring.starts_at == timedelta(minutes=30)
    (autumn,) = pattern_occurrences(spec, STOCKHOLM, date(2026, 10, 25), date(2026, 10, 25))
    # 02:30 happens twice: the first time (still CEST, 00:30 UTC), until 04:00 CET.
    assert autumn.starts_at == utc(2026, 10, 25, 0, 30)
    assert autumn.ends_at == utc(2026, 10, 25, 3)
    (autumn_2027,) = pattern_occurrences(spec, STOCKHOLM, date(2027, 10, 31), date(2027, 10, 31))
    assert autumn_2027.ends_at - autumn_2027.starts_at == timedelta(hours=2, minutes=30)


def test_a_whole_day_until_24_00_is_23_or_25_hours_on_change_days() -> None:
    spec = pattern(EVERY_DAY, "00:00", "24:00")
    lengths = {
        o.day: o.ends_at - o.starts_at
        for o in pattern_occurrences(spec, STOCKHOLM, date(2027, 3, 27), date(2027, 3, 28))
        + pattern_occurrences(spec, STOCKHOLM, date(2027, 10, 31), date(2027, 10, 31))
    }
    assert lengths == {
        date(2027, 3, 27): timedelta(hours=24),
        date(2027, 3, 28): timedelta(hours=23),
        date(2027, 10, 31): timedelta(hours=25),
    }


def test_weekdays_validity_and_keys() -> None:
    spec = pattern(
        (0, 3), "18:00", "21:00", valid_from=date(2026, 3, 3), valid_until=date(2026, 3, 19)
    )
    found = pattern_occurrences(spec, STOCKHOLM, date(2026, 2, 23), date(2026, 3, 31))
    # Mondays and Thursdays from Tuesday 3 March to Thursday 19 March.
    assert [o.day for o in found] == [
        date(2026, 3, 5),
        date(2026, 3, 9),
        date(2026, 3, 12),
        date(2026, 3, 16),
        date(2026, 3, 19),
    ]
    assert found[0].key == "p:p1:2026-03-05"
    assert all(o.needed == 2 and o.pattern_id == "p1" for o in found)


def test_closures_cancel_the_occurrences_on_their_days_only() -> None:
    spec = pattern(EVERY_DAY, "22:00", "06:00", next_day=True)
    christmas = ClosureSpec("c1", date(2026, 12, 24), date(2026, 12, 26), "Christmas")
    found = pattern_occurrences(
        spec, STOCKHOLM, date(2026, 12, 23), date(2026, 12, 27), [christmas]
    )
    assert [(o.day.day, o.cancelled_by) for o in found] == [
        (23, None),
        (24, "c1"),
        (25, "c1"),
        (26, "c1"),
        (27, None),
    ]
    # The shift of the 23rd runs into the 24th; it started before the closure, so it stays.
    assert found[0].ends_at.astimezone(STOCKHOLM).date() == date(2026, 12, 24)


def test_occurrences_between_find_last_nights_shift_still_running() -> None:
    spec = pattern((4,), "22:00", "06:00", next_day=True)  # Friday nights
    # Saturday 4 April 2026 at 03:00 local time: Friday's shift is on.
    now = datetime(2026, 4, 4, 3, tzinfo=STOCKHOLM)
    found = pattern_occurrences_between(spec, STOCKHOLM, now, now + timedelta(minutes=1))
    assert [o.day for o in found] == [date(2026, 4, 3)]
    later = datetime(2026, 4, 4, 6, tzinfo=STOCKHOLM)  # the end is exclusive
    assert pattern_occurrences_between(spec, STOCKHOLM, later, later + timedelta(hours=1)) == []


def test_an_extra_shift_is_one_occurrence_in_local_time() -> None:
    extra = ExtraSpec("x1", date(2026, 10, 24), ShiftTimes(23 * 60, 3 * 60, True), 1)
    occurrence = extra_occurrence(extra, STOCKHOLM)
    assert occurrence.key == "x:x1"
    assert occurrence.starts_at == utc(2026, 10, 24, 21)
    assert occurrence.ends_at == utc(2026, 10, 25, 2)  # 03:00 CET, an hour longer
    assert not occurrence.cancelled


@pytest.mark.parametrize(
    ("times", "problem"),
    [
        (ShiftTimes(18 * 60, 21 * 60), None),
        (ShiftTimes(22 * 60, 6 * 60, True), None),
        (ShiftTimes(18 * 60, 24 * 60), None),
        (ShiftTimes(18 * 60, 18 * 60, True), None),  # exactly 24 hours
        (ShiftTimes(18 * 60, 18 * 60), "zero length"),
        (ShiftTimes(21 * 60, 18 * 60), "the end is before the start"),
        (ShiftTimes(18 * 60, 19 * 60, True), "at most 24 hours"),
        (ShiftTimes(18 * 60, 24 * 60, True), "already the next day"),
        (ShiftTimes(24 * 60, 24 * 60 + 1), "start must be"),
    ],
)
def test_shift_times_that_make_no_shift_are_named(times: ShiftTimes, problem: str | None) -> None:
    found = times.problem()
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_parse_minute_and_zones() -> None:
    assert parse_minute("00:00") == 0
    assert parse_minute("23:59") == 23 * 60 + 59
    assert parse_minute("24:00", allow_24=True) == 1440
    for bad in ("24:00", "7:00", "18.00", "25:00", "12:60", "ab:cd", ""):
        with pytest.raises(ValueError, match="HH:MM"):
            parse_minute(bad)
    assert zone("America/New_York").key == "America/New_York"
    for bad in ("Mars/Olympus_Mons", "", "../etc/passwd", "/etc/localtime", "x" * 100):
        with pytest.raises(TimeZoneError, match="unknown time zone"):
            zone(bad)


def test_overlap_detection_between_two_sets_of_occurrences() -> None:
    evening = pattern((0,), "18:00", "21:00", pattern_id="a")
    late = pattern((0,), "20:00", "23:00", pattern_id="b")
    after = pattern((0,), "21:00", "23:00", pattern_id="c")
    night_sunday = pattern((6,), "22:00", "19:00", next_day=True, pattern_id="d")
    week = (date(2026, 3, 23), date(2026, 3, 29))
    a = pattern_occurrences(evening, STOCKHOLM, *week)
    clash = first_overlap(a, pattern_occurrences(late, STOCKHOLM, *week))
    assert (
        clash is not None and clash[0].key == "p:a:2026-03-23" and clash[1].key == "p:b:2026-03-23"
    )
    # Back to back is not an overlap.
    assert first_overlap(a, pattern_occurrences(after, STOCKHOLM, *week)) is None
    # A shift from Sunday night into Monday evening reaches Monday's 18:00 shift.
    sunday = pattern_occurrences(night_sunday, STOCKHOLM, date(2026, 3, 22), date(2026, 3, 22))
    assert first_overlap(a, sunday) is not None
    # Cancelled occurrences never clash.
    closure = ClosureSpec("c", date(2026, 3, 23), date(2026, 3, 23))
    closed = pattern_occurrences(late, STOCKHOLM, *week, [closure])
    assert first_overlap(a, closed) is None


def test_duty_windows_merge_and_end_where_duty_really_stops() -> None:
    windows = [(100.0, 200.0), (200.0, 300.0), (400.0, 500.0), (150.0, 160.0)]
    assert merge(windows) == [(100.0, 300.0), (400.0, 500.0)]
    assert until(windows, 99.0) == 0.0
    assert until(windows, 100.0) == 300.0  # back-to-back shifts are one stretch of duty
    assert until(windows, 299.9) == 300.0
    assert until(windows, 300.0) == 0.0  # the end is exclusive
    assert until(windows, 450.0) == 500.0
    assert next_start(windows, 250.0) == 400.0
    assert next_start(windows, 450.0) is None


def test_hours_of_the_week_in_local_time() -> None:
    assert week_start(date(2026, 3, 29)) == date(2026, 3, 23)
    assert week_start(date(2026, 3, 23)) == date(2026, 3, 23)
    # Monday 00:30 local in winter is Sunday 23:30 UTC.
    assert hour_of_week(utc(2026, 3, 22, 23, 30), STOCKHOLM) == 0
    assert hour_of_week(utc(2026, 3, 29, 21, 59), STOCKHOLM) == 167
    # The week of the spring change has no 02:00 on Sunday; the autumn week has it twice.
    spring = hours_in_period(
        *period_bounds(date(2026, 3, 23), date(2026, 3, 29), STOCKHOLM), STOCKHOLM
    )
    assert sum(spring) == 167 and spring[6 * 24 + 2] == 0
    autumn = hours_in_period(
        *period_bounds(date(2026, 10, 19), date(2026, 10, 25), STOCKHOLM), STOCKHOLM
    )
    assert sum(autumn) == 169 and autumn[6 * 24 + 2] == 2


def test_demand_buckets_count_outcomes_and_wait_percentiles() -> None:
    monday_evening = utc(2026, 3, 23, 17)  # 18:00 local
    rows = [
        StatRow("support", monday_evening, ChatOutcome.answered, wait, 600)
        for wait in (10, 20, 30, 40, 50, 60, 70, 80, 90, 300)
    ]
    rows += [
        StatRow("support", monday_evening, ChatOutcome.abandoned, 500, None),
        StatRow("support", monday_evening, ChatOutcome.closed, None, None),
        StatRow("support", utc(2026, 3, 29, 20), ChatOutcome.full, None, None),
    ]
    buckets = by_hour_of_week(rows, STOCKHOLM)
    evening = buckets[18]
    assert (evening.requested, evening.answered, evening.abandoned, evening.closed) == (
        12,
        10,
        1,
        1,
    )
    assert evening.median_wait == 55.0
    assert evening.p90_wait == 90.0  # nearest rank: the 9th of 10 waits
    assert evening.mean_duration == 600.0
    assert buckets[6 * 24 + 22].full == 1
    assert sum(b.requested for b in buckets) == len(rows)
    assert Bucket().median_wait is None and percentile([], 90) is None
    assert percentile([5], 90) == 5.0 and percentile([1, 2, 3, 4], 50) == 2.0
