"""The staff session cookie: how a request or a WebSocket is tied to a staff member."""

from __future__ import annotations

from datetime import timedelta

from fastapi import Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.models import Staff
from app.settings import Settings
from app.staff.service import staff_service


def cookie_name(settings: Settings) -> str:
    # The __Host- prefix makes browsers insist on Secure, Path=/ and no Domain.
    return "lykta_session" if settings.is_development else "__Host-lykta_session"


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        cookie_name(settings),
        token,
        max_age=settings.session_absolute_hours * 3600,
        path="/",
        httponly=True,
        secure=not settings.is_development,
        samesite="strict",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        cookie_name(settings),
        path="/",
        httponly=True,
        secure=not settings.is_development,
        samesite="strict",
    )


def session_token(connection: HTTPConnection, settings: Settings) -> str | None:
    token = connection.cookies.get(cookie_name(settings))
    if not token or len(token) > 128:
        return None
    return token


async def current_session(
    connection: HTTPConnection, session: AsyncSession
) -> tuple[Staff, str] | None:
    """The signed-in staff member and their session token, if the session is alive."""
    settings: Settings = connection.app.state.runtime.settings
    token = session_token(connection, settings)
    if token is None:
        return None
    staff = await staff_service.resolve_session(
        session, token, idle=timedelta(minutes=settings.session_idle_minutes)
    )
    if staff is None or (staff.is_demo and not settings.is_development):
        return None
    return staff, token
