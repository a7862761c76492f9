"""Liveness and readiness, for load balancers and orchestrators (docs/deploy.md).

`/healthz` (live): the process runs and answers; nothing else is asked. `/readyz` (ready):
it can serve, because its database and its broker answer now; 503 while either does not.
A check is shared for a second, so a flood of them costs one round trip each a second. Any
request that needs the broker while it is away is answered 503 the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.broker.base import Broker, BrokerUnavailableError
from app.staff.permissions import public

if TYPE_CHECKING:
    from app.runtime import Runtime

router = APIRouter(include_in_schema=False)

# How long a part may take to answer before it counts as unreachable (seconds).
CHECK_SECONDS = 2.0
# How long one check's answer is given to everyone who asks (seconds).
SHARED_SECONDS = 1.0

OK = "ok"
UNAVAILABLE = "unavailable"


class Readiness:
    """Whether the database and the broker answer, asked at most once a `SHARED_SECONDS`."""

    def __init__(
        self, engine: AsyncEngine, broker: Broker, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last: tuple[float, dict[str, str]] | None = None

    async def check(self) -> dict[str, str]:
        async with self._lock:
            last = self._last
            if last is not None and self._clock() - last[0] < SHARED_SECONDS:
                return last[1]
            database, broker = await asyncio.gather(self._database(), self._broker_state())
            parts = {"database": database, "broker": broker}
            self._last = (self._clock(), parts)
            return parts

    async def _database(self) -> str:
        try:
            async with asyncio.timeout(CHECK_SECONDS), self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            # Whatever the driver raises (refused, timed out, shutting down): not reachable.
            return UNAVAILABLE
        return OK

    async def _broker_state(self) -> str:
        if not self._broker.available:
            return UNAVAILABLE
        try:
            async with asyncio.timeout(CHECK_SECONDS):
                await self._broker.ping()
        except Exception:
            return UNAVAILABLE
        return OK


@router.get("/healthz", dependencies=[public()])
async def healthz() -> dict[str, str]:
    """Live: the process answers (restart it if not)."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[public()])
async def readyz(request: Request) -> JSONResponse:
    """Ready: database and broker answer (send it no clients while not)."""
    runtime: Runtime = request.app.state.runtime
    parts = await runtime.readiness.check()
    if all(state == OK for state in parts.values()):
        return JSONResponse({"status": "ready", **parts})
    return JSONResponse(
        {"status": UNAVAILABLE, **parts}, status_code=503, headers={"Retry-After": "5"}
    )


async def broker_unavailable_response(_request: Request, exc: Exception) -> JSONResponse:
    """A request that needs the broker while it is away: 503, as `/readyz` says (a proxy tries
    another process), not an error of the app."""
    assert isinstance(exc, BrokerUnavailableError)
    return JSONResponse(
        {"detail": "service unavailable; try again shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )
