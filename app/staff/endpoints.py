"""Staff over HTTP: sign-in and sessions, one's own account, enrolment, and staff management."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse

from app.abuse.ratelimit import tag_of
from app.audit.service import AuditAction, audit_service
from app.deps import RuntimeDep, SessionDep
from app.kit.db import after_commit
from app.kit.ids import token_digest
from app.models import LineMembership, Staff
from app.runtime import Runtime
from app.staff import totp
from app.staff.permissions import ManageStaff, OwnAccount, csrf_token, public
from app.staff.repository import LineMembershipRepository
from app.staff.schemas import (
    Enrolled,
    EnrolmentComplete,
    EnrolmentLink,
    EnrolmentStatus,
    EnrolmentToken,
    LineAssignment,
    Me,
    ResetRequest,
    SessionRead,
    SignIn,
    SignInPage,
    StaffAdminRead,
    StaffInvite,
    StaffRead,
    StaffUpdate,
    StaffWithLink,
    TotpSetup,
)
from app.staff.service import (
    IssuedEnrolment,
    StaffError,
    grants_of,
    second_factor_needed,
    staff_service,
)
from app.staff.sessions import (
    clear_session_cookie,
    current_session,
    session_token,
    set_session_cookie,
)
from app.staff.throttle import SignInThrottle

router = APIRouter(prefix="/api/staff", tags=["staff"])
enrolment_router = APIRouter(prefix="/api/enrolment", tags=["enrolment"])

SIGN_IN_REFUSED = "wrong username, password or code"


def _problem(exc: StaffError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


# Sign-in and sessions ---------------------------------------------------------------------


@router.get("/session", response_model=SignInPage, dependencies=[public()])
async def sign_in_page(request: Request, session: SessionDep, runtime: RuntimeDep) -> SignInPage:
    """Whether this browser is signed in, and the sign-in form's hint about codes.

    Always 200, so the console opens the sign-in page without a failed request; the profile
    itself is `GET /api/staff/me`.
    """
    return SignInPage(
        signed_in=await current_session(request, session) is not None,
        code_hint=await staff_service.code_hint(session, runtime.settings),
    )


@router.post("/session", response_model=SessionRead, dependencies=[public()])
async def sign_in(
    body: SignIn, request: Request, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """Sign in with username, password and a TOTP or recovery code; sets the session cookie.

    Every refusal looks the same, whether the account exists or not; repeated failures slow
    down and then lock the username and the client.
    """
    settings = runtime.settings
    throttle = SignInThrottle(runtime.broker, settings)
    account = throttle.account(body.username)
    # The address itself is gone by now: the limits middleware left only its keyed hash.
    tag = tag_of(request.scope)
    client = throttle.for_client(tag.current if tag is not None else "unknown")
    now = runtime.broker.now()
    wait = await throttle.wait_seconds(account, client, now=now)
    if wait > 0:
        return JSONResponse(
            {"detail": f"too many failed sign-ins; try again in {wait} seconds"},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(wait)},
        )
    staff = await staff_service.authenticate(session, body.username, body.password)
    if staff is not None and staff.is_demo and not settings.is_development:
        staff = None
    reason = "password"
    factor: str | None = None
    if staff is not None and second_factor_needed(staff, settings):
        factor = await staff_service.check_second_factor(session, staff, body.code, settings)
        if factor is None:
            reason = "code" if staff.totp_secret is not None else "not_enrolled"
            staff = None
    if staff is None:
        # The response is built, not raised, so the audit entry is committed with it.
        known = await staff_service.find(session, body.username)
        # The wait runs from the refusal, not from the request: checking the password takes
        # long on a loaded server, and the wait would otherwise be over before it was told.
        refused_at = runtime.broker.now()
        await throttle.failed(client, now=refused_at)
        failure = await throttle.failed(account, now=refused_at)
        if known is not None:
            await audit_service.record(
                session,
                AuditAction.sign_in_failed,
                actor_id=known.id,
                detail={"reason": reason if known.password_hash else "not_enrolled"},
            )
            if failure.locked:
                await audit_service.record(
                    session,
                    AuditAction.sign_in_locked,
                    actor_id=known.id,
                    detail={"minutes": settings.sign_in_lock_minutes},
                )
        else:
            await audit_service.record(
                session, AuditAction.sign_in_failed, actor_id=None, detail={"reason": "unknown"}
            )
        return JSONResponse({"detail": SIGN_IN_REFUSED}, status_code=status.HTTP_401_UNAUTHORIZED)
    await throttle.succeeded(account)
    new = await staff_service.open_session(
        session,
        staff,
        absolute=timedelta(hours=settings.session_absolute_hours),
        replaces=session_token(request, settings),
    )
    # Before the console can connect with the new session: it starts away (docs/console.md).
    signed_in = str(staff.id)
    after_commit(session, lambda: runtime.chats.staffing.signed_in(signed_in))
    await audit_service.record(
        session,
        AuditAction.sign_in,
        actor_id=staff.id,
        detail={"factor": factor or "none"},
    )
    left = (
        await staff_service.recovery_codes_left(session, staff.id)
        if staff.totp_secret is not None
        else None
    )
    body_out = SessionRead(
        staff=StaffRead.model_validate(staff),
        csrf_token=csrf_token(settings, new.token),
        expires_at=new.expires_at,
        recovery_codes_left=left,
    )
    response = JSONResponse(body_out.model_dump(mode="json"))
    set_session_cookie(response, settings, new.token)
    return response


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(
    request: Request,
    response: Response,
    session: SessionDep,
    runtime: RuntimeDep,
    staff: OwnAccount,
) -> None:
    """End this session; its staff WebSockets close."""
    token = session_token(request, runtime.settings)
    if token is not None:
        await staff_service.close_session(session, token)
        await audit_service.record(session, AuditAction.sign_out, actor_id=staff.id)
        ended = str(staff.id), token_digest(token)
        after_commit(session, lambda: runtime.chats.staffing.end_sessions(*ended))
    clear_session_cookie(response, runtime.settings)


@router.get("/me", response_model=Me)
async def me(request: Request, staff: OwnAccount, session: SessionDep, runtime: RuntimeDep) -> Me:
    """One's own profile, permissions, lines, and the CSRF token of this session."""
    token = session_token(request, runtime.settings) or ""
    memberships = await staff_service.memberships(session, staff.id)
    return Me(
        **StaffRead.model_validate(staff).model_dump(),
        csrf_token=csrf_token(runtime.settings, token),
        permissions=grants_of(staff),
        lines=[LineAssignment(key=m.line_key) for m in memberships],
    )


# Staff management (coordinators; admins for coordinator and admin accounts) ---------------


def _admin_read(staff: Staff, memberships: Sequence[LineMembership]) -> StaffAdminRead:
    return StaffAdminRead(
        **StaffRead.model_validate(staff).model_dump(),
        is_active=staff.is_active,
        is_demo=staff.is_demo,
        password_set=staff.password_hash is not None,
        totp_enrolled=staff.totp_secret is not None,
        lines=[LineAssignment(key=m.line_key) for m in memberships],
        created_at=staff.created_at,
    )


async def _read(session: SessionDep, staff: Staff) -> StaffAdminRead:
    return _admin_read(staff, await staff_service.memberships(session, staff.id))


def _link(runtime: Runtime, issued: IssuedEnrolment) -> EnrolmentLink:
    base = runtime.settings.public_url.rstrip("/")
    return EnrolmentLink(
        link=f"{base}/enrol#{issued.token}", token=issued.token, expires_at=issued.expires_at
    )


async def _target(session: SessionDep, staff_id: uuid.UUID) -> Staff:
    try:
        return await staff_service.require(session, staff_id)
    except StaffError as exc:
        raise _problem(exc) from None


@router.get("", response_model=list[StaffAdminRead])
async def list_staff(session: SessionDep, actor: ManageStaff) -> list[StaffAdminRead]:
    """Every staff member, active or not, with their lines."""
    everyone = await staff_service.list_all(session)
    memberships = await LineMembershipRepository(session).for_staff_many(s.id for s in everyone)
    by_staff: dict[uuid.UUID, list[LineMembership]] = {}
    for membership in memberships:
        by_staff.setdefault(membership.staff_id, []).append(membership)
    return [_admin_read(s, by_staff.get(s.id, [])) for s in everyone]


@router.post("", response_model=StaffWithLink, status_code=status.HTTP_201_CREATED)
async def invite_staff(
    body: StaffInvite, session: SessionDep, runtime: RuntimeDep, actor: ManageStaff
) -> StaffWithLink:
    """Create an account and its one-time enrolment link (password and TOTP set by the person)."""
    try:
        staff, issued = await staff_service.invite(session, actor, body, runtime.settings)
    except StaffError as exc:
        raise _problem(exc) from None
    return StaffWithLink(staff=await _read(session, staff), enrolment=_link(runtime, issued))


@router.get("/{staff_id}", response_model=StaffAdminRead)
async def get_staff(staff_id: uuid.UUID, session: SessionDep, actor: ManageStaff) -> StaffAdminRead:
    return await _read(session, await _target(session, staff_id))


@router.patch("/{staff_id}", response_model=StaffAdminRead)
async def update_staff(
    staff_id: uuid.UUID,
    body: StaffUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
    actor: ManageStaff,
) -> StaffAdminRead:
    """Change role, qualification, flags, languages, capacity or lines; only given fields."""
    staff = await _target(session, staff_id)
    try:
        changed = await staff_service.update(session, actor, staff, body)
    except StaffError as exc:
        raise _problem(exc) from None
    if changed:
        # Open staff WebSockets reload the profile (or close, if it no longer allows them).
        changed_id = str(staff.id)
        after_commit(session, lambda: runtime.chats.staffing.staff_changed(changed_id))
        if await staff_service.leave_on_call(session, actor, staff):
            after_commit(session, lambda: runtime.lines.changed(runtime.broker))
    return await _read(session, staff)


@router.post("/{staff_id}/deactivate", response_model=StaffAdminRead)
async def deactivate_staff(
    staff_id: uuid.UUID,
    session: SessionDep,
    runtime: RuntimeDep,
    actor: ManageStaff,
) -> StaffAdminRead:
    """No more sign-in; sessions end, WebSockets close, their chats go back to the queue."""
    staff = await _target(session, staff_id)
    try:
        await staff_service.deactivate(session, actor, staff)
    except StaffError as exc:
        raise _problem(exc) from None
    removed, by = str(staff.id), str(actor.id)
    after_commit(session, lambda: runtime.chats.staffing.remove_counsellor(removed, by))
    if await staff_service.leave_on_call(session, actor, staff):
        after_commit(session, lambda: runtime.lines.changed(runtime.broker))
    return await _read(session, staff)


@router.post("/{staff_id}/reactivate", response_model=StaffAdminRead)
async def reactivate_staff(
    staff_id: uuid.UUID, session: SessionDep, actor: ManageStaff
) -> StaffAdminRead:
    staff = await _target(session, staff_id)
    try:
        await staff_service.reactivate(session, actor, staff)
    except StaffError as exc:
        raise _problem(exc) from None
    return await _read(session, staff)


@router.post("/{staff_id}/reset", response_model=StaffWithLink)
async def reset_staff(
    staff_id: uuid.UUID,
    body: ResetRequest,
    session: SessionDep,
    runtime: RuntimeDep,
    actor: ManageStaff,
) -> StaffWithLink:
    """Clear the password and/or TOTP and issue a new enrolment link (also: a new invitation)."""
    staff = await _target(session, staff_id)
    try:
        issued = await staff_service.reset(
            session, actor, staff, runtime.settings, password=body.password, totp_reset=body.totp
        )
    except StaffError as exc:
        raise _problem(exc) from None
    reset = str(staff.id)
    after_commit(session, lambda: runtime.chats.staffing.end_sessions(reset, None))
    return StaffWithLink(staff=await _read(session, staff), enrolment=_link(runtime, issued))


# Enrolment (the token is the credential: no session) -----------------------------------


@enrolment_router.post("/status", response_model=EnrolmentStatus, dependencies=[public()])
async def enrolment_status(
    body: EnrolmentToken, session: SessionDep, runtime: RuntimeDep
) -> EnrolmentStatus:
    """What this enrolment link asks the person to set."""
    try:
        enrolment, staff = await staff_service.open_enrolment(session, body.token)
    except StaffError as exc:
        raise _problem(exc) from None
    return EnrolmentStatus(
        username=staff.username,
        alias=staff.alias,
        role=staff.role,
        needs_password=staff.password_hash is None,
        needs_totp=staff_service.needs_totp(staff, runtime.settings),
        password_min_length=runtime.settings.password_min_length,
        expires_at=enrolment.expires_at,
    )


@enrolment_router.post("/totp", response_model=TotpSetup, dependencies=[public()])
async def enrolment_totp(
    body: EnrolmentToken, session: SessionDep, runtime: RuntimeDep
) -> TotpSetup:
    """A new TOTP secret as a QR code; confirmed by a code when enrolment completes."""
    try:
        secret, uri = await staff_service.start_totp(session, body.token, runtime.settings)
    except StaffError as exc:
        raise _problem(exc) from None
    return TotpSetup(secret=secret, otpauth_uri=uri, qr_png=totp.qr_png_data_uri(uri))


@enrolment_router.post("/complete", response_model=Enrolled, dependencies=[public()])
async def enrolment_complete(
    body: EnrolmentComplete, session: SessionDep, runtime: RuntimeDep
) -> Enrolled:
    """Set the password and confirm TOTP; the recovery codes are shown this once."""
    try:
        result = await staff_service.complete_enrolment(
            session, body.token, runtime.settings, password=body.password, code=body.code
        )
    except StaffError as exc:
        raise _problem(exc) from None
    return Enrolled(
        staff=StaffRead.model_validate(result.staff), recovery_codes=result.recovery_codes
    )
