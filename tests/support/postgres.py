"""A fresh PostgreSQL database per use, on the server at 127.0.0.1 (trust auth)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create an empty database and yield its SQLAlchemy URL; drop it afterwards."""
    name = f"lykta_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def refused_at_commit(table: str, event: str) -> list[str]:
    """SQL that makes PostgreSQL refuse, only at COMMIT, a transaction that does `event`
    ("INSERT", "UPDATE") on `table` (as a full disk or a lost connection would); undone by
    `accepted_again`."""
    return [
        f"""CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$""",
        f"""CREATE CONSTRAINT TRIGGER refuse_{table} AFTER {event} ON {table}
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_{table}()""",
    ]


def accepted_again(table: str) -> str:
    return f"DROP TRIGGER refuse_{table} ON {table}"
