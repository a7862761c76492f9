"""Statistics for coordinators: demand by hour of week, CSV export, Prometheus metrics."""

from __future__ import annotations

import csv
import hmac
import io
from datetime import date, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import RuntimeDep, SessionDep
from app.kit.clock import utcnow
from app.kit.errors import REFUSALS_IN_JSON, ApiError
from app.kit.fields import CleanText, Day, Text
from app.kit.responses import CsvResponse
from app.models import Line
from app.roster.access import StatisticsReader
from app.roster.occurrences import WEEKDAYS, zone
from app.roster.repository import RosterLookups
from app.staff.permissions import public
from app.stats.demand import (
    Bucket,
    by_hour_of_week,
    by_line_and_hour,
    hours_in_period,
    period_bounds,
)
from app.stats.mailbox import MailboxRow, shown_median
from app.stats.mailbox import by_line_and_hour as mailbox_by_line_and_hour
from app.stats.mailbox import by_week as mailbox_by_week
from app.stats.metrics import exposition
from app.stats.repository import mailbox_rows, risk_counts, statistic_rows, wrapup_counts
from app.stats.schemas import DemandOut, DemandTotals, HourDemand, WrapupPeriod, WrapupStatsOut
from app.stats.wrapups import (
    RISK_LEVELS,
    Period,
    Tally,
    next_start,
    period_starts,
    shown_counts,
    tally,
    terms,
    utc_bounds,
)

router = APIRouter(prefix="/api/stats", tags=["statistics"])
metrics_router = APIRouter()

# The longest period one request may cover.
MAX_PERIOD_DAYS = 400
# Without ?from=, a period covers this many weeks up to today.
DEFAULT_WEEKS = 8

FromDay = Annotated[Day | None, Query(alias="from")]
By = Annotated[Period, Query(alias="by")]
ToDay = Annotated[Day | None, Query(alias="to")]


def _period(first: date | None, last: date | None, today: date) -> tuple[date, date]:
    last = last or today
    first = first or last - timedelta(days=DEFAULT_WEEKS * 7 - 1)
    if last < first:
        raise ApiError("invalid_range", "'to' is before 'from'")
    if (last - first).days >= MAX_PERIOD_DAYS:
        raise ApiError("invalid_range", f"ask for at most {MAX_PERIOD_DAYS} days at a time")
    return first, last


async def _line_period(
    session: AsyncSession, key: str, first: date | None, last: date | None
) -> tuple[Line, ZoneInfo, date, date]:
    """The line, its time zone and the period asked for (by default, up to its today)."""
    line = await RosterLookups(session).line(key)
    if line is None:
        raise ApiError("unknown_line", "there is no such line", 404)
    tz = zone(line.time_zone)
    first, last = _period(first, last, utcnow().astimezone(tz).date())
    return line, tz, first, last


@router.get("/lines/{key}/demand", response_model=DemandOut)
async def demand(
    key: Text,
    _: StatisticsReader,
    session: SessionDep,
    first: FromDay = None,
    last: ToDay = None,
) -> DemandOut:
    """Chats requested, answered, abandoned and waits by local hour of the week over a period."""
    line, tz, first, last = await _line_period(session, key, first, last)
    start, end = period_bounds(first, last, tz)
    rows = await statistic_rows(session, [key], start, end)
    buckets = by_hour_of_week(rows, tz)
    weeks = hours_in_period(start, end, tz)
    total = Bucket()
    for row in rows:
        total.add(row)
    return DemandOut(
        line=key,
        time_zone=line.time_zone,
        first_day=first,
        last_day=last,
        hours=[
            HourDemand(
                hour_of_week=index,
                weekday=WEEKDAYS[index // 24],
                hour=index % 24,
                weeks=weeks[index],
                requested=bucket.requested,
                answered=bucket.answered,
                abandoned=bucket.abandoned,
                turned_away=bucket.closed + bucket.full,
                requested_per_week=round(bucket.requested / weeks[index], 3)
                if weeks[index]
                else 0.0,
                median_wait_seconds=bucket.median_wait,
                p90_wait_seconds=bucket.p90_wait,
            )
            for index, bucket in enumerate(buckets)
        ],
        totals=DemandTotals(
            requested=total.requested,
            answered=total.answered,
            abandoned=total.abandoned,
            turned_away=total.closed + total.full,
            median_wait_seconds=total.median_wait,
            p90_wait_seconds=total.p90_wait,
        ),
    )


def _period_out(
    found: Tally, period: Period, topics: list[str], outcomes: list[str], small: int
) -> WrapupPeriod:
    counts = shown_counts(found.counts, topics, outcomes, small)
    return WrapupPeriod(
        start=found.start,
        end=next_start(found.start, period),
        wrapups=counts.wrapups,
        topics=counts.topics,
        outcomes=counts.outcomes,
        chats=counts.chats,
        risk=counts.risk,
        in_danger=counts.in_danger,
    )


async def _line_tallies(
    session: AsyncSession, line: Line, first: date, last: date, by: Period
) -> tuple[list[date], list[Tally], list[str], list[str]]:
    """The line's wrap-ups and risk per week or month (in its time zone) covering the period:
    the periods' first days, their tallies, and the topics and outcomes to show."""
    tz = zone(line.time_zone)
    starts = period_starts(first, last, by)
    start, end = utc_bounds(starts, by, tz)
    tallies = tally(
        await wrapup_counts(session, [line.key], start, end, by_hour=True),
        await risk_counts(session, [line.key], start, end, by_hour=True),
        tz,
        by,
        first,
        last,
    )
    topics = terms(line.wrapup_topics, (t.counts.topics for t in tallies))
    outcomes = terms(line.wrapup_outcomes, (t.counts.outcomes for t in tallies))
    return starts, tallies, topics, outcomes


@router.get("/lines/{key}/wrapups", response_model=WrapupStatsOut)
async def wrapup_statistics(
    key: Text,
    _: StatisticsReader,
    session: SessionDep,
    runtime: RuntimeDep,
    first: FromDay = None,
    last: ToDay = None,
    by: By = Period.week,
) -> WrapupStatsOut:
    """Wrap-up topics and outcomes, risk levels and "in danger" by week or month (whole
    weeks or months covering the period); counts kept back are null."""
    line, _tz, first, last = await _line_period(session, key, first, last)
    starts, tallies, topics, outcomes = await _line_tallies(session, line, first, last, by)
    small = runtime.settings.stats_small_count
    return WrapupStatsOut(
        line=key,
        time_zone=line.time_zone,
        period=by.value,
        first_day=starts[0],
        last_day=next_start(starts[-1], by) - timedelta(days=1),
        small_count=small,
        topics=topics,
        outcomes=outcomes,
        risk_levels=list(RISK_LEVELS),
        periods=[_period_out(t, by, topics, outcomes, small) for t in tallies],
    )


WRAPUP_CSV_COLUMNS = ("line", "period", "start", "end", "measure", "name", "count")
# A count kept back, in the CSV exports: the same for every count kept back, so that one kept
# back for being small cannot be told from one kept back beside it.
SUPPRESSED = "suppressed"


@router.get("/wrapups.csv", response_class=CsvResponse, responses=REFUSALS_IN_JSON)
async def export_wrapups_csv(
    _: StatisticsReader,
    session: SessionDep,
    runtime: RuntimeDep,
    first: FromDay = None,
    last: ToDay = None,
    by: By = Period.week,
    line: Annotated[str | None, Query(max_length=32), CleanText()] = None,
) -> CsvResponse:
    """Wrap-ups, risk and "in danger" per line and week or month, one count per row; a count
    kept back reads "suppressed"."""
    lookups = RosterLookups(session)
    if line is not None and await lookups.line(line) is None:
        raise ApiError("unknown_line", "there is no such line", 404)
    first, last = _period(first, last, utcnow().date())
    small = runtime.settings.stats_small_count
    keys = [line] if line is not None else sorted(runtime.lines.keys())
    known = await lookups.lines(keys)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(WRAPUP_CSV_COLUMNS)
    for key in keys:
        config = known.get(key)
        # A practice line's chats leave no rows; it has no place among the real lines.
        if config is None or (config.practice and line is None):
            continue
        _starts, tallies, topics, outcomes = await _line_tallies(session, config, first, last, by)
        for found in tallies:
            counts = shown_counts(found.counts, topics, outcomes, small)
            cells = [
                ("wrapups", "", counts.wrapups),
                *(("topic", name, value) for name, value in counts.topics.items()),
                *(("outcome", name, value) for name, value in counts.outcomes.items()),
                ("chats", "", counts.chats),
                *(("risk", name, value) for name, value in counts.risk.items()),
                ("in_danger", "", counts.in_danger),
            ]
            for measure, name, value in cells:
                writer.writerow(
                    [
                        key,
                        by.value,
                        found.start.isoformat(),
                        next_start(found.start, by).isoformat(),
                        measure,
                        name,
                        SUPPRESSED if value is None else value,
                    ]
                )
    name = f"lykta-wrapups-{by.value}-{first.isoformat()}-{last.isoformat()}.csv"
    return CsvResponse(
        out.getvalue(),
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.get("/lines/{key}/mailbox")
async def mailbox_statistics(
    key: Text,
    _: StatisticsReader,
    session: SessionDep,
    runtime: RuntimeDep,
    first: FromDay = None,
    last: ToDay = None,
) -> dict[str, Any]:
    """Mailbox threads per week (by their first message, in the line's time zone) and the
    median hours to a first answer, null where fewer than `small_count` threads were answered.
    A thread counts once answered, or once deleted unanswered."""
    _line, tz, first, last = await _line_period(session, key, first, last)
    start, end = period_bounds(first, last, tz)
    rows = await mailbox_rows(session, [key], start, end)
    small = runtime.settings.stats_small_count
    return {
        "line": key,
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "small_count": small,
        "weeks": mailbox_by_week(rows, first, last, tz, small),
    }


CSV_COLUMNS = (
    "line",
    "hour_utc",
    "local_date",
    "local_hour",
    "weekday",
    "requested",
    "answered",
    "abandoned",
    "closed",
    "full",
    "median_wait_seconds",
    "p90_wait_seconds",
    "mean_duration_seconds",
    "mailbox_threads",
    "mailbox_median_first_answer_hours",
)


@router.get("/export.csv", response_class=CsvResponse, responses=REFUSALS_IN_JSON)
async def export_csv(
    _: StatisticsReader,
    session: SessionDep,
    runtime: RuntimeDep,
    first: FromDay = None,
    last: ToDay = None,
    line: Annotated[str | None, Query(max_length=32), CleanText()] = None,
) -> CsvResponse:
    """Hourly aggregates per line (never one row per chat), for spreadsheets."""
    lookups = RosterLookups(session)
    if line is not None and await lookups.line(line) is None:
        raise ApiError("unknown_line", "there is no such line", 404)
    today = utcnow().date()
    first, last = _period(first, last, today)
    # Dates are taken in UTC here: an export may hold lines of several time zones.
    start, end = period_bounds(first, last, zone("UTC"))
    rows = await statistic_rows(session, [line] if line else None, start, end)
    threads = mailbox_by_line_and_hour(
        await mailbox_rows(session, [line] if line else None, start, end)
    )
    lines = await lookups.lines({row.line for row in rows} | {key for key, _ in threads})
    small = runtime.settings.stats_small_count
    chats = by_line_and_hour(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for key, hour in sorted(set(chats) | set(threads)):
        bucket = chats.get((key, hour), Bucket())
        mail = threads.get((key, hour), [])
        known = lines.get(key)
        local = hour.astimezone(zone(known.time_zone) if known else zone("UTC"))
        writer.writerow(
            [
                key,
                hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
                local.date().isoformat(),
                local.hour,
                WEEKDAYS[local.weekday()],
                bucket.requested,
                bucket.answered,
                bucket.abandoned,
                bucket.closed,
                bucket.full,
                _number(bucket.median_wait),
                _number(bucket.p90_wait),
                _number(bucket.mean_duration),
                len(mail),
                _mailbox_median(mail, small),
            ]
        )
    name = f"lykta-statistics-{first.isoformat()}-{last.isoformat()}.csv"
    return CsvResponse(
        out.getvalue(),
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


def _mailbox_median(mail: list[MailboxRow], small: int) -> str:
    """Blank when no thread of the hour was answered, "suppressed" when fewer than `small`
    were (the median of one thread is its own answer time)."""
    answered = sum(1 for m in mail if m.first_answer_hours is not None)
    if 0 < answered < small:
        return SUPPRESSED
    return _number(shown_median(mail, small))


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if value == int(value) else f"{value:.1f}"


@metrics_router.get("/metrics", include_in_schema=False, dependencies=[public()])
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus text format; needs `Authorization: Bearer <LYKTA_METRICS_TOKEN>`."""
    token = runtime.settings.metrics_token
    if token is None:
        return JSONResponse({"detail": "metrics are off; set LYKTA_METRICS_TOKEN"}, 404)
    given = request.headers.get("authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return JSONResponse(
            {"detail": "a valid bearer token is required"},
            401,
            headers={"www-authenticate": 'Bearer realm="metrics"'},
        )
    body = await exposition(
        broker=runtime.broker,
        lines=runtime.lines,
        router=runtime.router,
        sessionmaker=runtime.sessionmaker,
        counters=runtime.counters,
        small_count=runtime.settings.stats_small_count,
    )
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
