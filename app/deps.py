"""Annotated dependencies shared by the HTTP endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.db import unit_of_work
from app.models import Staff

if TYPE_CHECKING:
    from app.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated["Runtime", Depends(get_runtime)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the endpoint returns, else rolled back."""
    runtime = get_runtime(request)
    async with unit_of_work(runtime.sessionmaker) as session:
        yield session


# scope="function": commit before the response is sent, so a 2xx means the change is stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_current_staff(request: Request, session: SessionDep) -> Staff:
    from app.staff.sessions import staff_from_request

    staff = await staff_from_request(request, session)
    if staff is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in first")
    return staff


CurrentStaff = Annotated[Staff, Depends(get_current_staff)]
