"""Roster data shaped for the API and the console: week coverage, own shifts, open places."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    DropRequest,
    DropState,
    DutyAddition,
    ExtraShift,
    Line,
    RosterClosure,
    ShiftAssignment,
    ShiftPattern,
    Staff,
)
from app.roster.occurrences import (
    HOURS_PER_WEEK,
    WEEKDAYS,
    Occurrence,
    extra_occurrence,
    format_minute,
    hour_of_week,
    week_start,
)
from app.roster.repository import (
    DropRequestRepository,
    ExtraShiftRepository,
    PatternRepository,
    RosterLookups,
)
from app.roster.schemas import (
    AssignedStaff,
    AssignmentOut,
    ClosureOut,
    DropOut,
    DutyOut,
    ExtraShiftOut,
    HourCoverage,
    MyShiftOut,
    OccurrenceOut,
    OccurrenceStatus,
    OpenShiftOut,
    PatternOut,
    RosterLineOut,
    WeekOut,
    WeekTotals,
)
from app.roster.service import Assigned, extra_spec, line_zone, roster_service


def local_hhmm(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%H:%M")


def line_out(line: Line) -> RosterLineOut:
    return RosterLineOut(
        key=line.key,
        name=line.name,
        time_zone=line.time_zone,
        signup=line.roster_signup,
        required_qualification=line.required_qualification.value,
        active=line.is_active,
        practice=line.practice,
    )


def pattern_out(pattern: ShiftPattern) -> PatternOut:
    return PatternOut(
        id=pattern.id,
        line=pattern.line_key,
        name=pattern.name,
        weekdays=[WEEKDAYS[d] for d in pattern.weekdays],
        start=format_minute(pattern.start_minute),
        end=format_minute(pattern.end_minute),
        ends_next_day=pattern.ends_next_day,
        needed=pattern.needed,
        valid_from=pattern.valid_from,
        valid_until=pattern.valid_until,
    )


def extra_out(extra: ExtraShift, tz: ZoneInfo) -> ExtraShiftOut:
    occurrence = extra_occurrence(extra_spec(extra), tz)
    return ExtraShiftOut(
        id=extra.id,
        line=extra.line_key,
        name=extra.name,
        date=extra.day,
        start=format_minute(extra.start_minute),
        end=format_minute(extra.end_minute),
        ends_next_day=extra.ends_next_day,
        needed=extra.needed,
        starts_at=occurrence.starts_at,
        ends_at=occurrence.ends_at,
    )


def closure_out(closure: RosterClosure) -> ClosureOut:
    return ClosureOut(
        id=closure.id,
        line=closure.line_key,
        first_day=closure.first_day,
        last_day=closure.last_day,
        reason=closure.reason,
    )


def assignment_out(assignment: ShiftAssignment) -> AssignmentOut:
    return AssignmentOut(
        id=assignment.id,
        staff_id=assignment.staff_id,
        line=assignment.line_key,
        pattern_id=assignment.pattern_id,
        extra_shift_id=assignment.extra_shift_id,
        date=assignment.occurrence_date,
        starts_on=assignment.starts_on,
        ends_on=assignment.ends_on,
        source=assignment.source.value,
    )


def drop_out(drop: DropRequest, assignment: ShiftAssignment) -> DropOut:
    return DropOut(
        id=drop.id,
        assignment_id=assignment.id,
        staff_id=assignment.staff_id,
        line=assignment.line_key,
        date=drop.occurrence_date or assignment.occurrence_date,
        state=drop.state.value,
        note=drop.note,
        created_at=drop.created_at,
        decided_at=drop.decided_at,
    )


def duty_out(addition: DutyAddition) -> DutyOut:
    return DutyOut(
        id=addition.id,
        staff_id=addition.staff_id,
        line=addition.line_key,
        starts_at=addition.starts_at,
        ends_at=addition.ends_at,
    )


def _pending(drops: Sequence[DropRequest]) -> set[tuple[uuid.UUID, date | None]]:
    return {(d.assignment_id, d.occurrence_date) for d in drops}


def _drop_pending(pending: set[tuple[uuid.UUID, date | None]], item: Assigned) -> bool:
    return (item.assignment.id, item.occurrence.day) in pending or (
        item.assignment.id,
        None,
    ) in pending


def _status(occurrence: Occurrence, assigned: int) -> OccurrenceStatus:
    if occurrence.cancelled:
        return "cancelled"
    if assigned < occurrence.needed:
        return "gap"
    return "over" if assigned > occurrence.needed else "covered"


async def week(session: AsyncSession, line: Line, day: date) -> WeekOut:
    """Needed against assigned for every occurrence of the line's week holding `day`."""
    tz = line_zone(line)
    first = week_start(day)
    last = first + timedelta(days=6)
    start = datetime.combine(first, time(), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tz).astimezone(UTC)
    occurrences = await roster_service.line_occurrences(session, line, first, last)
    span_start = min([start, *(o.starts_at for o in occurrences)])
    span_end = max([end, *(o.ends_at for o in occurrences)])
    staffing = await roster_service.staffing(session, line, span_start, span_end)
    lookups = RosterLookups(session)
    people = await lookups.staff_many(
        {a.assignment.staff_id for items in staffing.values() for a in items}
    )
    pending = _pending(
        await DropRequestRepository(session).for_assignments(
            {a.assignment.id for items in staffing.values() for a in items},
            [DropState.requested],
        )
    )
    names = {p.id: p.name for p in await PatternRepository(session).for_line(line.key)}
    extras: dict[uuid.UUID | None, str] = {
        e.id: e.name for e in await ExtraShiftRepository(session).for_line(line.key, first, last)
    }
    out: list[OccurrenceOut] = []
    for occurrence in occurrences:
        staff_rows = [
            _assigned_staff(item, person, pending)
            for item in staffing.get(occurrence.key, [])
            if (person := people.get(item.assignment.staff_id)) is not None
        ]
        counted = 0 if occurrence.cancelled else sum(1 for row in staff_rows if row.active)
        pattern_id = uuid.UUID(occurrence.pattern_id) if occurrence.pattern_id else None
        extra_id = uuid.UUID(occurrence.extra_id) if occurrence.extra_id else None
        out.append(
            OccurrenceOut(
                key=occurrence.key,
                kind="pattern" if pattern_id else "extra",
                pattern_id=pattern_id,
                extra_shift_id=extra_id,
                name=names.get(pattern_id, "") if pattern_id else extras.get(extra_id, ""),
                date=occurrence.day,
                start=local_hhmm(occurrence.starts_at, tz),
                end=local_hhmm(occurrence.ends_at, tz),
                starts_at=occurrence.starts_at,
                ends_at=occurrence.ends_at,
                needed=occurrence.needed,
                assigned=counted,
                missing=0 if occurrence.cancelled else max(0, occurrence.needed - counted),
                status=_status(occurrence, counted),
                cancelled_by=occurrence.cancelled_by,
                staff=staff_rows,
            )
        )
    closures = [
        closure_out(c)
        for c in await roster_service.closures(session, line.key)
        if c.first_day <= last and c.last_day >= first
    ]
    duty = [duty_out(a) for a in await roster_service.duty_additions(session, line.key, start, end)]
    live = [o for o in out if o.status != "cancelled"]
    return WeekOut(
        line=line.key,
        time_zone=line.time_zone,
        week_start=first,
        week_end=last,
        occurrences=out,
        closures=closures,
        duty=duty,
        hours=_hours(live, start, end, tz),
        totals=WeekTotals(
            occurrences=len(live),
            needed=sum(o.needed for o in live),
            assigned=sum(o.assigned for o in live),
            missing=sum(o.missing for o in live),
            gaps=sum(1 for o in live if o.status == "gap"),
        ),
    )


def _assigned_staff(
    item: Assigned, staff: Staff, pending: set[tuple[uuid.UUID, date | None]]
) -> AssignedStaff:
    return AssignedStaff(
        assignment_id=item.assignment.id,
        staff_id=staff.id,
        alias=staff.alias,
        username=staff.username,
        source=item.assignment.source.value,
        every_week=item.assignment.pattern_id is not None
        and item.assignment.occurrence_date is None,
        drop_requested=_drop_pending(pending, item),
        active=staff.is_active,
    )


def _hours(
    occurrences: list[OccurrenceOut], start: datetime, end: datetime, tz: ZoneInfo
) -> list[HourCoverage]:
    """Needed and assigned per local hour of the week (a shift counts in every hour it touches)."""
    needed = [0] * HOURS_PER_WEEK
    assigned = [0] * HOURS_PER_WEEK
    moment = start
    while moment < end:
        following = moment + timedelta(hours=1)
        index = hour_of_week(moment, tz)
        live = [o for o in occurrences if o.starts_at < following and moment < o.ends_at]
        # When clocks go back an hour repeats: keep the larger figure.
        needed[index] = max(needed[index], sum(o.needed for o in live))
        assigned[index] = max(assigned[index], sum(o.assigned for o in live))
        moment = following
    return [
        HourCoverage(hour_of_week=h, needed=needed[h], assigned=assigned[h])
        for h in range(HOURS_PER_WEEK)
    ]


async def my_shifts(
    session: AsyncSession, staff: Staff, start: datetime, end: datetime
) -> list[MyShiftOut]:
    assigned, additions, pending_drops = await roster_service.own_shifts(session, staff, start, end)
    pending = _pending(pending_drops)
    lines = await RosterLookups(session).lines(
        {a.line_key for a in assigned} | {d.line_key for d in additions}
    )
    out: list[MyShiftOut] = []
    for item in assigned:
        line = lines[item.line_key]
        tz = line_zone(line)
        out.append(
            MyShiftOut(
                kind="shift",
                line=line.key,
                line_name=line.name,
                time_zone=line.time_zone,
                key=item.occurrence.key,
                assignment_id=item.assignment.id,
                date=item.occurrence.day,
                start=local_hhmm(item.occurrence.starts_at, tz),
                end=local_hhmm(item.occurrence.ends_at, tz),
                starts_at=item.occurrence.starts_at,
                ends_at=item.occurrence.ends_at,
                drop_requested=_drop_pending(pending, item),
            )
        )
    for addition in additions:
        line = lines[addition.line_key]
        tz = line_zone(line)
        out.append(
            MyShiftOut(
                kind="ad_hoc",
                line=line.key,
                line_name=line.name,
                time_zone=line.time_zone,
                key=f"d:{addition.id}",
                assignment_id=None,
                date=addition.starts_at.astimezone(tz).date(),
                start=local_hhmm(addition.starts_at, tz),
                end=local_hhmm(addition.ends_at, tz),
                starts_at=addition.starts_at,
                ends_at=addition.ends_at,
                drop_requested=False,
            )
        )
    out.sort(key=lambda s: s.starts_at)
    return out


async def open_shifts(
    session: AsyncSession, staff: Staff, start: datetime, end: datetime, now: datetime
) -> list[OpenShiftOut]:
    out = []
    for line, occurrence, free in await roster_service.open_places(session, staff, start, end, now):
        tz = line_zone(line)
        out.append(
            OpenShiftOut(
                line=line.key,
                line_name=line.name,
                time_zone=line.time_zone,
                key=occurrence.key,
                pattern_id=uuid.UUID(occurrence.pattern_id) if occurrence.pattern_id else None,
                extra_shift_id=uuid.UUID(occurrence.extra_id) if occurrence.extra_id else None,
                date=occurrence.day,
                start=local_hhmm(occurrence.starts_at, tz),
                end=local_hhmm(occurrence.ends_at, tz),
                starts_at=occurrence.starts_at,
                ends_at=occurrence.ends_at,
                needed=occurrence.needed,
                open_places=free,
            )
        )
    return out
