"""Run the Alembic migrations from code (the CLI, the demo and the tests use this)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from app.kit.db import create_engine

logger = logging.getLogger(__name__)


def project_root() -> Path:
    """The checkout (development) or the working directory holding alembic.ini (an image)."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "alembic.ini").exists():
        return checkout
    return Path.cwd()


def alembic_config(database_url: str) -> Config:
    root = project_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


async def upgrade(database_url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply the migrations up to `revision`: (the revision before, the revision now)."""
    config = alembic_config(database_url)
    engine = create_engine(database_url)

    def run(connection: Connection) -> tuple[str | None, str | None]:
        config.attributes["connection"] = connection
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(config, revision)
        return before, MigrationContext.configure(connection).get_current_revision()

    try:
        async with engine.begin() as connection:
            before, after = await connection.run_sync(run)
    finally:
        await engine.dispose()
    if before != after:
        # One line instead of alembic's one per migration (which the log format withholds).
        logger.info("Database migrated from %s to %s", before or "empty", after)
    return before, after
