"""Staff accounts, sign-in and server-side sessions. Services flush; callers commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.clock import utcnow
from app.kit.ids import new_token, token_digest
from app.models import LineMembership, Staff, StaffSession
from app.models.enums import Qualification, StaffRole
from app.staff.passwords import hash_password, needs_rehash, verify_password
from app.staff.repository import (
    LineMembershipRepository,
    StaffRepository,
    StaffSessionRepository,
)


@dataclass(frozen=True, slots=True)
class StaffContext:
    """A signed-in staff member as the chat code needs them; built from SQL at connect."""

    id: str
    username: str
    alias: str
    role: StaffRole
    qualification: Qualification | None
    capacity: int
    languages: tuple[str, ...]
    peer: bool
    supervisor: bool

    @classmethod
    def from_model(cls, staff: Staff) -> StaffContext:
        return cls(
            id=str(staff.id),
            username=staff.username,
            alias=staff.alias,
            role=staff.role,
            qualification=staff.qualification,
            capacity=staff.capacity,
            languages=tuple(staff.languages),
            peer=staff.is_peer,
            supervisor=staff.is_supervisor,
        )


class StaffError(ValueError):
    """A staff change that cannot be made; the message says why."""


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    staff: Staff
    expires_at: datetime


class StaffService:
    async def create(
        self,
        session: AsyncSession,
        *,
        username: str,
        alias: str,
        role: StaffRole,
        password: str | None,
        qualification: Qualification | None = None,
        languages: list[str] | None = None,
        capacity: int = 2,
        peer: bool = False,
        supervisor: bool = False,
        demo: bool = False,
    ) -> Staff:
        repository = StaffRepository(session)
        if await repository.by_username(username) is not None:
            raise StaffError(f"a staff member named {username!r} already exists")
        if role is StaffRole.counsellor and qualification is None:
            raise StaffError("a counsellor needs a qualification (psychologist or volunteer)")
        if not 1 <= capacity <= 5:
            raise StaffError("capacity must be between 1 and 5")
        return await repository.add(
            Staff(
                username=username,
                alias=alias,
                role=role,
                qualification=qualification,
                languages=list(languages or []),
                capacity=capacity,
                is_peer=peer,
                is_supervisor=supervisor,
                password_hash=hash_password(password) if password else None,
                is_active=True,
                is_demo=demo,
            )
        )

    async def get(self, session: AsyncSession, staff_id: uuid.UUID) -> Staff | None:
        return await StaffRepository(session).get(staff_id)

    async def authenticate(
        self, session: AsyncSession, username: str, password: str
    ) -> Staff | None:
        """The staff member if the password is right; the same work is done either way."""
        staff = await StaffRepository(session).by_username(username)
        ok = verify_password(staff.password_hash if staff else None, password)
        if staff is None or not ok or not staff.is_active:
            return None
        if staff.password_hash is not None and needs_rehash(staff.password_hash):
            staff.password_hash = hash_password(password)
        return staff

    async def open_session(
        self, session: AsyncSession, staff: Staff, *, absolute: timedelta
    ) -> NewSession:
        token = new_token()
        now = utcnow()
        expires_at = now + absolute
        await StaffSessionRepository(session).add(
            StaffSession(
                token_digest=token_digest(token),
                staff_id=staff.id,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
            )
        )
        return NewSession(token=token, staff=staff, expires_at=expires_at)

    async def resolve_session(
        self, session: AsyncSession, token: str, *, idle: timedelta
    ) -> Staff | None:
        """The staff member behind a session token, if the session is alive; touches it."""
        repository = StaffSessionRepository(session)
        record = await repository.get(token_digest(token))
        if record is None:
            return None
        now = utcnow()
        if record.expires_at <= now or record.last_seen_at + idle <= now:
            await repository.delete(record)
            return None
        staff = await StaffRepository(session).get(record.staff_id)
        if staff is None or not staff.is_active:
            return None
        record.last_seen_at = now
        return staff

    async def close_session(self, session: AsyncSession, token: str) -> None:
        repository = StaffSessionRepository(session)
        record = await repository.get(token_digest(token))
        if record is not None:
            await repository.delete(record)

    async def set_membership(
        self, session: AsyncSession, staff: Staff, line_key: str
    ) -> LineMembership:
        """The staff member works on the line (duty there comes from the roster)."""
        repository = LineMembershipRepository(session)
        membership = await repository.get_pair(staff.id, line_key)
        if membership is None:
            return await repository.add(LineMembership(staff_id=staff.id, line_key=line_key))
        return membership


staff_service = StaffService()
