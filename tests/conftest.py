from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from app.broker.base import Broker
from app.broker.memory import MemoryBroker
from app.broker.redis import RedisBroker
from app.kit.migrate import upgrade
from app.settings import Settings
from tests.support.postgres import fresh_database
from tests.support.server import RunningServer, run_server

# Settings that make the product's timers fast enough for tests (not timing assertions).
FAST: dict[str, Any] = {
    "tick_seconds": 0.05,
    "position_push_seconds": 0.2,
    "heartbeat_seconds": 0.5,
}


# The shared Redis of the machine; tests use a key prefix of their own and delete only that.
REDIS_URL = os.environ.get("LYKTA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

BROKERS = ["memory", "redis"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Modules marked `both_brokers` (the chat core's behaviour and what depends on the
    broker's own semantics) run on the in-process broker and on the real Redis; the rest run
    on the embedded default only, which keeps the suite well under its time budget."""
    if "broker_kind" in metafunc.fixturenames:
        definition = metafunc.definition
        both = definition.get_closest_marker("both_brokers") is not None
        # A test about the in-process broker's own internals opts out explicitly.
        both = both and definition.get_closest_marker("embedded_only") is None
        # A test of what only happens on Redis (its round trips) runs there alone.
        if definition.get_closest_marker("redis_only") is not None:
            kinds = ["redis"]
        else:
            kinds = BROKERS if both else ["memory"]
        if definition.get_closest_marker("plain_asgi_too") is not None:
            # Once more without app/web/websocket.py: uvicorn's own protocol, every frame
            # the ASGI way.
            metafunc.parametrize(
                ("broker_kind", "websocket_adapter"),
                [*((kind, True) for kind in kinds), ("memory", False)],
                ids=[*kinds, "memory-plain-asgi"],
            )
        else:
            metafunc.parametrize("broker_kind", kinds)


@pytest.fixture
def websocket_adapter() -> bool:
    """Whether servers run app/web/websocket.py's protocol (see `plain_asgi_too`)."""
    return True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the machine's Redis are marked `redis`: those on the Redis broker, and
    the modules and tests marked so by hand. The rest (the embedded default: SQLite and the
    in-process broker) never touch it: `make test-embedded` runs them with no Redis at all."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "redis" in callspec.params.values():
            item.add_marker(pytest.mark.redis)


@pytest.fixture
async def redis_prefix(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A key prefix for this test alone, whose keys are deleted afterwards (by the tests that
    use Redis: the others never connect to it)."""
    prefix = f"lykta-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    if request.node.get_closest_marker("redis") is None:
        return
    broker = RedisBroker(REDIS_URL, prefix)
    await broker.start()
    try:
        await broker.purge()
    finally:
        await broker.close()


BrokerFactory = Callable[[], AbstractAsyncContextManager[Broker]]


@pytest.fixture
def broker_factory(broker_kind: str, redis_prefix: str) -> BrokerFactory:
    """A started broker of this test's kind (several share state when on Redis)."""

    @asynccontextmanager
    async def make() -> AsyncIterator[Broker]:
        broker: Broker = (
            MemoryBroker() if broker_kind == "memory" else RedisBroker(REDIS_URL, redis_prefix)
        )
        await broker.start()
        try:
            yield broker
        finally:
            await broker.close()

    return make


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per run; each test gets a copy."""
    import asyncio

    path = tmp_path_factory.mktemp("template") / "lykta.db"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "lykta.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def settings_for(
    database_url: str, broker_kind: str, redis_prefix: str, websocket_adapter: bool
) -> Callable[..., Settings]:
    broker: dict[str, Any] = (
        {"redis_url": REDIS_URL, "redis_prefix": redis_prefix} if broker_kind == "redis" else {}
    )

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "websocket_adapter": websocket_adapter,
            **FAST,
            **broker,
            **overrides,
        }
        return Settings(**values)

    return make


ServerFactory = Callable[..., AbstractAsyncContextManager[RunningServer]]


@pytest.fixture
def lykta(settings_for: Callable[..., Settings]) -> ServerFactory:
    """Start Lykta (real uvicorn, real sockets) with settings overrides."""

    def start(**overrides: Any) -> AbstractAsyncContextManager[RunningServer]:
        return run_server(settings_for(**overrides))

    return start


@pytest.fixture
async def server(lykta: ServerFactory) -> AsyncIterator[RunningServer]:
    async with lykta() as running:
        yield running


@pytest.fixture(autouse=True)
async def _dump_tasks_when_stuck() -> AsyncIterator[None]:
    """If a test is still running after a while, print where every asyncio task waits."""
    import asyncio
    import sys

    async def watchdog() -> None:
        await asyncio.sleep(120)
        print("\n--- test still running after 120 s; asyncio tasks: ---", file=sys.stderr)
        for task in asyncio.all_tasks():
            task.print_stack(limit=8, file=sys.stderr)

    task = asyncio.create_task(watchdog())
    yield
    task.cancel()


@pytest.fixture
async def database_url_pg() -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database for the tests that run `lykta serve` processes."""
    async with fresh_database() as url:
        await upgrade(url)
        yield url


@pytest.fixture
def scale_settings(database_url_pg: str, redis_prefix: str) -> Callable[..., Settings]:
    """Settings for several processes on one PostgreSQL database and one Redis."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url_pg,
            "redis_url": REDIS_URL,
            "redis_prefix": redis_prefix,
            # Every test client connects from 127.0.0.1: per-address limits would count them
            # all as one visitor.
            "connection_rate_per_minute": 100_000,
            "http_rate_per_minute": 100_000,
            "sign_in_rate_per_minute": 10_000,
            **FAST,
            **overrides,
        }
        return Settings(**values)

    return make
