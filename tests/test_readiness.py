"""Liveness and readiness (app/web/health.py), and a Redis still loading its data: real
`lykta serve` processes on a Redis of the test's own, which it stops, restarts and slows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.broker.memory import MemoryBroker
from app.kit.db import create_engine
from app.settings import Settings
from app.web.health import Readiness
from tests.conftest import ServerFactory
from tests.support.clients import Endpoint, open_visitor
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


async def handshake_closed_with(app: Endpoint) -> int | None:
    """Open a visitor connection and read until the server closes it: its close code."""
    async with connect(f"{app.ws_url}/ws/visitor", compression=None) as ws:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed:
            pass
        return ws.close_code


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


# Keys in the append-only file, and how long Redis takes over each when it loads them
# (microseconds): seconds of LOADING, with no CPU spent on it.
KEYS = 40_000
LOAD_DELAY_US = 250


def probe(redis: RedisServer) -> Any:
    return Redis(host="127.0.0.1", port=redis.port)


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_redis_loading_its_data_is_unavailable_until_loaded(
    tmp_path: Path, scale_settings: SettingsFactory
) -> None:
    redis = RedisServer(tmp_path)  # append-only
    await redis.start()
    try:
        client = probe(redis)
        for start in range(0, KEYS, 2000):
            await client.mset({f"filler:{i}": "x" for i in range(start, start + 2000)})
        # Rewritten, the file starts with a snapshot of them, loaded key by key.
        await client.bgrewriteaof()

        async def rewritten() -> bool:
            info = await client.info("persistence")
            return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]

        await eventually(rewritten, timeout=30, what="the append-only file rewritten")
        async with processes(scale_settings(redis_url=redis.url), tmp_path, count=1) as (app,):
            await redis.stop()
            redis.options = [
                "--key-load-delay",
                str(LOAD_DELAY_US),
                # Answer clients (LOADING) while loading, not only once it is done.
                "--loading-process-events-interval-bytes",
                "1024",
            ]
            await redis.start()

            async def loading_now() -> bool | None:
                try:
                    return bool((await client.info("persistence"))["loading"])
                except RedisConnectionError:
                    return None  # not answering yet

            async def loading() -> bool:
                return await loading_now() is True

            await eventually(loading, what="Redis loading")
            # New connections are told to come back shortly, as during any outage; the
            # process is live but not ready.
            assert await handshake_closed_with(app) == 1013
            assert await answer(app, "/readyz") == (503, NO_BROKER)
            assert await answer(app, "/healthz") == (200, LIVE)
            assert await loading(), "Redis finished loading before the answers were checked"

            async def loaded() -> bool:
                return await loading_now() is False

            await eventually(loaded, timeout=60, what="Redis loaded")
            await eventually(answers(app, "/readyz", (200, READY)), timeout=30, what="ready")
            visitor = await open_visitor(app)
            await visitor.close()
        await client.aclose()
    finally:
        await redis.stop()
