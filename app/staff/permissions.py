"""Who may do what: every permission rule of Lykta, in this one module.

Roles grant permissions (`ROLE_GRANTS`); the supervisor flag adds one. Every HTTP endpoint
declares its rule with `require(...)` or `public()` (which also enforce CSRF on state-changing
requests), every WebSocket path is in `WEBSOCKET_RULES`, and every staff frame type is in
`FRAME_RULES`. tests/test_permissions.py fails when an endpoint or frame type has no rule.
Which chat a counsellor may touch (their own, their lines') is checked by the chat code
against the broker's records, since only it knows who holds a chat.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from starlette.requests import HTTPConnection

from app.deps import SessionDep
from app.kit.db import unit_of_work
from app.kit.ids import token_digest
from app.models import Staff
from app.models.enums import Qualification, StaffRole

if TYPE_CHECKING:
    from app.runtime import Runtime
    from app.settings import Settings


class Permission(StrEnum):
    own_account = "own_account"  # see oneself, sign out
    take_chats = "take_chats"  # the staff WebSocket: offers, own chats, own lines' queues
    supervise = "supervise"  # list, observe, whisper to and take over live chats of own lines
    manage_staff = "manage_staff"  # invite, edit, deactivate and reset counsellors
    manage_privileged = "manage_privileged"  # the same for coordinators and admins
    manage_lines = "manage_lines"  # line settings
    manage_roster = "manage_roster"  # shifts, assignments, drop approvals, ad hoc duty
    read_statistics = "read_statistics"  # coverage, demand and the CSV export (all anonymous)
    own_shifts = "own_shifts"  # one's own shifts, sign-ups, drop requests, calendar feed
    read_audit = "read_audit"  # the audit log
    deployment = "deployment"  # the deployment's (non-secret) settings
    read_directory = "read_directory"  # search the referral directory (and send its cards)
    manage_directory = "manage_directory"  # keep the referral directory, CSV import and export
    interpret = "interpret"  # interpreter offers: accept, decline, leave a chat interpreted
    play_visitor = "play_visitor"  # play the visitor on a practice line (training)


ROLE_GRANTS: dict[StaffRole, frozenset[Permission]] = {
    StaffRole.counsellor: frozenset(
        {
            Permission.own_account,
            Permission.take_chats,
            Permission.own_shifts,
            Permission.read_directory,
        }
    ),
    # Coordinators plan and manage, but never read a chat: no take_chats, no supervise.
    StaffRole.coordinator: frozenset(
        {
            Permission.own_account,
            Permission.manage_staff,
            Permission.manage_lines,
            Permission.manage_roster,
            Permission.read_statistics,
            Permission.read_audit,
            Permission.read_directory,
            Permission.manage_directory,
            Permission.play_visitor,
        }
    ),
    StaffRole.admin: frozenset(
        {
            Permission.own_account,
            Permission.manage_staff,
            Permission.manage_privileged,
            Permission.manage_lines,
            Permission.manage_roster,
            Permission.read_statistics,
            Permission.read_audit,
            Permission.deployment,
            Permission.read_directory,
            Permission.manage_directory,
        }
    ),
}
# Only counsellors can be supervisors: the flag means nothing on other roles.
SUPERVISOR_GRANTS = frozenset({Permission.supervise, Permission.play_visitor})
# A counsellor with the interpreter qualification: the staff socket, own shifts, interpreting;
# no referral directory (they answer no chat of their own).
INTERPRETER_GRANTS = frozenset(
    {Permission.own_account, Permission.take_chats, Permission.own_shifts, Permission.interpret}
)


def grants(
    role: StaffRole, supervisor: bool, qualification: Qualification | None = None
) -> frozenset[Permission]:
    if role is StaffRole.counsellor and qualification is Qualification.interpreter:
        return INTERPRETER_GRANTS
    extra = SUPERVISOR_GRANTS if supervisor and role is StaffRole.counsellor else frozenset()
    return ROLE_GRANTS[role] | extra


def staff_grants(staff: Staff) -> frozenset[Permission]:
    return grants(staff.role, staff.is_supervisor, staff.qualification)


def may_manage(actor: frozenset[Permission], role: StaffRole) -> bool:
    """Whether someone with `actor` grants may act on (or hand out) an account of `role`."""
    if role is StaffRole.counsellor:
        return Permission.manage_staff in actor
    return Permission.manage_privileged in actor


# Staff WebSocket frame type → the permission it needs.
FRAME_RULES: dict[str, Permission] = {
    "ping": Permission.take_chats,
    "status": Permission.take_chats,
    "accept": Permission.take_chats,
    "decline": Permission.take_chats,
    "message": Permission.take_chats,
    "typing": Permission.take_chats,
    "note": Permission.take_chats,
    "sync": Permission.take_chats,
    "transfer": Permission.take_chats,
    "end": Permission.take_chats,
    "wrapup": Permission.take_chats,
    "block": Permission.take_chats,
    "help": Permission.take_chats,
    "transfer.options": Permission.take_chats,
    "risk": Permission.take_chats,
    "ready": Permission.take_chats,
    "debrief": Permission.take_chats,
    "shift": Permission.take_chats,
    "debriefs": Permission.supervise,
    "debrief.open": Permission.supervise,
    "live": Permission.supervise,
    "observe": Permission.supervise,
    "unobserve": Permission.supervise,
    "whisper": Permission.supervise,
    "takeover": Permission.supervise,
    "continuity.offer": Permission.take_chats,
    "booking.offer": Permission.take_chats,
    "referral": Permission.take_chats,
    "team": Permission.supervise,
    # Interpreters (docs/staff.md, "Interpreters"): a counsellor asks and removes, the
    # interpreter accepts, declines and leaves.
    "interpreter.request": Permission.take_chats,
    "interpreter.remove": Permission.take_chats,
    "interpreter.accept": Permission.interpret,
    "interpreter.decline": Permission.interpret,
    "interpreter.leave": Permission.interpret,
    "take": Permission.take_chats,
}

# WebSocket path → the permission needed to connect (None: anyone, no account).
WEBSOCKET_RULES: dict[str, Permission | None] = {
    "/ws/visitor": None,
    "/ws/staff": Permission.take_chats,
}


# HTTP ---------------------------------------------------------------------------------------

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
PUBLIC = "public"


def csrf_token(settings: Settings, session_token: str) -> str:
    """The CSRF token of a session: derived, so nothing more is stored, and new per session."""
    key = settings.secret_key.get_secret_value().encode()
    message = b"csrf|" + token_digest(session_token).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def csrf_ok(settings: Settings, session_token: str, presented: str | None) -> bool:
    if not presented or len(presented) > 128:
        return False
    return hmac.compare_digest(csrf_token(settings, session_token), presented)


def same_origin(origin: str | None, public_url: str) -> bool:
    """No Origin (a non-browser client) passes; a browser's must be Lykta's own."""
    if origin is None:
        return True
    ours = urlsplit(public_url)
    theirs = urlsplit(origin)
    return (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _refuse_cross_site(request: Request) -> None:
    if request.method in SAFE_METHODS:
        return
    if not same_origin(request.headers.get("origin"), _runtime(request).settings.public_url):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")


Guard = Callable[..., Awaitable[Any]]


def _tag(guard: Guard, rule: Permission | str) -> Guard:
    guard.lykta_rule = rule  # type: ignore[attr-defined]
    return guard


def public(*, embedding_sites: bool = False) -> Any:
    """An endpoint anyone may call; a state-changing one still refuses cross-site browsers,
    unless `embedding_sites`: a visitor endpoint that checks the allowed embedding origins
    itself (LYKTA_EMBED_ORIGINS)."""

    async def guard(request: Request) -> None:
        if not embedding_sites:
            _refuse_cross_site(request)

    return Depends(_tag(guard, PUBLIC))


def require(permission: Permission) -> Any:
    """A signed-in staff member with `permission`; state-changing requests need the CSRF token."""

    async def guard(request: Request, session: SessionDep) -> Staff:
        from app.staff.sessions import current_session

        _refuse_cross_site(request)
        runtime = _runtime(request)
        found = await current_session(request, session)
        if found is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first")
        staff, token = found
        if request.method not in SAFE_METHODS and not csrf_ok(
            runtime.settings, token, request.headers.get(CSRF_HEADER)
        ):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
        if permission not in staff_grants(staff):
            await _audit_denial(runtime, staff, permission, request)
            raise HTTPException(status.HTTP_403_FORBIDDEN, "your role does not allow this")
        return staff

    return Depends(_tag(guard, permission))


async def _audit_denial(
    runtime: Runtime, staff: Staff, permission: Permission, request: Request
) -> None:
    """Recorded in its own transaction: the request's own is rolled back by the refusal."""
    from app.audit.service import AuditAction, audit_service

    async with unit_of_work(runtime.sessionmaker) as session:
        await audit_service.record(
            session,
            AuditAction.access_denied,
            actor_id=staff.id,
            detail={
                "permission": permission.value,
                "endpoint": f"{request.method} {request.url.path}",
            },
        )


async def plays_visitor(connection: HTTPConnection, runtime: Runtime) -> bool:
    """Whether a visitor-side request or socket comes from Lykta's own pages with the live
    session of staff who may play the visitor: a practice line answers no one else."""
    from app.staff.sessions import current_session, session_token

    # No cookie, no session to read (and no transaction opened for nothing).
    if session_token(connection, runtime.settings) is None:
        return False
    if not same_origin(connection.headers.get("origin"), runtime.settings.public_url):
        return False
    async with unit_of_work(runtime.sessionmaker) as session:
        found = await current_session(connection, session)
    return found is not None and Permission.play_visitor in staff_grants(found[0])


OwnAccount = Annotated[Staff, require(Permission.own_account)]
TakeChats = Annotated[Staff, require(Permission.take_chats)]
ManageStaff = Annotated[Staff, require(Permission.manage_staff)]
ManageLines = Annotated[Staff, require(Permission.manage_lines)]
ReadAudit = Annotated[Staff, require(Permission.read_audit)]
ManageRoster = Annotated[Staff, require(Permission.manage_roster)]
ReadStatistics = Annotated[Staff, require(Permission.read_statistics)]
OwnShifts = Annotated[Staff, require(Permission.own_shifts)]
Deployment = Annotated[Staff, require(Permission.deployment)]
ReadDirectory = Annotated[Staff, require(Permission.read_directory)]
ManageDirectory = Annotated[Staff, require(Permission.manage_directory)]
PlayVisitor = Annotated[Staff, require(Permission.play_visitor)]
