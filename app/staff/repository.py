from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update

from app.kit.repository import RepositoryBase
from app.models import Enrolment, LineMembership, RecoveryCode, Staff, StaffSession
from app.models.enums import StaffRole


class StaffRepository(RepositoryBase[Staff]):
    model = Staff

    async def by_username(self, username: str) -> Staff | None:
        return await self.get_one_or_none(self.select().where(Staff.username == username))

    async def list_all(self) -> Sequence[Staff]:
        return await self.get_all(self.select().order_by(Staff.username))

    async def active_admins(self) -> Sequence[Staff]:
        return await self.get_all(
            self.select().where(Staff.role == StaffRole.admin, Staff.is_active.is_(True))
        )

    async def any_demo(self) -> bool:
        found = await self.session.scalar(
            select(Staff.id).where(Staff.is_demo.is_(True), Staff.is_active.is_(True)).limit(1)
        )
        return found is not None

    async def usernames(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        wanted = list(ids)
        if not wanted:
            return {}
        result = await self.session.execute(
            select(Staff.id, Staff.username).where(Staff.id.in_(wanted))
        )
        return {row.id: row.username for row in result}

    async def by_ids(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Staff]:
        wanted = list(ids)
        if not wanted:
            return {}
        return {
            staff.id: staff
            for staff in await self.get_all(self.select().where(Staff.id.in_(wanted)))
        }

    async def advance_totp_step(self, staff_id: uuid.UUID, step: int) -> bool:
        """Record `step` as used if it is newer than the last used one (compare-and-set)."""
        result = await self.session.execute(
            update(Staff)
            .where(
                Staff.id == staff_id,
                or_(Staff.totp_last_step.is_(None), Staff.totp_last_step < step),
            )
            .values(totp_last_step=step)
            .execution_options(synchronize_session="fetch")
        )
        return bool(getattr(result, "rowcount", 0))


class StaffSessionRepository(RepositoryBase[StaffSession]):
    model = StaffSession

    async def by_digests(self, digests: Iterable[str]) -> dict[str, StaffSession]:
        wanted = list(digests)
        if not wanted:
            return {}
        found = await self.get_all(self.select().where(StaffSession.token_digest.in_(wanted)))
        return {record.token_digest: record for record in found}

    async def delete_for_staff(self, staff_id: uuid.UUID) -> None:
        await self.session.execute(delete(StaffSession).where(StaffSession.staff_id == staff_id))

    async def delete_expired(self, now: datetime) -> None:
        await self.session.execute(delete(StaffSession).where(StaffSession.expires_at <= now))


class EnrolmentRepository(RepositoryBase[Enrolment]):
    model = Enrolment

    async def delete_for_staff(self, staff_id: uuid.UUID) -> None:
        await self.session.execute(delete(Enrolment).where(Enrolment.staff_id == staff_id))


class RecoveryCodeRepository(RepositoryBase[RecoveryCode]):
    model = RecoveryCode

    async def replace(self, staff_id: uuid.UUID, digests: Sequence[str]) -> None:
        await self.delete_for_staff(staff_id)
        for digest in digests:
            self.session.add(RecoveryCode(digest=digest, staff_id=staff_id))
        await self.session.flush()

    async def use(self, staff_id: uuid.UUID, digest: str) -> bool:
        """Spend a code: true once, for the one request whose DELETE removed the row."""
        result = await self.session.execute(
            delete(RecoveryCode).where(
                RecoveryCode.staff_id == staff_id, RecoveryCode.digest == digest
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def count(self, staff_id: uuid.UUID) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(RecoveryCode).where(RecoveryCode.staff_id == staff_id)
        )
        return int(result.scalar_one())

    async def delete_for_staff(self, staff_id: uuid.UUID) -> None:
        await self.session.execute(delete(RecoveryCode).where(RecoveryCode.staff_id == staff_id))


class LineMembershipRepository(RepositoryBase[LineMembership]):
    model = LineMembership

    async def for_staff(self, staff_id: uuid.UUID) -> Sequence[LineMembership]:
        return await self.get_all(
            select(LineMembership)
            .where(LineMembership.staff_id == staff_id)
            .order_by(LineMembership.line_key)
        )

    async def for_staff_many(self, ids: Iterable[uuid.UUID]) -> Sequence[LineMembership]:
        return await self.get_all(
            select(LineMembership)
            .where(LineMembership.staff_id.in_(list(ids)))
            .order_by(LineMembership.line_key)
        )

    async def get_pair(self, staff_id: uuid.UUID, line_key: str) -> LineMembership | None:
        return await self.session.get(LineMembership, (staff_id, line_key))
