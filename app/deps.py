"""Annotated dependencies shared by the HTTP endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.db import unit_of_work

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


# Who may call an endpoint is declared with app.staff.permissions (require/public), which
# also checks CSRF: there is deliberately no other "current staff" dependency.
