"""Migrations run on SQLite and on PostgreSQL, and match the models exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.postgres import fresh_database

ROOT = Path(__file__).resolve().parents[1]


def alembic(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LYKTA_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def upgrade_then_check(database_url: str) -> None:
    upgraded = alembic(database_url, "upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stderr
    checked = alembic(database_url, "check")
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr
    downgraded = alembic(database_url, "downgrade", "base")
    assert downgraded.returncode == 0, downgraded.stderr
    again = alembic(database_url, "upgrade", "head")
    assert again.returncode == 0, again.stderr


def test_migrations_on_sqlite(tmp_path: Path) -> None:
    upgrade_then_check(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_migrations_on_postgres() -> None:
    async with fresh_database() as url:
        upgrade_then_check(url)
