from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from app.kit.migrate import upgrade
from app.settings import Settings
from tests.support.server import RunningServer, run_server

# Settings that make the product's timers fast enough for tests (not timing assertions).
FAST: dict[str, Any] = {
    "tick_seconds": 0.05,
    "position_push_seconds": 0.2,
    "heartbeat_seconds": 0.5,
}


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
def settings_for(database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"database_url": database_url, **FAST, **overrides}
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
