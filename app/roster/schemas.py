"""What the roster API reads and writes. Times of day are local 'HH:MM' in the line's zone."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from app.kit.fields import CleanText, Day, Moment
from app.lines.schemas import TimeZoneName
from app.roster.occurrences import WEEKDAYS, parse_minute

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Name = Annotated[str, StringConstraints(max_length=100), CleanText()]
Note = Annotated[str, StringConstraints(max_length=500), CleanText()]


def _start(text: str) -> str:
    parse_minute(text)
    return text


def _end(text: str) -> str:
    parse_minute(text, allow_24=True)
    return text


StartTime = Annotated[str, StringConstraints(max_length=5), CleanText(), AfterValidator(_start)]
# "24:00" is allowed as an end: midnight at the end of the day.
EndTime = Annotated[str, StringConstraints(max_length=5), CleanText(), AfterValidator(_end)]
Needed = Annotated[StrictInt, Field(ge=1, le=50)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShiftTimesIn(Strict):
    start: StartTime
    end: EndTime
    # For a shift across midnight, e.g. 22:00 until 06:00 the next morning.
    ends_next_day: StrictBool = False

    @property
    def start_minute(self) -> int:
        return parse_minute(self.start)

    @property
    def end_minute(self) -> int:
        return parse_minute(self.end, allow_24=True)


class PatternIn(ShiftTimesIn):
    name: Name = ""
    weekdays: Annotated[list[Weekday], Field(min_length=1, max_length=7)]
    needed: Needed = 1
    valid_from: Day | None = None
    valid_until: Day | None = None

    @model_validator(mode="after")
    def _distinct_days(self) -> PatternIn:
        if len(set(self.weekdays)) != len(self.weekdays):
            raise ValueError("weekdays must not repeat")
        return self

    def weekday_numbers(self) -> list[int]:
        return [WEEKDAYS.index(day) for day in self.weekdays]


class PatternUpdate(Strict):
    """Only these may change; for other days or times end the pattern and start a new one."""

    name: Name | None = None
    needed: Needed | None = None
    valid_until: Day | None = None


class PatternOut(BaseModel):
    id: uuid.UUID
    line: str
    name: str
    weekdays: list[str]
    start: str
    end: str
    ends_next_day: bool
    needed: int
    valid_from: dt.date
    valid_until: dt.date | None


class ExtraShiftIn(ShiftTimesIn):
    name: Name = ""
    date: Day
    needed: Needed = 1


class ExtraShiftUpdate(Strict):
    """Any of these; a new time gives both start and end (and ends_next_day if it does)."""

    name: Name | None = None
    needed: Needed | None = None
    date: Day | None = None
    start: StartTime | None = None
    end: EndTime | None = None
    ends_next_day: StrictBool | None = None

    @model_validator(mode="after")
    def _whole_times(self) -> ExtraShiftUpdate:
        given = [self.start is not None, self.end is not None]
        if any(given) and not all(given):
            raise ValueError("give both start and end for a new time")
        if self.ends_next_day is not None and self.start is None:
            raise ValueError("ends_next_day goes with a new start and end")
        return self

    def new_times(self) -> tuple[int, int, bool] | None:
        """(start minute, end minute, ends the next day) when a new time is given."""
        if self.start is None or self.end is None:
            return None
        end = parse_minute(self.end, allow_24=True)
        return parse_minute(self.start), end, bool(self.ends_next_day)


class ExtraShiftOut(BaseModel):
    id: uuid.UUID
    line: str
    name: str
    date: dt.date
    start: str
    end: str
    ends_next_day: bool
    needed: int
    starts_at: dt.datetime
    ends_at: dt.datetime


class ClosureIn(Strict):
    first_day: Day
    last_day: Day
    reason: Annotated[str, StringConstraints(max_length=200), CleanText()] = ""


class ClosureOut(BaseModel):
    id: uuid.UUID
    line: str
    first_day: dt.date
    last_day: dt.date
    reason: str


class AssignmentIn(Strict):
    staff_id: uuid.UUID
    pattern_id: uuid.UUID | None = None
    extra_shift_id: uuid.UUID | None = None
    # With a pattern: only the occurrence on this date; without: every occurrence.
    date: Day | None = None
    starts_on: Day | None = None
    ends_on: Day | None = None


class SignupIn(Strict):
    pattern_id: uuid.UUID | None = None
    extra_shift_id: uuid.UUID | None = None
    date: Day | None = None


class AssignmentOut(BaseModel):
    id: uuid.UUID
    staff_id: uuid.UUID
    line: str
    pattern_id: uuid.UUID | None
    extra_shift_id: uuid.UUID | None
    date: dt.date | None
    starts_on: dt.date | None
    ends_on: dt.date | None
    source: str


class DropIn(Strict):
    assignment_id: uuid.UUID
    # Which occurrence, for an assignment to every occurrence of a pattern.
    date: Day | None = None
    note: Note = ""


class DropOut(BaseModel):
    id: uuid.UUID
    assignment_id: uuid.UUID
    staff_id: uuid.UUID
    line: str
    date: dt.date | None
    state: str
    note: str
    created_at: dt.datetime
    decided_at: dt.datetime | None


class DutyIn(Strict):
    staff_id: uuid.UUID
    until: Moment


class DutyOut(BaseModel):
    id: uuid.UUID
    staff_id: uuid.UUID
    line: str
    starts_at: dt.datetime
    ends_at: dt.datetime


class RosterLineUpdate(Strict):
    time_zone: TimeZoneName | None = None
    signup: StrictBool | None = None


class RosterLineOut(BaseModel):
    key: str
    name: str
    time_zone: str
    signup: bool
    required_qualification: str
    active: bool
    # A training line: its chats count in no statistic.
    practice: bool = False


class AssignedStaff(BaseModel):
    assignment_id: uuid.UUID
    staff_id: uuid.UUID
    alias: str
    username: str
    source: str
    # Whole-pattern assignment (every occurrence) or just this one.
    every_week: bool
    drop_requested: bool
    # Deactivated staff are listed but do not count towards the needed number.
    active: bool


OccurrenceStatus = Literal["gap", "covered", "over", "cancelled"]


class OccurrenceOut(BaseModel):
    key: str
    kind: Literal["pattern", "extra"]
    pattern_id: uuid.UUID | None
    extra_shift_id: uuid.UUID | None
    name: str
    date: dt.date
    start: str
    end: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    needed: int
    assigned: int
    missing: int
    status: OccurrenceStatus
    cancelled_by: str | None
    staff: list[AssignedStaff]


class HourCoverage(BaseModel):
    """One local hour of the week: 0 = Monday 00:00–01:00 … 167 = Sunday 23:00–24:00."""

    hour_of_week: int
    needed: int
    assigned: int


class WeekTotals(BaseModel):
    occurrences: int
    needed: int
    assigned: int
    missing: int
    gaps: int


class WeekOut(BaseModel):
    line: str
    time_zone: str
    week_start: dt.date
    week_end: dt.date
    occurrences: list[OccurrenceOut]
    closures: list[ClosureOut]
    duty: list[DutyOut]
    hours: list[HourCoverage]
    totals: WeekTotals


class MyShiftOut(BaseModel):
    kind: Literal["shift", "ad_hoc"]
    line: str
    line_name: str
    # The line's zone: `date`, `start` and `end` are wall-clock there.
    time_zone: str
    key: str
    assignment_id: uuid.UUID | None
    date: dt.date
    start: str
    end: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    drop_requested: bool


class OpenShiftOut(BaseModel):
    line: str
    line_name: str
    # The line's zone: `date`, `start` and `end` are wall-clock there.
    time_zone: str
    key: str
    pattern_id: uuid.UUID | None
    extra_shift_id: uuid.UUID | None
    date: dt.date
    start: str
    end: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    needed: int
    open_places: int


class CalendarOut(BaseModel):
    url: str
