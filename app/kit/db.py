"""SQLAlchemy engine, declarative base and the unit of work."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

logger = logging.getLogger(__name__)

# Where a session keeps what is to happen once its unit of work is over.
_AFTER_COMMIT = "lykta.after_commit"
_AFTER_ROLLBACK = "lykta.after_rollback"

Action = Callable[[], Awaitable[None]]

# Explicit constraint names so migrations are identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every ORM model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets foreign keys on and a busy timeout for concurrent writers."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine.sync_engine)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        # Freed space is overwritten with zeros: a deleted (or updated) row leaves nothing
        # readable in the file, such as a shredded mailbox thread's wrapped key.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def after_commit(session: AsyncSession, action: Action) -> None:
    """Run `action` once the session's unit of work has committed (never if it rolls back):
    events that follow an SQL write go out only once the write is stored."""
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


def after_rollback(session: AsyncSession, action: Action) -> None:
    """Run `action` if the session's unit of work rolls back (to undo a claim made outside
    the database, such as a chat's wrap-up being due)."""
    session.info.setdefault(_AFTER_ROLLBACK, []).append(action)


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session that commits when the block succeeds and rolls back when it raises.

    Services never commit; whoever opens the unit of work (a request, a WebSocket
    handler, a CLI command) decides when the work is done. What services asked to happen
    after the commit (`after_commit`) or after a rollback (`after_rollback`) runs then.
    """
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            await _run(session, _AFTER_ROLLBACK)
            raise
        try:
            await session.commit()
        except BaseException:
            await session.rollback()
            await _run(session, _AFTER_ROLLBACK)
            raise
        await _run(session, _AFTER_COMMIT)


async def _run(session: AsyncSession, hook: str) -> None:
    actions: list[Action] = session.info.pop(hook, [])
    session.info.pop(_AFTER_ROLLBACK if hook == _AFTER_COMMIT else _AFTER_COMMIT, None)
    for action in actions:
        try:
            await action()
        except Exception:
            # The commit (or rollback) stands; one failed follow-up must not stop the others.
            logger.exception("follow-up of a unit of work failed", extra={"hook": hook})


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC-aware values")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
