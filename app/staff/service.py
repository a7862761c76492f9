"""Staff accounts, enrolment, sign-in and server-side sessions. Services flush; callers commit."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import AuditAction, audit_service
from app.kit.clock import utcnow
from app.kit.ids import new_token, token_digest
from app.lines.repository import LineRepository
from app.models import Enrolment, LineMembership, Staff, StaffSession
from app.models.enums import Qualification, StaffRole
from app.settings import Settings
from app.staff import totp
from app.staff.passwords import hash_password, needs_rehash, password_problem, verify_password
from app.staff.permissions import Permission, may_manage, staff_grants
from app.staff.repository import (
    EnrolmentRepository,
    LineMembershipRepository,
    RecoveryCodeRepository,
    StaffRepository,
    StaffSessionRepository,
)
from app.staff.schemas import LineAssignment, StaffInvite, StaffUpdate


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
    """A staff change that cannot be made; the message says why, `status` how to answer."""

    status = 422


class OnCallError(StaffError):
    """Someone on a line's on-call list who may not be there (`index` in the list)."""

    def __init__(self, index: int, kind: str, message: str, alias: str = "") -> None:
        super().__init__(message)
        self.index, self.kind, self.alias = index, kind, alias


class StaffNotFoundError(StaffError):
    status = 404


class StaffConflictError(StaffError):
    status = 409


class StaffForbiddenError(StaffError):
    status = 403


class EnrolmentGoneError(StaffError):
    status = 410

    def __init__(self) -> None:
        super().__init__("this enrolment link has expired or was already used")


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    staff: Staff
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedEnrolment:
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class EnrolmentResult:
    staff: Staff
    recovery_codes: list[str]


def second_factor_needed(staff: Staff, settings: Settings) -> bool:
    """TOTP is mandatory for every role; only demo accounts in development go without."""
    if staff.totp_secret is not None:
        return True
    if staff.is_demo and settings.is_development:
        return False
    return settings.totp_required


def _check_profile(
    role: StaffRole,
    qualification: Qualification | None,
    peer: bool,
    supervisor: bool,
    lines: Sequence[LineAssignment],
    languages: Sequence[str] = ("-",),
) -> None:
    if role is StaffRole.counsellor:
        if qualification is None:
            raise StaffError(
                "a counsellor needs a qualification (psychologist, volunteer or interpreter)"
            )
        if qualification is Qualification.interpreter:
            # An interpreter is asked for by language, and answers no chat of their own.
            if not languages:
                raise StaffError("an interpreter needs the languages they interpret")
            if peer or supervisor:
                raise StaffError("an interpreter has no peer or supervisor flag")
        return
    if qualification is not None or peer or supervisor:
        raise StaffError("only counsellors have a qualification, peer or supervisor flag")
    if lines:
        raise StaffError("only counsellors work on lines")


class StaffService:
    # Accounts ------------------------------------------------------------------------------

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
            raise StaffConflictError(f"a staff member named {username!r} already exists")
        _check_profile(role, qualification, peer, supervisor, (), languages or [])
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

    async def require(self, session: AsyncSession, staff_id: uuid.UUID) -> Staff:
        staff = await StaffRepository(session).get(staff_id)
        if staff is None:
            raise StaffNotFoundError("no such staff member")
        return staff

    async def list_all(self, session: AsyncSession) -> Sequence[Staff]:
        return await StaffRepository(session).list_all()

    async def check_on_call(self, session: AsyncSession, staff_ids: Sequence[str]) -> None:
        """Everyone on a line's on-call list must be an active staff member who may supervise:
        an acute alert sends them to the Supervise screen."""
        repository = StaffRepository(session)
        for index, staff_id in enumerate(staff_ids):
            person = await repository.get(uuid.UUID(staff_id))
            if person is None or not person.is_active:
                raise OnCallError(index, "on_call_unknown", "there is no such active staff member")
            if Permission.supervise not in staff_grants(person):
                raise OnCallError(
                    index,
                    "on_call_not_supervisor",
                    f"{person.alias} does not supervise chats",
                    person.alias,
                )

    async def leave_on_call(self, session: AsyncSession, actor: Staff, staff: Staff) -> list[str]:
        """Take someone who may no longer supervise off every line's on-call list; the keys of
        the lines changed."""
        if staff.is_active and Permission.supervise in staff_grants(staff):
            return []
        changed = []
        for line in await LineRepository(session).list_active():
            if str(staff.id) in (line.on_call or []):
                line.on_call = [s for s in line.on_call if s != str(staff.id)]
                changed.append(line.key)
                await audit_service.record(
                    session,
                    AuditAction.line_updated,
                    actor_id=actor.id,
                    line_key=line.key,
                    detail={"fields": ["on_call"]},
                )
        await session.flush()
        return changed

    async def usernames(
        self, session: AsyncSession, ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        return await StaffRepository(session).usernames(set(ids))

    async def memberships(
        self, session: AsyncSession, staff_id: uuid.UUID
    ) -> Sequence[LineMembership]:
        return await LineMembershipRepository(session).for_staff(staff_id)

    async def invite(
        self, session: AsyncSession, actor: Staff, data: StaffInvite, settings: Settings
    ) -> tuple[Staff, IssuedEnrolment]:
        """A new account without password or TOTP, and its one-time enrolment link."""
        if not may_manage(staff_grants(actor), data.role):
            raise StaffForbiddenError(f"your role may not create {data.role.value} accounts")
        _check_profile(
            data.role,
            data.qualification,
            data.is_peer,
            data.is_supervisor,
            data.lines,
            data.languages,
        )
        await self._check_lines(session, data.lines)
        staff = await self.create(
            session,
            username=data.username,
            alias=data.alias,
            role=data.role,
            password=None,
            qualification=data.qualification,
            languages=list(data.languages),
            capacity=data.capacity,
            peer=data.is_peer,
            supervisor=data.is_supervisor,
        )
        for assignment in data.lines:
            await self.set_membership(session, staff, assignment.key)
        issued = await self.issue_enrolment(session, staff, settings)
        await audit_service.record(
            session,
            AuditAction.staff_invited,
            actor_id=actor.id,
            target_staff_id=staff.id,
            detail={"role": staff.role.value, "lines": [a.key for a in data.lines]},
        )
        return staff, issued

    async def _check_lines(self, session: AsyncSession, lines: Sequence[LineAssignment]) -> None:
        repository = LineRepository(session)
        for assignment in lines:
            line = await repository.get(assignment.key)
            if line is None or not line.is_active:
                raise StaffError(f"there is no line {assignment.key!r}")

    async def update(
        self, session: AsyncSession, actor: Staff, staff: Staff, data: StaffUpdate
    ) -> list[str]:
        """Apply the given fields; the names of those that changed."""
        actor_grants = staff_grants(actor)
        if not may_manage(actor_grants, staff.role) or (
            data.role is not None and not may_manage(actor_grants, data.role)
        ):
            raise StaffForbiddenError("your role may not change this account or give this role")
        changes: dict[str, Any] = data.model_dump(exclude_unset=True, exclude={"lines"})
        for name, value in changes.items():
            if value is None and name != "qualification":
                raise StaffError(f"{name} cannot be null")
        role = changes.get("role", staff.role)
        if data.role is not None and data.role is not StaffRole.counsellor:
            # Leaving the counsellor role drops what only counsellors have.
            changes.setdefault("qualification", None)
            changes.setdefault("is_peer", False)
            changes.setdefault("is_supervisor", False)
        lines = data.lines
        if lines is None and role is not StaffRole.counsellor:
            lines = [] if staff.role is StaffRole.counsellor else None
        _check_profile(
            role,
            changes.get("qualification", staff.qualification),
            changes.get("is_peer", staff.is_peer),
            changes.get("is_supervisor", staff.is_supervisor),
            lines or (),
            changes.get("languages", staff.languages),
        )
        if staff.id == actor.id and "role" in changes and changes["role"] is not staff.role:
            raise StaffConflictError("you cannot change your own role")
        if staff.role is StaffRole.admin and role is not StaffRole.admin:
            await self._keep_an_admin(session, staff)
        changed = []
        for name, value in changes.items():
            if getattr(staff, name) != value:
                setattr(staff, name, value)
                changed.append(name)
        if lines is not None:
            await self._check_lines(session, lines)
            if await self._set_lines(session, staff, lines):
                changed.append("lines")
        await session.flush()
        if changed:
            await audit_service.record(
                session,
                AuditAction.staff_updated,
                actor_id=actor.id,
                target_staff_id=staff.id,
                detail={
                    "fields": changed,
                    **({"role": staff.role.value} if "role" in changed else {}),
                    **({"lines": [a.key for a in lines]} if lines is not None else {}),
                },
            )
        return changed

    async def _set_lines(
        self, session: AsyncSession, staff: Staff, lines: Sequence[LineAssignment]
    ) -> bool:
        repository = LineMembershipRepository(session)
        current = {m.line_key: m for m in await repository.for_staff(staff.id)}
        wanted = {a.key for a in lines}
        changed = False
        for key, old in current.items():
            if key not in wanted:
                await repository.delete(old)
                changed = True
        for key in wanted - set(current):
            await repository.add(LineMembership(staff_id=staff.id, line_key=key))
            changed = True
        return changed

    async def _keep_an_admin(self, session: AsyncSession, leaving: Staff) -> None:
        admins = await StaffRepository(session).active_admins()
        if all(admin.id == leaving.id for admin in admins):
            raise StaffConflictError("this is the last active admin; make another admin first")

    async def deactivate(self, session: AsyncSession, actor: Staff, staff: Staff) -> None:
        """No more sign-in; every session ends. The caller frees their chats after commit."""
        if not may_manage(staff_grants(actor), staff.role):
            raise StaffForbiddenError("your role may not deactivate this account")
        if staff.id == actor.id:
            raise StaffConflictError("you cannot deactivate yourself")
        if staff.role is StaffRole.admin:
            await self._keep_an_admin(session, staff)
        staff.is_active = False
        await StaffSessionRepository(session).delete_for_staff(staff.id)
        await EnrolmentRepository(session).delete_for_staff(staff.id)
        await session.flush()
        await audit_service.record(
            session, AuditAction.staff_deactivated, actor_id=actor.id, target_staff_id=staff.id
        )

    async def reactivate(self, session: AsyncSession, actor: Staff, staff: Staff) -> None:
        if not may_manage(staff_grants(actor), staff.role):
            raise StaffForbiddenError("your role may not reactivate this account")
        if staff.is_active:
            raise StaffConflictError("this account is active")
        staff.is_active = True
        await session.flush()
        await audit_service.record(
            session, AuditAction.staff_reactivated, actor_id=actor.id, target_staff_id=staff.id
        )

    async def reset(
        self,
        session: AsyncSession,
        actor: Staff,
        staff: Staff,
        settings: Settings,
        *,
        password: bool,
        totp_reset: bool,
    ) -> IssuedEnrolment:
        """Clear the password and/or TOTP, end every session, and issue a new enrolment link."""
        if not may_manage(staff_grants(actor), staff.role):
            raise StaffForbiddenError("your role may not reset this account")
        if staff.id == actor.id:
            raise StaffConflictError("ask another coordinator or admin to reset your account")
        return await self.reset_account(
            session, staff, settings, password=password, totp_reset=totp_reset, actor_id=actor.id
        )

    async def reset_account(
        self,
        session: AsyncSession,
        staff: Staff,
        settings: Settings,
        *,
        password: bool,
        totp_reset: bool,
        actor_id: uuid.UUID | None,
    ) -> IssuedEnrolment:
        """The reset itself; `actor_id` None is the operator at the command line."""
        if not staff.is_active:
            raise StaffConflictError("reactivate the account first")
        if password:
            staff.password_hash = None
        if totp_reset:
            staff.totp_secret = None
            staff.totp_last_step = None
            await RecoveryCodeRepository(session).delete_for_staff(staff.id)
        await StaffSessionRepository(session).delete_for_staff(staff.id)
        issued = await self.issue_enrolment(session, staff, settings)
        await audit_service.record(
            session,
            AuditAction.staff_reset,
            actor_id=actor_id,
            target_staff_id=staff.id,
            detail={"password": password, "totp": totp_reset},
        )
        return issued

    async def set_membership(
        self, session: AsyncSession, staff: Staff, line_key: str
    ) -> LineMembership:
        """The staff member works on the line (duty there comes from the roster)."""
        repository = LineMembershipRepository(session)
        membership = await repository.get_pair(staff.id, line_key)
        if membership is None:
            return await repository.add(LineMembership(staff_id=staff.id, line_key=line_key))
        return membership

    # Enrolment -----------------------------------------------------------------------------

    async def issue_enrolment(
        self, session: AsyncSession, staff: Staff, settings: Settings
    ) -> IssuedEnrolment:
        """A one-time link; any earlier link of this person stops working."""
        repository = EnrolmentRepository(session)
        await repository.delete_for_staff(staff.id)
        token = new_token()
        now = utcnow()
        expires_at = now + timedelta(hours=settings.enrolment_hours)
        await repository.add(
            Enrolment(
                token_digest=token_digest(token),
                staff_id=staff.id,
                created_at=now,
                expires_at=expires_at,
            )
        )
        return IssuedEnrolment(token, expires_at)

    async def open_enrolment(self, session: AsyncSession, token: str) -> tuple[Enrolment, Staff]:
        repository = EnrolmentRepository(session)
        enrolment = await repository.get(token_digest(token))
        if enrolment is None:
            raise EnrolmentGoneError
        staff = await StaffRepository(session).get(enrolment.staff_id)
        if enrolment.expires_at <= utcnow() or staff is None or not staff.is_active:
            await repository.delete(enrolment)
            raise EnrolmentGoneError
        return enrolment, staff

    async def code_hint(
        self, session: AsyncSession, settings: Settings
    ) -> Literal["demo", "optional"] | None:
        """Whether this deployment lets some accounts sign in without a code (never which)."""
        if not settings.totp_required:
            return "optional"
        if settings.is_development and await StaffRepository(session).any_demo():
            return "demo"
        return None

    def needs_totp(self, staff: Staff, settings: Settings) -> bool:
        return staff.totp_secret is None and second_factor_needed(staff, settings)

    async def start_totp(
        self, session: AsyncSession, token: str, settings: Settings
    ) -> tuple[str, str]:
        """A fresh TOTP secret for the enrolment (secret, otpauth URI); confirmed by a code."""
        enrolment, staff = await self.open_enrolment(session, token)
        if staff.totp_secret is not None:
            raise StaffConflictError("TOTP is already set up for this account")
        secret = totp.new_secret()
        enrolment.pending_totp_secret = totp.seal(
            settings.secret_key.get_secret_value(), secret, bound_to=str(staff.id)
        )
        await session.flush()
        return secret, totp.provisioning_uri(secret, staff.username)

    async def complete_enrolment(
        self,
        session: AsyncSession,
        token: str,
        settings: Settings,
        *,
        password: str | None,
        code: str | None,
    ) -> EnrolmentResult:
        enrolment, staff = await self.open_enrolment(session, token)
        needs_password = staff.password_hash is None
        needs_totp = self.needs_totp(staff, settings)
        if needs_password:
            if password is None:
                raise StaffError("choose a password")
            problem = password_problem(
                password,
                min_length=settings.password_min_length,
                personal=(staff.username, staff.alias),
            )
            if problem is not None:
                raise StaffError(f"password refused: {problem}")
        elif password is not None:
            raise StaffError("this link does not set a password")
        codes: list[str] = []
        if needs_totp:
            if enrolment.pending_totp_secret is None:
                raise StaffError("set up TOTP first (POST /api/enrolment/totp)")
            if code is None:
                raise StaffError("enter the code your authenticator app shows")
            try:
                secret = totp.unseal(
                    settings.secret_key.get_secret_value(),
                    enrolment.pending_totp_secret,
                    bound_to=str(staff.id),
                )
            except totp.SealError:
                raise StaffError("set up TOTP again (POST /api/enrolment/totp)") from None
            step = totp.matching_step(secret, code, after=None)
            if step < 0:
                raise StaffError("the code does not match; check the time on your phone")
            staff.totp_secret = totp.seal(
                settings.secret_key.get_secret_value(), secret, bound_to=str(staff.id)
            )
            staff.totp_last_step = step
            recovery = totp.new_recovery_codes()
            await RecoveryCodeRepository(session).replace(staff.id, recovery.digests)
            codes = recovery.codes
        if needs_password and password is not None:
            staff.password_hash = hash_password(password)
        await EnrolmentRepository(session).delete(enrolment)
        await audit_service.record(
            session,
            AuditAction.enrolment_completed,
            actor_id=staff.id,
            detail={"password": needs_password, "totp": needs_totp},
        )
        return EnrolmentResult(staff, codes)

    # Sign-in -------------------------------------------------------------------------------

    async def authenticate(
        self, session: AsyncSession, username: str, password: str
    ) -> Staff | None:
        """The staff member if the password is right; the same work is done either way."""
        staff = await StaffRepository(session).by_username(username.strip().lower())
        ok = verify_password(staff.password_hash if staff else None, password)
        if staff is None or not ok or not staff.is_active:
            return None
        if staff.password_hash is not None and needs_rehash(staff.password_hash):
            staff.password_hash = hash_password(password)
        return staff

    async def find(self, session: AsyncSession, username: str) -> Staff | None:
        return await StaffRepository(session).by_username(username.strip().lower())

    async def check_second_factor(
        self, session: AsyncSession, staff: Staff, code: str | None, settings: Settings
    ) -> str | None:
        """How the second factor was given ("totp", "recovery_code"), or None if it was not."""
        if code is None or staff.totp_secret is None:
            return None
        if totp.looks_like_recovery_code(code):
            used = await RecoveryCodeRepository(session).use(staff.id, totp.recovery_digest(code))
            return "recovery_code" if used else None
        try:
            secret = totp.unseal(
                settings.secret_key.get_secret_value(), staff.totp_secret, bound_to=str(staff.id)
            )
        except totp.SealError:
            return None
        step = totp.matching_step(secret, code, after=staff.totp_last_step)
        # Compare-and-set in SQL: two requests with the same code cannot both pass.
        if step < 0 or not await StaffRepository(session).advance_totp_step(staff.id, step):
            return None
        return "totp"

    async def recovery_codes_left(self, session: AsyncSession, staff_id: uuid.UUID) -> int:
        return await RecoveryCodeRepository(session).count(staff_id)

    async def open_session(
        self,
        session: AsyncSession,
        staff: Staff,
        *,
        absolute: timedelta,
        replaces: str | None = None,
    ) -> NewSession:
        """A new session (rotated: the one the browser had, if any, ends)."""
        repository = StaffSessionRepository(session)
        if replaces is not None:
            old = await repository.get(token_digest(replaces))
            if old is not None:
                await repository.delete(old)
        token = new_token()
        now = utcnow()
        expires_at = now + absolute
        await repository.add(
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

    async def sessions_alive(
        self, session: AsyncSession, digests: Collection[str], *, idle: timedelta
    ) -> dict[str, bool]:
        """For open WebSockets: is each session they were opened with still alive (the live
        ones are touched)? Two queries however many."""
        records = await StaffSessionRepository(session).by_digests(digests)
        now = utcnow()
        live = {
            digest: record
            for digest, record in records.items()
            if record.expires_at > now and record.last_seen_at + idle > now
        }
        staff = await StaffRepository(session).by_ids({r.staff_id for r in live.values()})
        out = dict.fromkeys(digests, False)
        for digest, record in live.items():
            person = staff.get(record.staff_id)
            if person is not None and person.is_active:
                record.last_seen_at = now
                out[digest] = True
        return out

    async def close_session(self, session: AsyncSession, token: str) -> uuid.UUID | None:
        repository = StaffSessionRepository(session)
        record = await repository.get(token_digest(token))
        if record is None:
            return None
        await repository.delete(record)
        return record.staff_id


def grants_of(staff: Staff) -> list[str]:
    return sorted(p.value for p in staff_grants(staff))


staff_service = StaffService()
