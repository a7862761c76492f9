from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, Response, status

from app.deps import CurrentStaff, RuntimeDep, SessionDep
from app.staff.schemas import SignIn, StaffRead
from app.staff.service import staff_service
from app.staff.sessions import clear_session_cookie, session_token, set_session_cookie

router = APIRouter(prefix="/api/staff", tags=["staff"])


@router.post("/session", response_model=StaffRead)
async def sign_in(
    body: SignIn, response: Response, session: SessionDep, runtime: RuntimeDep
) -> StaffRead:
    """Sign in with username and password; sets the session cookie."""
    settings = runtime.settings
    staff = await staff_service.authenticate(session, body.username, body.password)
    if staff is None or (staff.is_demo and not settings.is_development):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    new = await staff_service.open_session(
        session, staff, absolute=timedelta(hours=settings.session_absolute_hours)
    )
    set_session_cookie(response, settings, new.token)
    return StaffRead.model_validate(staff)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(
    request: Request, response: Response, session: SessionDep, runtime: RuntimeDep
) -> None:
    token = session_token(request, runtime.settings)
    if token is not None:
        await staff_service.close_session(session, token)
    clear_session_cookie(response, runtime.settings)


@router.get("/me", response_model=StaffRead)
async def me(staff: CurrentStaff) -> StaffRead:
    return StaffRead.model_validate(staff)
