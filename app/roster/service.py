"""Rosters: shifts per line, who is on them, and from that who is on duty. Services flush only.

Every change is checked completely before anything is written, so a refused change leaves
nothing behind; the caller's unit of work commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.errors import ApiError
from app.models import (
    AssignmentSource,
    DropRequest,
    DropState,
    DutyAddition,
    ExtraShift,
    Line,
    RosterClosure,
    ShiftAssignment,
    ShiftPattern,
    Staff,
    StaffRole,
)
from app.roster.occurrences import (
    WEEKDAYS,
    ClosureSpec,
    ExtraSpec,
    Occurrence,
    PatternSpec,
    ShiftTimes,
    TimeZoneError,
    Window,
    extra_occurrence,
    first_overlap,
    format_minute,
    local_days,
    next_start,
    pattern_occurrences,
    since,
    until,
    zone,
)
from app.roster.repository import (
    AssignmentRepository,
    ClosureRepository,
    DropRequestRepository,
    DutyAdditionRepository,
    ExtraShiftRepository,
    PatternRepository,
    RosterLookups,
)

# How far ahead recurring shifts are checked for overlaps and double bookings.
CHECK_HORIZON_DAYS = 400
# How far ahead the visitor side looks for the line's next opening.
OPENING_HORIZON_DAYS = 35
# An ad hoc addition to duty may last at most this long.
MAX_DUTY_ADDITION = timedelta(days=7)
# Duty is computed from shifts starting up to this far around now (shifts last at most 24 h).
DUTY_LOOKAROUND = timedelta(days=2)


class RosterError(ApiError):
    """A roster change or question that cannot be answered; `code` is stable for clients."""


def _not_found(code: str, what: str) -> RosterError:
    return RosterError(code, f"there is no such {what}", 404)


def _conflict(code: str, message: str) -> RosterError:
    return RosterError(code, message, 409)


@dataclass(frozen=True, slots=True)
class ShiftInput:
    """Local times of a new pattern or extra shift, as a coordinator gives them."""

    start_minute: int
    end_minute: int
    ends_next_day: bool = False

    def times(self) -> ShiftTimes:
        times = ShiftTimes(self.start_minute, self.end_minute, self.ends_next_day)
        problem = times.problem()
        if problem is not None:
            raise RosterError("invalid_times", problem)
        return times


@dataclass(frozen=True, slots=True)
class Assigned:
    """One occurrence a staff member is on, through one assignment."""

    assignment: ShiftAssignment
    occurrence: Occurrence
    line_key: str


@dataclass(frozen=True, slots=True)
class Duty:
    """Per line the counsellor works on: until when they are on duty (0 = not now)."""

    until: dict[str, float]
    # When this changes next without a roster change (a window opens or closes), if ever.
    next_change: float | None
    # Per line on duty now: when this stretch of duty began (the shift's start, widened).
    since: dict[str, float] = field(default_factory=dict)
    # Per line on duty now: what began that stretch, "shift" (an assigned shift) or "ad_hoc"
    # (a coordinator's addition, from the moment it was made).
    began_by: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Roster:
    """The rows needed to compute occurrences for some lines, loaded once."""

    lines: dict[str, Line]
    patterns: dict[uuid.UUID, ShiftPattern] = field(default_factory=dict)
    extras: dict[uuid.UUID, ExtraShift] = field(default_factory=dict)
    closures: dict[str, list[ClosureSpec]] = field(default_factory=dict)
    zones: dict[str, ZoneInfo] = field(default_factory=dict)

    def zone(self, line_key: str) -> ZoneInfo:
        tz = self.zones.get(line_key)
        if tz is None:
            tz = self.zones[line_key] = line_zone(self.lines[line_key])
        return tz


def line_zone(line: Line) -> ZoneInfo:
    try:
        return zone(line.time_zone)
    except TimeZoneError:
        # Stored zones are validated; a zone removed from the database falls back to UTC.
        return ZoneInfo("UTC")


def pattern_spec(pattern: ShiftPattern) -> PatternSpec:
    return PatternSpec(
        id=str(pattern.id),
        weekdays=frozenset(pattern.weekdays),
        times=ShiftTimes(pattern.start_minute, pattern.end_minute, pattern.ends_next_day),
        valid_from=pattern.valid_from,
        valid_until=pattern.valid_until,
        needed=pattern.needed,
    )


def extra_spec(extra: ExtraShift) -> ExtraSpec:
    return ExtraSpec(
        id=str(extra.id),
        day=extra.day,
        times=ShiftTimes(extra.start_minute, extra.end_minute, extra.ends_next_day),
        needed=extra.needed,
    )


def closure_spec(closure: RosterClosure) -> ClosureSpec:
    return ClosureSpec(str(closure.id), closure.first_day, closure.last_day, closure.reason)


def describe(occurrence: Occurrence, line_key: str, tz: ZoneInfo) -> str:
    """'support on 2026-03-30 18:00–21:00' in the line's local time."""
    start = occurrence.starts_at.astimezone(tz)
    end = occurrence.ends_at.astimezone(tz)
    return f"{line_key} on {occurrence.day.isoformat()} {start:%H:%M}–{end:%H:%M}"


def staff_name(staff: Staff) -> str:
    return f"{staff.alias} ({staff.username})"


class RosterService:
    # Loading ----------------------------------------------------------------------------------

    async def _roster(
        self,
        session: AsyncSession,
        line_keys: Iterable[str],
        *,
        pattern_ids: Iterable[uuid.UUID] = (),
        extra_ids: Iterable[uuid.UUID] = (),
    ) -> Roster:
        keys = set(line_keys)
        lookups = RosterLookups(session)
        roster = Roster(lines=await lookups.lines(keys))
        roster.patterns = await PatternRepository(session).by_ids(set(pattern_ids))
        roster.extras = await ExtraShiftRepository(session).by_ids(set(extra_ids))
        for closure in await ClosureRepository(session).for_lines(keys):
            roster.closures.setdefault(closure.line_key, []).append(closure_spec(closure))
        return roster

    async def _approved_drops(
        self, session: AsyncSession, assignments: Sequence[ShiftAssignment]
    ) -> set[tuple[uuid.UUID, date | None]]:
        drops = await DropRequestRepository(session).for_assignments(
            [a.id for a in assignments], [DropState.approved]
        )
        return {(d.assignment_id, d.occurrence_date) for d in drops}

    async def assigned(
        self,
        session: AsyncSession,
        assignments: Sequence[ShiftAssignment],
        start: datetime,
        end: datetime,
        *,
        include_removed_lines: bool = False,
    ) -> list[Assigned]:
        """The occurrences these assignments put people on that overlap [start, end).

        Closures and approved drops are taken out; so are removed lines unless asked for.
        """
        if not assignments:
            return []
        roster = await self._roster(
            session,
            {a.line_key for a in assignments},
            pattern_ids={a.pattern_id for a in assignments if a.pattern_id},
            extra_ids={a.extra_shift_id for a in assignments if a.extra_shift_id},
        )
        dropped = await self._approved_drops(session, assignments)
        out: list[Assigned] = []
        for assignment in assignments:
            line = roster.lines.get(assignment.line_key)
            if line is None or (not line.is_active and not include_removed_lines):
                continue
            if (assignment.id, None) in dropped:
                continue
            for occurrence in self._occurrences_of(assignment, roster, start, end):
                if (assignment.id, occurrence.day) not in dropped:
                    out.append(Assigned(assignment, occurrence, assignment.line_key))
        out.sort(key=lambda a: (a.occurrence.starts_at, a.line_key))
        return out

    def _occurrences_of(
        self, assignment: ShiftAssignment, roster: Roster, start: datetime, end: datetime
    ) -> list[Occurrence]:
        tz = roster.zone(assignment.line_key)
        closures = roster.closures.get(assignment.line_key, [])
        if assignment.extra_shift_id is not None:
            extra = roster.extras.get(assignment.extra_shift_id)
            if extra is None:
                return []
            occurrence = extra_occurrence(extra_spec(extra), tz)
            return [occurrence] if occurrence.overlaps(start, end) else []
        pattern = roster.patterns.get(assignment.pattern_id) if assignment.pattern_id else None
        if pattern is None:
            return []
        first, last = local_days(start, end, tz)
        if assignment.occurrence_date is not None:
            first = max(first, assignment.occurrence_date)
            last = min(last, assignment.occurrence_date)
        if assignment.starts_on is not None:
            first = max(first, assignment.starts_on)
        if assignment.ends_on is not None:
            last = min(last, assignment.ends_on)
        return [
            o
            for o in pattern_occurrences(pattern_spec(pattern), tz, first, last, closures)
            if not o.cancelled and o.overlaps(start, end)
        ]

    # Lines ----------------------------------------------------------------------------------

    async def line(self, session: AsyncSession, key: str) -> Line:
        line = await RosterLookups(session).line(key)
        if line is None:
            raise _not_found("unknown_line", "line")
        return line

    async def active_line(self, session: AsyncSession, key: str) -> Line:
        """A line shifts may be added to; a removed line is refused with a clear reason."""
        line = await self.line(session, key)
        if not line.is_active:
            raise _conflict("line_removed", f"the line {key!r} has been removed")
        return line

    async def update_line(
        self,
        session: AsyncSession,
        key: str,
        *,
        time_zone: str | None = None,
        signup: bool | None = None,
    ) -> Line:
        line = await self.active_line(session, key)
        if time_zone is not None:
            try:
                zone(time_zone)
            except TimeZoneError as exc:
                raise RosterError("unknown_time_zone", str(exc)) from None
            line.time_zone = time_zone
        if signup is not None:
            line.roster_signup = signup
        await session.flush()
        return line

    # Patterns -------------------------------------------------------------------------------

    async def patterns(self, session: AsyncSession, line_key: str) -> Sequence[ShiftPattern]:
        await self.line(session, line_key)
        return await PatternRepository(session).for_line(line_key)

    async def get_pattern(self, session: AsyncSession, pattern_id: uuid.UUID) -> ShiftPattern:
        pattern = await PatternRepository(session).get(pattern_id)
        if pattern is None:
            raise _not_found("unknown_pattern", "shift pattern")
        return pattern

    async def create_pattern(
        self,
        session: AsyncSession,
        line_key: str,
        *,
        name: str,
        weekdays: Iterable[int],
        shift: ShiftInput,
        needed: int,
        valid_from: date | None,
        valid_until: date | None,
        now: datetime,
    ) -> ShiftPattern:
        line = await self.active_line(session, line_key)
        tz = line_zone(line)
        times = shift.times()
        day_numbers = sorted(set(weekdays))
        if not day_numbers or any(not 0 <= d <= 6 for d in day_numbers):
            raise RosterError("invalid_weekdays", "name one or more weekdays")
        start_day = valid_from or now.astimezone(tz).date()
        if valid_until is not None and valid_until < start_day:
            raise RosterError("invalid_dates", "valid_until is before valid_from")
        candidate = PatternSpec(
            "new", frozenset(day_numbers), times, start_day, valid_until, needed
        )
        await self._refuse_overlaps(session, candidate, line_key)
        return await PatternRepository(session).add(
            ShiftPattern(
                line_key=line_key,
                name=name,
                weekdays=day_numbers,
                start_minute=times.start_minute,
                end_minute=times.end_minute,
                ends_next_day=times.ends_next_day,
                needed=needed,
                valid_from=start_day,
                valid_until=valid_until,
            )
        )

    async def _refuse_overlaps(
        self,
        session: AsyncSession,
        candidate: PatternSpec,
        line_key: str,
        skip: uuid.UUID | None = None,
    ) -> None:
        """Refuse a pattern whose shifts would overlap another pattern of the same line."""
        line = await self.line(session, line_key)
        tz = line_zone(line)
        for other in await PatternRepository(session).for_line(line_key):
            if other.id == skip:
                continue
            clash = self._patterns_clash(candidate, pattern_spec(other), tz)
            if clash is not None:
                label = other.name or f"{', '.join(WEEKDAYS[d] for d in other.weekdays)}"
                raise _conflict(
                    "overlapping_pattern",
                    f"it overlaps the pattern {label!r} "
                    f"({format_minute(other.start_minute)}–{format_minute(other.end_minute)}) "
                    f"on {clash.isoformat()}",
                )

    def _patterns_clash(self, a: PatternSpec, b: PatternSpec, tz: ZoneInfo) -> date | None:
        """The first local date on which the two patterns' shifts overlap, if any."""
        first = max(a.valid_from, b.valid_from)
        last = first + timedelta(days=CHECK_HORIZON_DAYS)
        for bound in (a.valid_until, b.valid_until):
            if bound is not None:
                last = min(last, bound)
        if last < first:
            return None
        # From the day before: an overnight shift reaches into the first day.
        window = (first - timedelta(days=1), last)
        clash = first_overlap(
            pattern_occurrences(a, tz, *window), pattern_occurrences(b, tz, *window)
        )
        return None if clash is None else max(clash[0].day, clash[1].day)

    async def update_pattern(
        self,
        session: AsyncSession,
        pattern_id: uuid.UUID,
        *,
        changes: dict[str, object],
    ) -> ShiftPattern:
        """Rename, change how many are needed, or end a pattern; new times need a new pattern."""
        pattern = await self.get_pattern(session, pattern_id)
        await self.active_line(session, pattern.line_key)
        if "name" in changes:
            pattern.name = str(changes["name"])
        if "needed" in changes:
            needed = changes["needed"]
            assert isinstance(needed, int)
            pattern.needed = needed
        if "valid_until" in changes:
            valid_until = changes["valid_until"]
            assert valid_until is None or isinstance(valid_until, date)
            if valid_until is not None and valid_until < pattern.valid_from:
                raise RosterError("invalid_dates", "valid_until is before valid_from")
            longer = valid_until is None or (
                pattern.valid_until is not None and valid_until > pattern.valid_until
            )
            if longer:
                await self._refuse_overlaps(
                    session,
                    replace(pattern_spec(pattern), valid_until=valid_until),
                    pattern.line_key,
                    skip=pattern.id,
                )
            pattern.valid_until = valid_until
        await session.flush()
        return pattern

    async def delete_pattern(self, session: AsyncSession, pattern_id: uuid.UUID) -> ShiftPattern:
        pattern = await self.get_pattern(session, pattern_id)
        await PatternRepository(session).delete(pattern)
        return pattern

    # Extra shifts and closures ----------------------------------------------------------------

    async def create_extra(
        self,
        session: AsyncSession,
        line_key: str,
        *,
        name: str,
        day: date,
        shift: ShiftInput,
        needed: int,
        now: datetime,
    ) -> ExtraShift:
        line = await self.active_line(session, line_key)
        times = shift.times()
        _, ends_at = times.window(day, line_zone(line))
        if ends_at <= now:
            raise RosterError("in_the_past", "that shift would already be over")
        return await ExtraShiftRepository(session).add(
            ExtraShift(
                line_key=line_key,
                name=name,
                day=day,
                start_minute=times.start_minute,
                end_minute=times.end_minute,
                ends_next_day=times.ends_next_day,
                needed=needed,
            )
        )

    async def get_extra(self, session: AsyncSession, extra_id: uuid.UUID) -> ExtraShift:
        extra = await ExtraShiftRepository(session).get(extra_id)
        if extra is None:
            raise _not_found("unknown_extra_shift", "extra shift")
        return extra

    async def update_extra(
        self,
        session: AsyncSession,
        extra_id: uuid.UUID,
        *,
        name: str | None = None,
        needed: int | None = None,
        day: date | None = None,
        shift: ShiftInput | None = None,
        now: datetime,
    ) -> ExtraShift:
        """Rename an extra shift still to come, change how many it needs, or move it. Its
        counsellors stay on it, so a move that would book one of them twice is refused."""
        extra = await ExtraShiftRepository(session).lock(extra_id)
        if extra is None:
            raise _not_found("unknown_extra_shift", "extra shift")
        line = await self.active_line(session, extra.line_key)
        tz = line_zone(line)
        current = extra_spec(extra)
        if extra_occurrence(current, tz).ends_at <= now:
            raise RosterError("in_the_past", "that shift is over")
        if day is not None or shift is not None:
            times = shift.times() if shift is not None else current.times
            spec = replace(current, day=day or extra.day, times=times)
            moved = extra_occurrence(spec, tz)
            if moved.ends_at <= now:
                raise RosterError("in_the_past", "that shift would already be over")
            assignments = AssignmentRepository(session)
            on_it = await assignments.for_extra(extra.id)
            # Everything else the people on it are on, read once, around the new time.
            others = [
                a
                for a in await assignments.for_staff({a.staff_id for a in on_it})
                if a.extra_shift_id != extra.id
            ]
            existing = await self.assigned(session, others, moved.starts_at, moved.ends_at)
            for assignment in on_it:
                theirs = [a for a in existing if a.assignment.staff_id == assignment.staff_id]
                if not theirs:
                    continue
                staff = await RosterLookups(session).staff(assignment.staff_id)
                if staff is not None:
                    await self._refuse_double_booking(session, staff, [moved], theirs, line)
            extra.day = spec.day
            extra.start_minute = times.start_minute
            extra.end_minute = times.end_minute
            extra.ends_next_day = times.ends_next_day
        if name is not None:
            extra.name = name
        if needed is not None:
            extra.needed = needed
        await session.flush()
        return extra

    async def delete_extra(self, session: AsyncSession, extra_id: uuid.UUID) -> ExtraShift:
        extra = await self.get_extra(session, extra_id)
        await ExtraShiftRepository(session).delete(extra)
        return extra

    async def closures(self, session: AsyncSession, line_key: str) -> Sequence[RosterClosure]:
        await self.line(session, line_key)
        return await ClosureRepository(session).for_lines([line_key])

    async def create_closure(
        self,
        session: AsyncSession,
        line_key: str,
        *,
        first_day: date,
        last_day: date,
        reason: str,
    ) -> RosterClosure:
        await self.active_line(session, line_key)
        if last_day < first_day:
            raise RosterError("invalid_dates", "last_day is before first_day")
        if (last_day - first_day).days > 366:
            raise RosterError("invalid_dates", "a closure lasts at most a year; end the pattern")
        return await ClosureRepository(session).add(
            RosterClosure(line_key=line_key, first_day=first_day, last_day=last_day, reason=reason)
        )

    async def delete_closure(self, session: AsyncSession, closure_id: uuid.UUID) -> RosterClosure:
        repository = ClosureRepository(session)
        closure = await repository.get(closure_id)
        if closure is None:
            raise _not_found("unknown_closure", "closure")
        await repository.delete(closure)
        return closure

    # Assignments ----------------------------------------------------------------------------

    async def _bookable_staff(
        self, session: AsyncSession, staff_id: uuid.UUID, line: Line
    ) -> Staff:
        """The staff member, locked, if they may be put on this line's shifts."""
        staff = await RosterLookups(session).lock_staff(staff_id)
        if staff is None:
            raise _not_found("unknown_staff", "staff member")
        if not staff.is_active:
            raise _conflict("staff_inactive", f"{staff_name(staff)} is deactivated")
        if staff.role is not StaffRole.counsellor:
            raise _conflict("not_a_counsellor", f"{staff_name(staff)} is not a counsellor")
        if staff.qualification is None or not staff.qualification.may_work_on(
            line.required_qualification
        ):
            what = staff.qualification.value if staff.qualification else "unqualified"
            raise _conflict(
                "unqualified",
                f"{staff_name(staff)} is a {what}; the line {line.key!r} needs a "
                f"{line.required_qualification.value}",
            )
        return staff

    async def assign(
        self,
        session: AsyncSession,
        *,
        staff_id: uuid.UUID,
        pattern_id: uuid.UUID | None = None,
        extra_shift_id: uuid.UUID | None = None,
        day: date | None = None,
        starts_on: date | None = None,
        ends_on: date | None = None,
        now: datetime,
        source: AssignmentSource = AssignmentSource.coordinator,
    ) -> ShiftAssignment:
        """Put a counsellor on a pattern (every occurrence), one occurrence, or an extra shift."""
        if (pattern_id is None) == (extra_shift_id is None):
            raise RosterError("invalid_assignment", "name either pattern_id or extra_shift_id")
        if extra_shift_id is not None and (day or starts_on or ends_on):
            raise RosterError(
                "invalid_assignment", "date, starts_on and ends_on go with a pattern only"
            )
        if day is not None and (starts_on or ends_on):
            raise RosterError(
                "invalid_assignment", "give a date for one occurrence, or starts_on/ends_on"
            )
        if starts_on and ends_on and ends_on < starts_on:
            raise RosterError("invalid_dates", "ends_on is before starts_on")
        patterns = PatternRepository(session)
        extras = ExtraShiftRepository(session)
        pattern = await patterns.lock(pattern_id) if pattern_id else None
        extra = await extras.lock(extra_shift_id) if extra_shift_id else None
        if pattern_id is not None and pattern is None:
            raise _not_found("unknown_pattern", "shift pattern")
        if extra_shift_id is not None and extra is None:
            raise _not_found("unknown_extra_shift", "extra shift")
        line_key = pattern.line_key if pattern else extra.line_key if extra else ""
        line = await self.active_line(session, line_key)
        staff = await self._bookable_staff(session, staff_id, line)
        candidate = ShiftAssignment(
            id=uuid.uuid4(),
            staff_id=staff.id,
            line_key=line.key,
            pattern_id=pattern_id,
            occurrence_date=day,
            extra_shift_id=extra_shift_id,
            starts_on=starts_on,
            ends_on=ends_on,
            source=source,
        )
        new = await self._new_occurrences(session, candidate, line, pattern, extra, now)
        start = min(o.starts_at for o in new)
        end = max(o.ends_at for o in new)
        existing = await self.assigned(
            session, await AssignmentRepository(session).for_staff([staff.id]), start, end
        )
        tz = line_zone(line)
        taken = {a.occurrence.key for a in existing}
        repeated = next((o for o in new if o.key in taken), None)
        if repeated is not None:
            raise _conflict(
                "already_assigned",
                f"{staff_name(staff)} is already on {describe(repeated, line.key, tz)}",
            )
        await self._refuse_double_booking(session, staff, new, existing, line)
        if source is AssignmentSource.signup:
            occurrence = new[0]
            taken_places = await self._filled(session, line, occurrence)
            if taken_places >= occurrence.needed:
                raise _conflict(
                    "shift_full",
                    f"{describe(occurrence, line.key, tz)} already has the "
                    f"{occurrence.needed} counsellor(s) it needs",
                )
        await RosterLookups(session).add_member(staff.id, line.key)
        return await AssignmentRepository(session).add(candidate)

    async def _refuse_double_booking(
        self,
        session: AsyncSession,
        staff: Staff,
        new: Sequence[Occurrence],
        existing: Sequence[Assigned],
        line: Line,
    ) -> None:
        """Refused, naming both shifts, if one of `new` overlaps what they are already on."""
        clash = first_overlap(new, [a.occurrence for a in existing])
        if clash is None:
            return
        ours, theirs = clash
        tz = line_zone(line)
        other = next(a for a in existing if a.occurrence is theirs)
        other_line = await RosterLookups(session).line(other.line_key)
        other_tz = line_zone(other_line) if other_line else tz
        raise _conflict(
            "double_booking",
            f"{staff_name(staff)} is already on "
            f"{describe(theirs, other.line_key, other_tz)}, which overlaps "
            f"{describe(ours, line.key, tz)}",
        )

    async def _new_occurrences(
        self,
        session: AsyncSession,
        candidate: ShiftAssignment,
        line: Line,
        pattern: ShiftPattern | None,
        extra: ExtraShift | None,
        now: datetime,
    ) -> list[Occurrence]:
        """The occurrences a new assignment would cover, still to come; refused if none."""
        tz = line_zone(line)
        if extra is not None:
            occurrence = extra_occurrence(extra_spec(extra), tz)
            if occurrence.ends_at <= now:
                raise RosterError("in_the_past", "that shift is over")
            return [occurrence]
        assert pattern is not None
        spec = pattern_spec(pattern)
        closures = [closure_spec(c) for c in await ClosureRepository(session).for_lines([line.key])]
        today = now.astimezone(tz).date()
        if candidate.occurrence_date is not None:
            day = candidate.occurrence_date
            found = pattern_occurrences(spec, tz, day, day, closures)
            if not found:
                raise RosterError(
                    "not_an_occurrence", f"the pattern has no shift on {day.isoformat()}"
                )
            if found[0].cancelled:
                raise RosterError(
                    "not_an_occurrence", f"the shift on {day.isoformat()} is cancelled by a closure"
                )
            if found[0].ends_at <= now:
                raise RosterError("in_the_past", "that shift is over")
            return found
        first = max(candidate.starts_on or today, spec.valid_from, today - timedelta(days=1))
        last = first + timedelta(days=CHECK_HORIZON_DAYS)
        for bound in (candidate.ends_on, spec.valid_until):
            if bound is not None:
                last = min(last, bound)
        live = [
            o
            for o in pattern_occurrences(spec, tz, first, last, closures)
            if not o.cancelled and o.ends_at > now
        ]
        if not live:
            raise RosterError("in_the_past", "the pattern has no shifts left in that period")
        return live

    async def _filled(self, session: AsyncSession, line: Line, occurrence: Occurrence) -> int:
        """How many active staff are on this occurrence."""
        assigned = await self.assigned(
            session,
            await AssignmentRepository(session).for_line(line.key),
            occurrence.starts_at,
            occurrence.ends_at,
        )
        staff = await RosterLookups(session).staff_many(
            {a.assignment.staff_id for a in assigned if a.occurrence.key == occurrence.key}
        )
        return sum(1 for s in staff.values() if s.is_active)

    async def get_assignment(
        self, session: AsyncSession, assignment_id: uuid.UUID
    ) -> ShiftAssignment:
        assignment = await AssignmentRepository(session).get(assignment_id)
        if assignment is None:
            raise _not_found("unknown_assignment", "assignment")
        return assignment

    async def unassign(
        self,
        session: AsyncSession,
        assignment_id: uuid.UUID,
        *,
        day: date | None,
        by: Staff,
        now: datetime,
    ) -> ShiftAssignment:
        """Take someone off a shift: the whole assignment, or one date of a pattern-wide one."""
        assignment = await self.get_assignment(session, assignment_id)
        if day is None:
            await AssignmentRepository(session).delete(assignment)
            return assignment
        if assignment.pattern_id is None or assignment.occurrence_date is not None:
            raise RosterError(
                "invalid_assignment", "a date goes only with an assignment to every occurrence"
            )
        await self._effective_occurrence(session, assignment, day)
        await DropRequestRepository(session).add(
            DropRequest(
                assignment_id=assignment.id,
                occurrence_date=day,
                state=DropState.approved,
                note="taken off by a coordinator",
                decided_at=now,
                decided_by=by.id,
            )
        )
        return assignment

    async def _effective_occurrence(
        self, session: AsyncSession, assignment: ShiftAssignment, day: date | None
    ) -> Occurrence:
        """The occurrence of `assignment` on `day` (its only one when None) that it still covers."""
        weekly = assignment.pattern_id is not None and assignment.occurrence_date is None
        if weekly and day is None:
            raise RosterError(
                "invalid_drop", "name the date of the occurrence (the assignment is weekly)"
            )
        if not weekly:
            if assignment.extra_shift_id is not None:
                own_day = (await self.get_extra(session, assignment.extra_shift_id)).day
            else:
                assert assignment.occurrence_date is not None
                own_day = assignment.occurrence_date
            if day is not None and day != own_day:
                raise RosterError(
                    "not_an_occurrence", f"the assignment has no shift on {day.isoformat()}"
                )
            day = own_day
        assert day is not None
        tz = line_zone(await self.line(session, assignment.line_key))
        start = datetime.combine(day, time(), tz) - timedelta(hours=3)
        end = start + timedelta(days=2, hours=6)
        found = [
            a.occurrence
            for a in await self.assigned(session, [assignment], start, end)
            if a.occurrence.day == day
        ]
        if not found:
            raise RosterError(
                "not_an_occurrence", f"the assignment has no shift on {day.isoformat()}"
            )
        return found[0]

    # Sign-ups and drops -----------------------------------------------------------------------

    async def sign_up(
        self,
        session: AsyncSession,
        staff: Staff,
        *,
        pattern_id: uuid.UUID | None,
        extra_shift_id: uuid.UUID | None,
        day: date | None,
        now: datetime,
    ) -> ShiftAssignment:
        """A counsellor takes an open place on one shift of a line that allows sign-ups."""
        if pattern_id is not None and day is None:
            raise RosterError("invalid_assignment", "sign up for one date of a pattern")
        if pattern_id is not None:
            line_key = (await self.get_pattern(session, pattern_id)).line_key
        elif extra_shift_id is not None:
            line_key = (await self.get_extra(session, extra_shift_id)).line_key
        else:
            raise RosterError("invalid_assignment", "name either pattern_id or extra_shift_id")
        line = await self.active_line(session, line_key)
        if not line.roster_signup:
            raise _conflict(
                "signup_not_allowed",
                f"the line {line.key!r} does not take sign-ups; ask a coordinator",
            )
        if not await RosterLookups(session).is_member(staff.id, line.key):
            raise _conflict("not_on_line", f"you do not work on the line {line.key!r}")
        return await self.assign(
            session,
            staff_id=staff.id,
            pattern_id=pattern_id,
            extra_shift_id=extra_shift_id,
            day=day,
            now=now,
            source=AssignmentSource.signup,
        )

    async def request_drop(
        self,
        session: AsyncSession,
        staff: Staff,
        *,
        assignment_id: uuid.UUID,
        day: date | None,
        note: str,
        now: datetime,
    ) -> DropRequest:
        assignment = await AssignmentRepository(session).get(assignment_id)
        if assignment is None or assignment.staff_id != staff.id:
            raise _not_found("unknown_assignment", "assignment of yours")
        occurrence = await self._effective_occurrence(session, assignment, day)
        if occurrence.starts_at <= now:
            raise RosterError("in_the_past", "the shift has already started")
        day = day if assignment.pattern_id and assignment.occurrence_date is None else None
        existing = await DropRequestRepository(session).for_assignments(
            [assignment.id], [DropState.requested]
        )
        if any(d.occurrence_date == day for d in existing):
            raise _conflict("drop_pending", "you have already asked to drop this shift")
        return await DropRequestRepository(session).add(
            DropRequest(
                assignment_id=assignment.id,
                occurrence_date=day,
                state=DropState.requested,
                note=note,
            )
        )

    async def get_drop(self, session: AsyncSession, drop_id: uuid.UUID) -> DropRequest:
        drop = await DropRequestRepository(session).get(drop_id)
        if drop is None:
            raise _not_found("unknown_drop_request", "drop request")
        return drop

    async def decide_drop(
        self,
        session: AsyncSession,
        drop_id: uuid.UUID,
        *,
        approve: bool,
        by: Staff,
        now: datetime,
    ) -> DropRequest:
        drop = await self.get_drop(session, drop_id)
        if drop.state is not DropState.requested:
            raise _conflict("drop_decided", f"the request was already {drop.state.value}")
        drop.state = DropState.approved if approve else DropState.rejected
        drop.decided_at = now
        drop.decided_by = by.id
        await session.flush()
        return drop

    async def withdraw_drop(self, session: AsyncSession, staff: Staff, drop_id: uuid.UUID) -> None:
        drop = await DropRequestRepository(session).get(drop_id)
        assignment = await AssignmentRepository(session).get(drop.assignment_id) if drop else None
        if drop is None or assignment is None or assignment.staff_id != staff.id:
            raise _not_found("unknown_drop_request", "drop request of yours")
        if drop.state is not DropState.requested:
            raise _conflict("drop_decided", f"the request was already {drop.state.value}")
        await DropRequestRepository(session).delete(drop)

    async def drop_requests(
        self, session: AsyncSession, *, state: DropState | None, line_key: str | None
    ) -> Sequence[tuple[DropRequest, ShiftAssignment]]:
        return await DropRequestRepository(session).listing(state, line_key)

    # Ad hoc duty ----------------------------------------------------------------------------

    async def add_duty(
        self,
        session: AsyncSession,
        *,
        staff_id: uuid.UUID,
        line_key: str,
        until: datetime,
        by: Staff | None,
        now: datetime,
    ) -> DutyAddition:
        """Put a counsellor on duty on a line from now until `until`, outside the roster."""
        if until.tzinfo is None:
            raise RosterError("invalid_duty", "give the time with its UTC offset")
        if until <= now:
            raise RosterError("in_the_past", "until must be in the future")
        if until - now > MAX_DUTY_ADDITION:
            raise RosterError("invalid_duty", "ad hoc duty lasts at most 7 days; plan a shift")
        line = await self.active_line(session, line_key)
        staff = await self._bookable_staff(session, staff_id, line)
        await RosterLookups(session).add_member(staff.id, line.key)
        return await DutyAdditionRepository(session).add(
            DutyAddition(
                staff_id=staff.id,
                line_key=line.key,
                # Whole seconds, as calendars and the console show them.
                starts_at=now.replace(microsecond=0),
                ends_at=until,
                created_by=by.id if by else None,
            )
        )

    async def end_duty(self, session: AsyncSession, duty_id: uuid.UUID) -> DutyAddition:
        repository = DutyAdditionRepository(session)
        addition = await repository.get(duty_id)
        if addition is None:
            raise _not_found("unknown_duty", "ad hoc duty")
        await repository.delete(addition)
        return addition

    async def duty_additions(
        self, session: AsyncSession, line_key: str, start: datetime, end: datetime
    ) -> Sequence[DutyAddition]:
        await self.line(session, line_key)
        return await DutyAdditionRepository(session).for_line(line_key, start, end)

    # Duty -----------------------------------------------------------------------------------

    async def duty(
        self,
        session: AsyncSession,
        staff_id: uuid.UUID,
        now: datetime,
        *,
        before: timedelta = timedelta(0),
        after: timedelta = timedelta(0),
    ) -> Duty:
        """Lines the counsellor works on → until when they are on duty there (0 = not now).

        On duty: inside an assigned shift widened by `before` and `after`, or inside an ad hoc
        addition; back-to-back windows join, so the end is when duty really stops.
        """
        duties = await self.duties(session, [staff_id], now, before=before, after=after)
        return duties[staff_id]

    async def duties(
        self,
        session: AsyncSession,
        staff_ids: Collection[uuid.UUID],
        now: datetime,
        *,
        before: timedelta = timedelta(0),
        after: timedelta = timedelta(0),
    ) -> dict[uuid.UUID, Duty]:
        """`duty` for each of these people, with the same few queries however many they are
        (a process re-reads every signed-in counsellor's duty every minute)."""
        lookups = RosterLookups(session)
        people = await lookups.staff_many(staff_ids)
        members = await lookups.member_lines(people)
        working = [staff_id for staff_id, staff in people.items() if staff.is_active]
        start, end = now - DUTY_LOOKAROUND, now + DUTY_LOOKAROUND
        assignments = await AssignmentRepository(session).for_staff(working)
        additions = await DutyAdditionRepository(session).for_staff(working, start, end)
        lines = await lookups.lines(
            {key for keys in members.values() for key in keys} | {a.line_key for a in additions}
        )
        windows: dict[uuid.UUID, dict[str, list[Window]]] = {s: {} for s in people}
        shift_starts: dict[uuid.UUID, set[tuple[str, float]]] = {s: set() for s in people}
        for item in await self.assigned(session, assignments, start, end):
            window = (
                (item.occurrence.starts_at - before).timestamp(),
                (item.occurrence.ends_at + after).timestamp(),
            )
            windows[item.assignment.staff_id].setdefault(item.line_key, []).append(window)
            shift_starts[item.assignment.staff_id].add((item.line_key, window[0]))
        for addition in additions:
            line = lines.get(addition.line_key)
            if line is not None and line.is_active:
                windows[addition.staff_id].setdefault(addition.line_key, []).append(
                    (addition.starts_at.timestamp(), addition.ends_at.timestamp())
                )
        stamp = now.timestamp()
        out = {staff_id: Duty({}, None) for staff_id in staff_ids}
        for staff_id in people:
            out[staff_id] = _duty(
                windows[staff_id], members[staff_id], lines, stamp, shift_starts[staff_id]
            )
        return out

    # Views ----------------------------------------------------------------------------------

    async def line_occurrences(
        self, session: AsyncSession, line: Line, first_day: date, last_day: date
    ) -> list[Occurrence]:
        """Every occurrence of the line's shifts starting on these local dates, closures marked."""
        tz = line_zone(line)
        closures = await ClosureRepository(session).for_lines([line.key])
        specs = [closure_spec(c) for c in closures]
        out: list[Occurrence] = []
        for pattern in await PatternRepository(session).for_line(line.key):
            out.extend(pattern_occurrences(pattern_spec(pattern), tz, first_day, last_day, specs))
        for extra in await ExtraShiftRepository(session).for_line(line.key, first_day, last_day):
            out.append(extra_occurrence(extra_spec(extra), tz))
        out.sort(key=lambda o: (o.starts_at, o.key))
        return out

    async def staffing(
        self, session: AsyncSession, line: Line, start: datetime, end: datetime
    ) -> dict[str, list[Assigned]]:
        """Occurrence key → who is on it, for the line's occurrences overlapping [start, end)."""
        out: dict[str, list[Assigned]] = {}
        assignments = await AssignmentRepository(session).for_line(line.key)
        for item in await self.assigned(
            session, assignments, start, end, include_removed_lines=True
        ):
            out.setdefault(item.occurrence.key, []).append(item)
        return out

    async def next_opening(
        self, session: AsyncSession, line_key: str, now: datetime
    ) -> tuple[datetime, datetime] | None:
        """The next shift (or ad hoc duty) with someone active on it that starts after now."""
        line = await RosterLookups(session).line(line_key)
        if line is None or not line.is_active:
            return None
        end = now + timedelta(days=OPENING_HORIZON_DAYS)
        assignments = await AssignmentRepository(session).for_line(line_key)
        staff = await RosterLookups(session).staff_many({a.staff_id for a in assignments})
        active = [a for a in assignments if staff.get(a.staff_id) and staff[a.staff_id].is_active]
        windows = [
            (a.occurrence.starts_at, a.occurrence.ends_at)
            for a in await self.assigned(session, active, now, end)
        ]
        for addition in await DutyAdditionRepository(session).for_line(line_key, now, end):
            windows.append((addition.starts_at, addition.ends_at))
        future = [w for w in windows if w[0] > now]
        return min(future) if future else None

    async def next_shift(
        self, session: AsyncSession, staff_id: uuid.UUID, line_key: str, now: datetime
    ) -> datetime | None:
        """When the staff member's next shift (or ad hoc duty) on the line starts after now."""
        lookups = RosterLookups(session)
        staff = await lookups.staff(staff_id)
        line = await lookups.line(line_key)
        if staff is None or not staff.is_active or line is None or not line.is_active:
            return None
        if not await lookups.is_member(staff_id, line_key):
            return None
        end = now + timedelta(days=OPENING_HORIZON_DAYS)
        assignments = [
            a
            for a in await AssignmentRepository(session).for_staff([staff_id])
            if a.line_key == line_key
        ]
        starts = [
            a.occurrence.starts_at for a in await self.assigned(session, assignments, now, end)
        ]
        for addition in await DutyAdditionRepository(session).for_staff([staff_id], now, end):
            if addition.line_key == line_key:
                starts.append(addition.starts_at)
        future = [s for s in starts if s > now]
        return min(future) if future else None

    async def own_shifts(
        self, session: AsyncSession, staff: Staff, start: datetime, end: datetime
    ) -> tuple[list[Assigned], Sequence[DutyAddition], Sequence[DropRequest]]:
        """A staff member's own shifts, ad hoc duty and pending drop requests in [start, end)."""
        assignments = await AssignmentRepository(session).for_staff([staff.id])
        assigned = await self.assigned(session, assignments, start, end)
        additions = await DutyAdditionRepository(session).for_staff([staff.id], start, end)
        pending = await DropRequestRepository(session).for_assignments(
            [a.id for a in assignments], [DropState.requested]
        )
        return assigned, additions, pending

    async def open_places(
        self, session: AsyncSession, staff: Staff, start: datetime, end: datetime, now: datetime
    ) -> list[tuple[Line, Occurrence, int]]:
        """Shifts with open places this counsellor may sign up for: (line, occurrence, free)."""
        lookups = RosterLookups(session)
        lines = await lookups.lines((await lookups.member_lines([staff.id]))[staff.id])
        out: list[tuple[Line, Occurrence, int]] = []
        own = await AssignmentRepository(session).for_staff([staff.id])
        for line in lines.values():
            if not line.is_active or not line.roster_signup:
                continue
            if staff.qualification is None or not staff.qualification.may_work_on(
                line.required_qualification
            ):
                continue
            occurrences = [
                o
                for o in await self.line_occurrences(
                    session, line, *local_days(start, end, line_zone(line))
                )
                if not o.cancelled and o.starts_at > now and start <= o.starts_at < end
            ]
            if not occurrences:
                continue
            start = min(o.starts_at for o in occurrences)
            end = max(o.ends_at for o in occurrences)
            staffing = await self.staffing(session, line, start, end)
            everyone = await lookups.staff_many(
                {a.assignment.staff_id for items in staffing.values() for a in items}
            )
            mine = {a.occurrence.key for a in await self.assigned(session, own, start, end)}
            for occurrence in occurrences:
                filled = sum(
                    1
                    for a in staffing.get(occurrence.key, [])
                    if everyone.get(a.assignment.staff_id) is not None
                    and everyone[a.assignment.staff_id].is_active
                )
                if occurrence.key not in mine and filled < occurrence.needed:
                    out.append((line, occurrence, occurrence.needed - filled))
        out.sort(key=lambda item: item[1].starts_at)
        return out

    async def staffed_now(
        self, session: AsyncSession, line: Line, now: datetime
    ) -> tuple[int, int]:
        """(needed, assigned active staff) over the line's occurrences covering now."""
        tz = line_zone(line)
        today = now.astimezone(tz).date()
        live = [
            o
            for o in await self.line_occurrences(session, line, today - timedelta(days=1), today)
            if not o.cancelled and o.starts_at <= now < o.ends_at
        ]
        if not live:
            return 0, 0
        staffing = await self.staffing(session, line, now, now + timedelta(seconds=1))
        ids = {a.assignment.staff_id for o in live for a in staffing.get(o.key, [])}
        staff = await RosterLookups(session).staff_many(ids)
        assigned = sum(
            1
            for o in live
            for a in staffing.get(o.key, [])
            if staff.get(a.assignment.staff_id) and staff[a.assignment.staff_id].is_active
        )
        return sum(o.needed for o in live), assigned


roster_service = RosterService()


def _duty(
    windows: dict[str, list[Window]],
    member_of: set[str],
    lines: dict[str, Line],
    stamp: float,
    shift_starts: set[tuple[str, float]],
) -> Duty:
    """One person's duty from their windows per line (see RosterService.duty)."""
    # Duty counts only on the lines the person works on: a coordinator who takes someone
    # off a line takes them off duty there (assigning and ad hoc duty add the line).
    removed = {key for key in member_of if key in lines and not lines[key].is_active}
    windows = {key: spans for key, spans in windows.items() if key in member_of}
    result = {key: until(windows.get(key, []), stamp) for key in member_of - removed}
    changes = [next_start(w, stamp) for w in windows.values()]
    changes.extend(v for v in result.values() if v > stamp)
    upcoming = [c for c in changes if c is not None]
    started = {
        key: since(windows.get(key, []), stamp) for key, end in result.items() if end > stamp
    }
    # The stretch began with whichever window starts it (a shift, when both start at once).
    began_by = {
        key: "shift" if (key, start) in shift_starts else "ad_hoc" for key, start in started.items()
    }
    return Duty(result, min(upcoming) if upcoming else None, started, began_by)
