"""Liveness and readiness (app/web/health.py): real `lykta serve` processes on a Redis of the
test's own, which it stops and starts again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.broker.memory import MemoryBroker
from app.kit.db import create_engine
from app.settings import Settings
from app.web.health import Readiness
from tests.conftest import ServerFactory
from tests.support.clients import Endpoint
from tests.support.processes import RedisServer, free_port, processes
from tests.support.waiting import eventually

SettingsFactory = Callable[..., Settings]
READY = {"status": "ready", "database": "ok", "broker": "ok"}
NO_BROKER = {"status": "unavailable", "database": "ok", "broker": "unavailable"}
LIVE = {"status": "ok"}


async def answer(app: Endpoint, path: str) -> tuple[int, Any]:
    async with httpx.AsyncClient(base_url=app.url, timeout=10.0) as http:
        response = await http.get(path)
        return response.status_code, response.json()


def answers(app: Endpoint, path: str, expected: tuple[int, Any]) -> Callable[[], Any]:
    async def check() -> bool:
        return await answer(app, path) == expected

    return check


async def test_embedded_is_live_and_ready(lykta: ServerFactory) -> None:
    async with lykta(http_rate_per_minute=5) as server:
        assert await answer(server, "/healthz") == (200, LIVE)
        assert await answer(server, "/readyz") == (200, READY)
        # Asked in a flood, it is still one client's requests: limited like any other.
        async with httpx.AsyncClient(base_url=server.url) as http:
            codes = [(await http.get("/readyz?x=%00")).status_code for _ in range(6)]
        assert codes.count(429) >= 3 and set(codes) <= {200, 429}


async def test_a_database_that_does_not_answer_is_not_ready() -> None:
    # Nothing listens on that port: the database is unreachable, the broker fine.
    engine = create_engine(f"postgresql+asyncpg://lykta@127.0.0.1:{free_port()}/lykta")
    try:
        parts = await Readiness(engine, MemoryBroker()).check()
    finally:
        await engine.dispose()
    assert parts == {"database": "unavailable", "broker": "ok"}


@pytest.mark.postgres
@pytest.mark.redis
async def test_ready_only_while_redis_answers_and_live_throughout(
    tmp_path: Path, scale_settings: SettingsFactory
) -> None:
    redis = RedisServer(tmp_path, appendonly=False)  # our own, to stop
    await redis.start()
    try:
        async with processes(scale_settings(redis_url=redis.url), tmp_path, count=1) as (app,):
            assert await answer(app, "/readyz") == (200, READY)
            await redis.stop()
            await eventually(answers(app, "/readyz", (503, NO_BROKER)), what="not ready")
            assert await answer(app, "/healthz") == (200, LIVE)
            async with httpx.AsyncClient(base_url=app.url) as http:
                refused = await http.get("/readyz")
                assert refused.headers["retry-after"] == "5"
                # A request that needs Redis meanwhile is answered the same way (a proxy
                # tries another process), not as an error of the app.
                exit_now = await http.post(
                    "/api/visitor/exit", json={"chat_id": "c" * 16, "token": "t" * 16}
                )
                assert exit_now.status_code == 503, exit_now.text
                assert exit_now.headers["retry-after"] == "5"
            await redis.start()
            await eventually(answers(app, "/readyz", (200, READY)), timeout=30, what="ready")
            assert await answer(app, "/healthz") == (200, LIVE)
    finally:
        await redis.stop()
