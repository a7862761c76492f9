"""Run the Alembic migrations from code (the CLI, the demo and the tests use this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from app.kit.db import create_engine


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


async def upgrade(database_url: str, revision: str = "head") -> None:
    config = alembic_config(database_url)
    engine = create_engine(database_url)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()
