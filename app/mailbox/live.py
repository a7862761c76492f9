"""The mailbox's running part: what follows a commit (the queue card's count, held rows,
VACUUM after a shred) and the retention sweep. One per process, in the Runtime."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.broker.base import Broker, log_failure
from app.chats.channels import line_channel
from app.chats.crypto import KeyRing
from app.held.rows import HeldRow
from app.held.service import HeldRows
from app.kit.clock import utcnow
from app.kit.db import after_commit, unit_of_work
from app.lines.directory import LineDirectory
from app.mailbox.repository import vacuum
from app.mailbox.service import mailbox_service
from app.settings import Settings

logger = logging.getLogger(__name__)

# The queue card's count per line, kept in the broker for processes that start watching.
COUNT_TTL_SECONDS = 24 * 3600
MAILBOX_EVENT = "mailbox.changed"


def count_key(line: str) -> str:
    return f"mailbox-waiting:{line}"


class Mailbox:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: Broker,
        lines: LineDirectory,
        held_rows: HeldRows,
        keyring: KeyRing,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.lines = lines
        self.held_rows = held_rows
        self.keyring = keyring
        # Set after a shred: the background task vacuums once for however many came.
        self._vacuum_due = asyncio.Event()
        self._vacuuming = False

    # After a commit ------------------------------------------------------------------------

    def changed(self, session: AsyncSession, line_key: str) -> None:
        """Once committed: the line's queue cards show the new count of waiting threads."""

        async def publish() -> None:
            await self.publish_counts([line_key])

        after_commit(session, publish)

    def hold(self, session: AsyncSession, rows: Sequence[HeldRow]) -> None:
        """Once committed: the rows wait for their hour's batch (app/held/)."""
        if not rows:
            return
        kept = list(rows)

        async def hold() -> None:
            await self.held_rows.hold(*kept)

        after_commit(session, hold)

    def shredded(self, session: AsyncSession) -> None:
        """Once committed: the deleted rows leave the database's files too (soon, in the
        background: the visitor's answer does not wait for it)."""

        async def due() -> None:
            self._vacuum_due.set()

        after_commit(session, due)

    async def vacuum(self) -> bool:
        started = time.monotonic()
        try:
            complete = await vacuum(self.engine)
        except Exception:
            # Best effort: the rows are deleted all the same; tried again a sweep later.
            log_failure(logger, "could not vacuum the mailbox tables")
            return False
        if not complete:
            logger.warning(
                "mailbox tables vacuumed while an older transaction was open; again later",
                extra={"seconds": round(time.monotonic() - started, 3)},
            )
            return False
        logger.info(
            "mailbox tables vacuumed", extra={"seconds": round(time.monotonic() - started, 3)}
        )
        return True

    async def run_vacuums(self) -> None:
        """Vacuum after shreds, one at a time, coalescing those that come meanwhile."""
        while True:
            await self._vacuum_due.wait()
            self._vacuuming = True
            self._vacuum_due.clear()
            try:
                done = await self.vacuum()
                if not done:
                    # Still due while it waits to try again.
                    await asyncio.sleep(self.settings.sweep_seconds)
                    self._vacuum_due.set()
            finally:
                self._vacuuming = False

    @property
    def vacuum_pending(self) -> bool:
        """A shred's vacuum is due or running (what tests wait for)."""
        return self._vacuum_due.is_set() or self._vacuuming

    async def publish_counts(self, line_keys: Sequence[str] | None = None) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            counts = await mailbox_service.waiting_counts(session)
        keys = line_keys if line_keys is not None else self.lines.keys()
        for key in keys:
            count = counts.get(key, 0)
            await self.broker.set_value(count_key(key), str(count), COUNT_TTL_SECONDS)
            await self.broker.publish(
                line_channel(key), {"type": MAILBOX_EVENT, "mailbox_waiting": count}
            )

    # Retention -----------------------------------------------------------------------------

    async def sweep(self, now: datetime | None = None) -> int:
        """Shred every thread whose last message is older than its line's retention."""
        moment = now or utcnow()
        async with unit_of_work(self.sessionmaker) as session:
            threads = await mailbox_service.expired(session, self.lines.all(), moment)
            if threads:
                rows = await mailbox_service.shred(session, threads)
                self.hold(session, rows)
                self.shredded(session)
        if threads:
            logger.info(
                "mailbox threads deleted after their retention", extra={"count": len(threads)}
            )
        await self.publish_counts()
        return len(threads)
