"""SQL of the roster domain."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import date, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.repository import RepositoryBase
from app.models import (
    CalendarFeed,
    DropRequest,
    DropState,
    DutyAddition,
    ExtraShift,
    Line,
    LineMembership,
    RosterClosure,
    ShiftAssignment,
    ShiftPattern,
    Staff,
)


class PatternRepository(RepositoryBase[ShiftPattern]):
    model = ShiftPattern

    async def for_line(self, line_key: str) -> Sequence[ShiftPattern]:
        return await self.get_all(
            self.select()
            .where(ShiftPattern.line_key == line_key)
            .order_by(ShiftPattern.start_minute, ShiftPattern.id)
        )

    async def by_ids(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, ShiftPattern]:
        if not ids:
            return {}
        rows = await self.get_all(self.select().where(ShiftPattern.id.in_(ids)))
        return {row.id: row for row in rows}

    async def lock(self, pattern_id: uuid.UUID) -> ShiftPattern | None:
        """The pattern, locked until commit so sign-ups for its places are counted one by one."""
        return await self.get_one_or_none(
            self.select().where(ShiftPattern.id == pattern_id).with_for_update()
        )


class ExtraShiftRepository(RepositoryBase[ExtraShift]):
    model = ExtraShift

    async def for_line(self, line_key: str, first: date, last: date) -> Sequence[ExtraShift]:
        return await self.get_all(
            self.select()
            .where(ExtraShift.line_key == line_key, ExtraShift.day >= first, ExtraShift.day <= last)
            .order_by(ExtraShift.day, ExtraShift.start_minute)
        )

    async def by_ids(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, ExtraShift]:
        if not ids:
            return {}
        rows = await self.get_all(self.select().where(ExtraShift.id.in_(ids)))
        return {row.id: row for row in rows}

    async def lock(self, extra_id: uuid.UUID) -> ExtraShift | None:
        return await self.get_one_or_none(
            self.select().where(ExtraShift.id == extra_id).with_for_update()
        )


class ClosureRepository(RepositoryBase[RosterClosure]):
    model = RosterClosure

    async def for_lines(self, line_keys: Collection[str]) -> Sequence[RosterClosure]:
        if not line_keys:
            return []
        return await self.get_all(
            self.select()
            .where(RosterClosure.line_key.in_(line_keys))
            .order_by(RosterClosure.first_day)
        )


class AssignmentRepository(RepositoryBase[ShiftAssignment]):
    model = ShiftAssignment

    async def for_staff(self, staff_ids: Collection[uuid.UUID]) -> Sequence[ShiftAssignment]:
        if not staff_ids:
            return []
        return await self.get_all(self.select().where(ShiftAssignment.staff_id.in_(staff_ids)))

    async def for_line(self, line_key: str) -> Sequence[ShiftAssignment]:
        return await self.get_all(self.select().where(ShiftAssignment.line_key == line_key))

    async def for_pattern(self, pattern_id: uuid.UUID) -> Sequence[ShiftAssignment]:
        return await self.get_all(self.select().where(ShiftAssignment.pattern_id == pattern_id))

    async def for_extra(self, extra_id: uuid.UUID) -> Sequence[ShiftAssignment]:
        return await self.get_all(self.select().where(ShiftAssignment.extra_shift_id == extra_id))


class DropRequestRepository(RepositoryBase[DropRequest]):
    model = DropRequest

    async def for_assignments(
        self, assignment_ids: Collection[uuid.UUID], states: Collection[DropState]
    ) -> Sequence[DropRequest]:
        if not assignment_ids:
            return []
        return await self.get_all(
            self.select().where(
                DropRequest.assignment_id.in_(assignment_ids), DropRequest.state.in_(states)
            )
        )

    async def listing(
        self, state: DropState | None, line_key: str | None
    ) -> Sequence[tuple[DropRequest, ShiftAssignment]]:
        statement = select(DropRequest, ShiftAssignment).join(
            ShiftAssignment, ShiftAssignment.id == DropRequest.assignment_id
        )
        if state is not None:
            statement = statement.where(DropRequest.state == state)
        if line_key is not None:
            statement = statement.where(ShiftAssignment.line_key == line_key)
        result = await self.session.execute(statement.order_by(DropRequest.created_at))
        return [(row[0], row[1]) for row in result.all()]


class DutyAdditionRepository(RepositoryBase[DutyAddition]):
    model = DutyAddition

    async def for_staff(
        self, staff_ids: Collection[uuid.UUID], start: datetime, end: datetime
    ) -> Sequence[DutyAddition]:
        """Additions of these staff members that overlap [start, end)."""
        if not staff_ids:
            return []
        return await self.get_all(
            self.select().where(
                DutyAddition.staff_id.in_(staff_ids),
                DutyAddition.ends_at > start,
                DutyAddition.starts_at < end,
            )
        )

    async def for_line(
        self, line_key: str, start: datetime, end: datetime
    ) -> Sequence[DutyAddition]:
        return await self.get_all(
            self.select()
            .where(
                DutyAddition.line_key == line_key,
                DutyAddition.ends_at > start,
                DutyAddition.starts_at < end,
            )
            .order_by(DutyAddition.starts_at)
        )


class CalendarFeedRepository(RepositoryBase[CalendarFeed]):
    model = CalendarFeed

    async def by_digest(self, digest: str) -> CalendarFeed | None:
        return await self.get_one_or_none(self.select().where(CalendarFeed.token_digest == digest))

    async def delete_for_staff(self, staff_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(CalendarFeed).where(CalendarFeed.staff_id == staff_id)
        )
        return bool(getattr(result, "rowcount", 0))


class RosterLookups:
    """Small lookups of other domains' rows the roster needs (lines, staff, memberships)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def line(self, key: str) -> Line | None:
        return await self.session.get(Line, key)

    async def lines(self, keys: Collection[str]) -> dict[str, Line]:
        if not keys:
            return {}
        result = await self.session.execute(select(Line).where(Line.key.in_(keys)))
        return {line.key: line for line in result.scalars()}

    async def staff(self, staff_id: uuid.UUID) -> Staff | None:
        return await self.session.get(Staff, staff_id)

    async def staff_many(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Staff]:
        if not ids:
            return {}
        result = await self.session.execute(select(Staff).where(Staff.id.in_(ids)))
        return {staff.id: staff for staff in result.scalars()}

    async def lock_staff(self, staff_id: uuid.UUID) -> Staff | None:
        """The staff row, locked until commit so two bookings of one person are checked in turn."""
        result = await self.session.execute(
            select(Staff).where(Staff.id == staff_id).with_for_update()
        )
        return result.scalars().one_or_none()

    async def member_lines(self, staff_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
        """The lines each of these people works on (everyone asked for has an entry)."""
        out: dict[uuid.UUID, set[str]] = {staff_id: set() for staff_id in staff_ids}
        if not out:
            return out
        result = await self.session.execute(
            select(LineMembership.staff_id, LineMembership.line_key).where(
                LineMembership.staff_id.in_(out)
            )
        )
        for staff_id, line_key in result:
            out[staff_id].add(line_key)
        return out

    async def is_member(self, staff_id: uuid.UUID, line_key: str) -> bool:
        return await self.session.get(LineMembership, (staff_id, line_key)) is not None

    async def add_member(self, staff_id: uuid.UUID, line_key: str) -> None:
        if not await self.is_member(staff_id, line_key):
            self.session.add(LineMembership(staff_id=staff_id, line_key=line_key))
            await self.session.flush()
