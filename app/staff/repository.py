from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select

from app.kit.repository import RepositoryBase
from app.models import LineMembership, Staff, StaffSession


class StaffRepository(RepositoryBase[Staff]):
    model = Staff

    async def by_username(self, username: str) -> Staff | None:
        return await self.get_one_or_none(self.select().where(Staff.username == username))

    async def list_all(self) -> Sequence[Staff]:
        return await self.get_all(self.select().order_by(Staff.username))


class StaffSessionRepository(RepositoryBase[StaffSession]):
    model = StaffSession

    async def delete_for_staff(self, staff_id: uuid.UUID) -> None:
        await self.session.execute(delete(StaffSession).where(StaffSession.staff_id == staff_id))

    async def delete_expired(self, now: datetime) -> None:
        await self.session.execute(delete(StaffSession).where(StaffSession.expires_at <= now))


class LineMembershipRepository(RepositoryBase[LineMembership]):
    model = LineMembership

    async def for_staff(self, staff_id: uuid.UUID) -> Sequence[LineMembership]:
        return await self.get_all(
            select(LineMembership)
            .where(LineMembership.staff_id == staff_id)
            .order_by(LineMembership.line_key)
        )

    async def get_pair(self, staff_id: uuid.UUID, line_key: str) -> LineMembership | None:
        return await self.session.get(LineMembership, (staff_id, line_key))
