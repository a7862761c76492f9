"""The roster API: complete JSON for the staff console, and the private calendar feeds."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditAction, audit_service
from app.deps import RuntimeDep, SessionDep
from app.kit.clock import utcnow
from app.kit.db import after_commit
from app.kit.fields import CleanText, Day, Moment, Text
from app.models import DropState, Staff
from app.roster import views
from app.roster.access import Counsellor, RosterManager
from app.roster.calendar import calendar_service
from app.roster.live import announce_change
from app.roster.schemas import (
    AssignmentIn,
    AssignmentOut,
    CalendarOut,
    ClosureIn,
    ClosureOut,
    DropIn,
    DropOut,
    DutyIn,
    DutyOut,
    ExtraShiftIn,
    ExtraShiftOut,
    ExtraShiftUpdate,
    MyShiftOut,
    OpenShiftOut,
    PatternIn,
    PatternOut,
    PatternUpdate,
    RosterLineOut,
    RosterLineUpdate,
    SignupIn,
    WeekOut,
)
from app.roster.service import RosterError, ShiftInput, line_zone, roster_service
from app.staff.permissions import public

if TYPE_CHECKING:
    from app.runtime import Runtime

router = APIRouter(prefix="/api/roster", tags=["roster"])
feeds = APIRouter(tags=["roster"])

# The longest span a listing may cover, so one request cannot ask for years of occurrences.
MAX_SPAN = timedelta(days=366)

LineKey = Annotated[str, Query(max_length=32), CleanText()]


def _changed(session: AsyncSession, runtime: Runtime) -> None:
    # Every process re-reads duty once the change is stored.
    after_commit(session, lambda: announce_change(runtime.broker))


async def _audit(
    session: AsyncSession,
    actor: Staff,
    what: str,
    *,
    line: str | None = None,
    staff_id: uuid.UUID | None = None,
    **detail: Any,
) -> None:
    """Every roster change in the audit log, in the request's own transaction."""
    await audit_service.record(
        session,
        AuditAction.roster_changed,
        actor_id=actor.id,
        target_staff_id=staff_id,
        line_key=line,
        detail={"what": what, **{k: str(v) for k, v in detail.items() if v is not None}},
    )


def _span(
    start: datetime | None, end: datetime | None, default: timedelta
) -> tuple[datetime, datetime]:
    now = utcnow()
    start = start or now - timedelta(days=1)
    end = end or start + default
    if end <= start:
        raise RosterError("invalid_range", "end must be after start")
    if end - start > MAX_SPAN:
        raise RosterError("invalid_range", "ask for at most 366 days at a time")
    return start, end


# Lines ------------------------------------------------------------------------------------


@router.get("/lines", response_model=list[RosterLineOut])
async def list_lines(_: RosterManager, session: SessionDep) -> list[RosterLineOut]:
    from app.lines.service import line_service

    return [views.line_out(line) for line in await line_service.list_active(session)]


@router.patch("/lines/{key}", response_model=RosterLineOut)
async def update_line(
    key: Text,
    body: RosterLineUpdate,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> RosterLineOut:
    """The line's time zone and whether counsellors may sign up for its open places."""
    line = await roster_service.update_line(
        session, key, time_zone=body.time_zone, signup=body.signup
    )
    after_commit(session, lambda: runtime.lines.changed(runtime.broker))
    await _audit(session, manager, "line", line=key, time_zone=body.time_zone, signup=body.signup)
    _changed(session, runtime)
    return views.line_out(line)


# Patterns, extra shifts, closures ------------------------------------------------------------


@router.get("/lines/{key}/patterns", response_model=list[PatternOut])
async def list_patterns(key: Text, _: RosterManager, session: SessionDep) -> list[PatternOut]:
    return [views.pattern_out(p) for p in await roster_service.patterns(session, key)]


@router.post("/lines/{key}/patterns", response_model=PatternOut, status_code=201)
async def create_pattern(
    key: Text,
    body: PatternIn,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> PatternOut:
    pattern = await roster_service.create_pattern(
        session,
        key,
        name=body.name,
        weekdays=body.weekday_numbers(),
        shift=ShiftInput(body.start_minute, body.end_minute, body.ends_next_day),
        needed=body.needed,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
        now=utcnow(),
    )
    await _audit(session, manager, "pattern.created", line=key, pattern=pattern.id)
    _changed(session, runtime)
    return views.pattern_out(pattern)


@router.get("/patterns/{pattern_id}", response_model=PatternOut)
async def get_pattern(pattern_id: uuid.UUID, _: RosterManager, session: SessionDep) -> PatternOut:
    return views.pattern_out(await roster_service.get_pattern(session, pattern_id))


@router.patch("/patterns/{pattern_id}", response_model=PatternOut)
async def update_pattern(
    pattern_id: uuid.UUID,
    body: PatternUpdate,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> PatternOut:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if changes.get("name") is None:
        changes.pop("name", None)
    if changes.get("needed") is None:
        changes.pop("needed", None)
    pattern = await roster_service.update_pattern(session, pattern_id, changes=changes)
    await _audit(
        session,
        manager,
        "pattern.changed",
        line=pattern.line_key,
        pattern=pattern_id,
        fields=",".join(sorted(changes)),
    )
    _changed(session, runtime)
    return views.pattern_out(pattern)


@router.delete("/patterns/{pattern_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_pattern(
    pattern_id: uuid.UUID,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> None:
    """Remove the pattern and everyone's assignments to it."""
    await roster_service.delete_pattern(session, pattern_id)
    await _audit(session, manager, "pattern.deleted", pattern=pattern_id)
    _changed(session, runtime)


@router.post("/lines/{key}/extra-shifts", response_model=ExtraShiftOut, status_code=201)
async def create_extra(
    key: Text,
    body: ExtraShiftIn,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> ExtraShiftOut:
    extra = await roster_service.create_extra(
        session,
        key,
        name=body.name,
        day=body.date,
        shift=ShiftInput(body.start_minute, body.end_minute, body.ends_next_day),
        needed=body.needed,
        now=utcnow(),
    )
    line = await roster_service.line(session, key)
    await _audit(session, manager, "extra_shift.created", line=key, extra_shift=extra.id)
    _changed(session, runtime)
    return views.extra_out(extra, line_zone(line))


@router.patch("/extra-shifts/{extra_id}", response_model=ExtraShiftOut)
async def update_extra(
    extra_id: uuid.UUID,
    body: ExtraShiftUpdate,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> ExtraShiftOut:
    """Rename, change how many are needed, or move it (its counsellors stay on it)."""
    times = body.new_times()
    extra = await roster_service.update_extra(
        session,
        extra_id,
        name=body.name,
        needed=body.needed,
        day=body.date,
        shift=None if times is None else ShiftInput(*times),
        now=utcnow(),
    )
    line = await roster_service.line(session, extra.line_key)
    changed = sorted(name for name in body.model_fields_set if getattr(body, name) is not None)
    await _audit(
        session,
        manager,
        "extra_shift.changed",
        line=extra.line_key,
        extra_shift=extra_id,
        fields=",".join(changed),
    )
    _changed(session, runtime)
    return views.extra_out(extra, line_zone(line))


@router.delete("/extra-shifts/{extra_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_extra(
    extra_id: uuid.UUID,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> None:
    await roster_service.delete_extra(session, extra_id)
    await _audit(session, manager, "extra_shift.deleted", extra_shift=extra_id)
    _changed(session, runtime)


@router.get("/lines/{key}/closures", response_model=list[ClosureOut])
async def list_closures(key: Text, _: RosterManager, session: SessionDep) -> list[ClosureOut]:
    return [views.closure_out(c) for c in await roster_service.closures(session, key)]


@router.post("/lines/{key}/closures", response_model=ClosureOut, status_code=201)
async def create_closure(
    key: Text,
    body: ClosureIn,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> ClosureOut:
    closure = await roster_service.create_closure(
        session, key, first_day=body.first_day, last_day=body.last_day, reason=body.reason
    )
    await _audit(
        session,
        manager,
        "closure.created",
        line=key,
        first_day=body.first_day,
        last_day=body.last_day,
    )
    _changed(session, runtime)
    return views.closure_out(closure)


@router.delete("/closures/{closure_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_closure(
    closure_id: uuid.UUID,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> None:
    await roster_service.delete_closure(session, closure_id)
    await _audit(session, manager, "closure.deleted", closure=closure_id)
    _changed(session, runtime)


# Assignments and coverage ------------------------------------------------------------------


@router.post("/assignments", response_model=AssignmentOut, status_code=201)
async def assign(
    body: AssignmentIn,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> AssignmentOut:
    """Put a counsellor on every occurrence of a pattern, one occurrence, or an extra shift."""
    assignment = await roster_service.assign(
        session,
        staff_id=body.staff_id,
        pattern_id=body.pattern_id,
        extra_shift_id=body.extra_shift_id,
        day=body.date,
        starts_on=body.starts_on,
        ends_on=body.ends_on,
        now=utcnow(),
    )
    await _audit(
        session,
        manager,
        "assigned",
        staff_id=body.staff_id,
        assignment=assignment.id,
        pattern=body.pattern_id,
        extra_shift=body.extra_shift_id,
        date=body.date,
    )
    _changed(session, runtime)
    return views.assignment_out(assignment)


@router.delete("/assignments/{assignment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unassign(
    assignment_id: uuid.UUID,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
    day: Annotated[Day | None, Query(alias="date")] = None,
) -> None:
    """Take someone off a shift; with ?date= only that occurrence of a weekly assignment."""
    await roster_service.unassign(session, assignment_id, day=day, by=manager, now=utcnow())
    await _audit(session, manager, "unassigned", assignment=assignment_id, date=day)
    _changed(session, runtime)


@router.get("/lines/{key}/week", response_model=WeekOut)
async def week(
    key: Text,
    _: RosterManager,
    session: SessionDep,
    day: Annotated[Day | None, Query(alias="date")] = None,
) -> WeekOut:
    """Needed against assigned for each shift of the week holding ?date= (default: this week)."""
    line = await roster_service.line(session, key)
    return await views.week(session, line, day or utcnow().astimezone(line_zone(line)).date())


@router.get("/drop-requests", response_model=list[DropOut])
async def drop_requests(
    _: RosterManager,
    session: SessionDep,
    state: Literal["requested", "approved", "rejected", "all"] = "requested",
    line: LineKey | None = None,
) -> list[DropOut]:
    """Drop requests, by default those waiting for a decision."""
    wanted = None if state == "all" else DropState(state)
    rows = await roster_service.drop_requests(session, state=wanted, line_key=line)
    return [views.drop_out(drop, assignment) for drop, assignment in rows]


async def _decide(
    drop_id: uuid.UUID,
    approve: bool,
    manager: RosterManager,
    session: SessionDep,
    runtime: Runtime,
) -> DropOut:
    drop = await roster_service.decide_drop(
        session, drop_id, approve=approve, by=manager, now=utcnow()
    )
    assignment = await roster_service.get_assignment(session, drop.assignment_id)
    await _audit(
        session,
        manager,
        "drop.approved" if approve else "drop.rejected",
        staff_id=assignment.staff_id if assignment is not None else None,
        drop=drop_id,
    )
    _changed(session, runtime)
    return views.drop_out(drop, assignment)


@router.post("/drop-requests/{drop_id}/approve", response_model=DropOut)
async def approve_drop(
    drop_id: uuid.UUID,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> DropOut:
    return await _decide(drop_id, True, manager, session, runtime)


@router.post("/drop-requests/{drop_id}/reject", response_model=DropOut)
async def reject_drop(
    drop_id: uuid.UUID,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> DropOut:
    return await _decide(drop_id, False, manager, session, runtime)


# Ad hoc duty -------------------------------------------------------------------------------


@router.get("/lines/{key}/duty", response_model=list[DutyOut])
async def list_duty(key: Text, _: RosterManager, session: SessionDep) -> list[DutyOut]:
    """Ad hoc duty on the line that has not ended yet."""
    now = utcnow()
    additions = await roster_service.duty_additions(session, key, now, now + timedelta(days=8))
    return [views.duty_out(a) for a in additions]


@router.post("/lines/{key}/duty", response_model=DutyOut, status_code=201)
async def add_duty(
    key: Text,
    body: DutyIn,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> DutyOut:
    """Put a counsellor on duty on the line from now until a given time."""
    addition = await roster_service.add_duty(
        session, staff_id=body.staff_id, line_key=key, until=body.until, by=manager, now=utcnow()
    )
    await _audit(session, manager, "duty.added", line=key, staff_id=body.staff_id, until=body.until)
    _changed(session, runtime)
    return views.duty_out(addition)


@router.delete("/duty/{duty_id}", status_code=status.HTTP_204_NO_CONTENT)
async def end_duty(
    duty_id: uuid.UUID,
    manager: RosterManager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> None:
    await roster_service.end_duty(session, duty_id)
    await _audit(session, manager, "duty.ended", duty=duty_id)
    _changed(session, runtime)


@router.delete("/staff/{staff_id}/calendar", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_staff_calendar(
    staff_id: uuid.UUID, manager: RosterManager, session: SessionDep
) -> None:
    """Stop a staff member's calendar feed (e.g. a lost phone)."""
    await calendar_service.revoke(session, staff_id)
    await _audit(session, manager, "calendar.revoked", staff_id=staff_id)


# A counsellor's own shifts ------------------------------------------------------------------


@router.get("/me/shifts", response_model=list[MyShiftOut])
async def my_shifts(
    staff: Counsellor,
    session: SessionDep,
    start: Moment | None = None,
    end: Moment | None = None,
) -> list[MyShiftOut]:
    """Own shifts and ad hoc duty between ?start= and ?end= (default: the next four weeks)."""
    first, last = _span(start, end, timedelta(days=29))
    return await views.my_shifts(session, staff, first, last)


@router.get("/me/open-shifts", response_model=list[OpenShiftOut])
async def open_shifts(
    staff: Counsellor,
    session: SessionDep,
    start: Moment | None = None,
    end: Moment | None = None,
) -> list[OpenShiftOut]:
    """Shifts with open places on lines that take sign-ups, that this counsellor could take."""
    first, last = _span(start, end, timedelta(days=29))
    now = utcnow()
    return await views.open_shifts(session, staff, first, last, now)


@router.post("/me/signups", response_model=AssignmentOut, status_code=201)
async def sign_up(
    body: SignupIn,
    staff: Counsellor,
    session: SessionDep,
    runtime: RuntimeDep,
) -> AssignmentOut:
    assignment = await roster_service.sign_up(
        session,
        staff,
        pattern_id=body.pattern_id,
        extra_shift_id=body.extra_shift_id,
        day=body.date,
        now=utcnow(),
    )
    await _audit(
        session,
        staff,
        "signed_up",
        staff_id=staff.id,
        assignment=assignment.id,
        pattern=body.pattern_id,
        extra_shift=body.extra_shift_id,
        date=body.date,
    )
    _changed(session, runtime)
    return views.assignment_out(assignment)


@router.post("/me/drop-requests", response_model=DropOut, status_code=201)
async def request_drop(body: DropIn, staff: Counsellor, session: SessionDep) -> DropOut:
    """Ask a coordinator to take you off a shift; you stay on it until they approve."""
    drop = await roster_service.request_drop(
        session,
        staff,
        assignment_id=body.assignment_id,
        day=body.date,
        note=body.note,
        now=utcnow(),
    )
    assignment = await roster_service.get_assignment(session, drop.assignment_id)
    await _audit(session, staff, "drop.requested", staff_id=staff.id, drop=drop.id)
    return views.drop_out(drop, assignment)


@router.delete("/me/drop-requests/{drop_id}", status_code=status.HTTP_204_NO_CONTENT)
async def withdraw_drop(drop_id: uuid.UUID, staff: Counsellor, session: SessionDep) -> None:
    await roster_service.withdraw_drop(session, staff, drop_id)
    await _audit(session, staff, "drop.withdrawn", staff_id=staff.id, drop=drop_id)


@router.post("/me/calendar", response_model=CalendarOut, status_code=201)
async def create_calendar(
    staff: Counsellor, session: SessionDep, runtime: RuntimeDep
) -> CalendarOut:
    """A private feed URL of your shifts for a calendar app; shown once, replaces any earlier."""
    token = await calendar_service.create(session, staff)
    await _audit(session, staff, "calendar.created", staff_id=staff.id)
    return CalendarOut(url=f"{runtime.settings.public_url.rstrip('/')}/calendar/{token}.ics")


@router.delete("/me/calendar", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_calendar(staff: Counsellor, session: SessionDep) -> None:
    await calendar_service.revoke(session, staff.id)
    await _audit(session, staff, "calendar.revoked", staff_id=staff.id)


@feeds.get("/calendar/{name}", include_in_schema=False, dependencies=[public()])
async def calendar_feed(name: str, session: SessionDep) -> Response:
    """The feed itself: the secret in the URL is the only key."""
    token = name.removesuffix(".ics") if name.endswith(".ics") else ""
    staff = await calendar_service.owner(session, token)
    if staff is None:
        return JSONResponse({"detail": "no such calendar"}, status_code=404)
    body = await calendar_service.feed(session, staff, utcnow())
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={
            "cache-control": "private, max-age=300",
            "referrer-policy": "no-referrer",
            "x-robots-tag": "noindex",
        },
    )
