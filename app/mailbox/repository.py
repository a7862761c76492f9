"""All SQL of the mailbox."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.kit.repository import RepositoryBase
from app.models import (
    Booking,
    BookingOffer,
    ContinuityCode,
    LineMembership,
    MailboxMessage,
    MailboxThread,
    Staff,
)

# The tables a shred leaves dead rows in: the thread, its messages, the booked chat and
# offered times keyed by its digest (app/bookings, deleted with it), and continuity codes
# (deleted by the visitor or on expiry, with their bookings).
TABLES = tuple(
    model.__tablename__
    for model in (MailboxMessage, MailboxThread, Booking, BookingOffer, ContinuityCode)
)
VACUUM_LOCK_TIMEOUT = "2s"
# How long a vacuum waits for transactions begun before the shred before it runs anyway (and
# is tried again a sweep later).
OLDER_TRANSACTIONS_WAIT_SECONDS = 10.0
# As a 32-bit xid, the type pg_stat_activity's backend_xmin and backend_xid have.
NEXT_XID = text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint % 4294967296")
# A snapshot of this database older than the horizon may see the deleted rows. A transaction
# of any database older than it lowers the vacuum's own snapshot, which then keeps them too.
OLDER_SNAPSHOTS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
    " AND ((datname = current_database() AND age(backend_xmin) > age(CAST(:horizon AS xid)))"
    " OR age(backend_xid) > age(CAST(:horizon AS xid)))"
)


class MailboxRepository(RepositoryBase[MailboxThread]):
    model = MailboxThread

    async def by_digest(self, digest: str) -> MailboxThread | None:
        return await self.get_one_or_none(self.select().where(MailboxThread.digest == digest))

    async def by_id_for_update(self, thread_id: uuid.UUID) -> MailboxThread | None:
        """The thread, locked until the unit of work ends (two claims at once: one wins)."""
        return await self.get_one_or_none(
            self.select().where(MailboxThread.id == thread_id).with_for_update()
        )

    async def digest_taken(self, digest: str) -> bool:
        """Whether a thread or a continuity code already has this digest."""
        for statement in (
            select(MailboxThread.id).where(MailboxThread.digest == digest),
            select(ContinuityCode.id).where(ContinuityCode.digest == digest),
        ):
            if (await self.session.execute(statement)).first() is not None:
                return True
        return False

    async def add_message(self, message: MailboxMessage) -> None:
        self.session.add(message)
        await self.session.flush()

    async def messages(self, thread_id: uuid.UUID) -> Sequence[MailboxMessage]:
        result = await self.session.execute(
            select(MailboxMessage)
            .where(MailboxMessage.thread_id == thread_id)
            .order_by(MailboxMessage.seq)
        )
        return result.scalars().all()

    async def shred(self, thread_ids: Collection[uuid.UUID]) -> None:
        """Delete threads and their messages (and, with them, their wrapped keys)."""
        if not thread_ids:
            return
        # On SQLite every connection has secure_delete on (app/kit/db.py): the rows' space
        # is zeroed; on PostgreSQL they stay as dead tuples until `vacuum` below.
        ids = list(thread_ids)
        await self.session.execute(delete(MailboxMessage).where(MailboxMessage.thread_id.in_(ids)))
        await self.session.execute(delete(MailboxThread).where(MailboxThread.id.in_(ids)))

    async def waiting(self, line_keys: Collection[str]) -> Sequence[MailboxThread]:
        """Unclaimed threads, oldest waiting first."""
        return await self.get_all(
            self.select()
            .where(MailboxThread.line_key.in_(list(line_keys)), MailboxThread.staff_id.is_(None))
            .order_by(MailboxThread.waiting_since, MailboxThread.created_at)
        )

    async def claimed_by(
        self, staff_id: uuid.UUID, line_keys: Collection[str]
    ) -> Sequence[MailboxThread]:
        return await self.get_all(
            self.select()
            .where(
                MailboxThread.staff_id == staff_id,
                MailboxThread.line_key.in_(list(line_keys)),
            )
            .order_by(
                MailboxThread.waiting_since.is_(None),
                MailboxThread.waiting_since,
                MailboxThread.last_at.desc(),
            )
        )

    async def of_line(self, line_key: str) -> Sequence[MailboxThread]:
        return await self.get_all(
            self.select().where(MailboxThread.line_key == line_key).order_by(MailboxThread.last_at)
        )

    async def has_threads(self, line_key: str) -> bool:
        found = await self.session.execute(
            select(MailboxThread.id).where(MailboxThread.line_key == line_key).limit(1)
        )
        return found.first() is not None

    async def waiting_counts(self) -> dict[str, int]:
        """Threads waiting for an answer (unclaimed, or the visitor wrote last), per line."""
        result = await self.session.execute(
            select(MailboxThread.line_key, func.count())
            .where(MailboxThread.status == "waiting")
            .group_by(MailboxThread.line_key)
        )
        return {str(key): int(count) for key, count in result.all()}

    async def last_before(self, line_key: str, cutoff: datetime) -> Sequence[MailboxThread]:
        """The line's threads whose last message is at or before `cutoff`."""
        return await self.get_all(
            self.select().where(MailboxThread.line_key == line_key, MailboxThread.last_at <= cutoff)
        )

    async def last_before_elsewhere(
        self, line_keys: Collection[str], cutoff: datetime
    ) -> Sequence[MailboxThread]:
        """Threads of lines other than these whose last message is at or before `cutoff`."""
        return await self.get_all(
            self.select().where(
                MailboxThread.line_key.not_in(list(line_keys)), MailboxThread.last_at <= cutoff
            )
        )

    async def claim(self, thread_id: uuid.UUID, staff_id: uuid.UUID) -> bool:
        """Compare-and-set in one statement: of two claims at once, one wins (any database)."""
        result = await self.session.execute(
            update(MailboxThread)
            .where(MailboxThread.id == thread_id, MailboxThread.staff_id.is_(None))
            .values(staff_id=staff_id)
        )
        return bool(getattr(result, "rowcount", 0))

    async def mark_counted(self, thread_id: uuid.UUID) -> bool:
        """Compare-and-set: true for the one caller that marks the thread counted."""
        result = await self.session.execute(
            update(MailboxThread)
            .where(MailboxThread.id == thread_id, MailboxThread.counted.is_(False))
            .values(counted=True)
        )
        return bool(getattr(result, "rowcount", 0))

    async def member_lines(self, staff_id: uuid.UUID) -> list[str]:
        result = await self.session.execute(
            select(LineMembership.line_key).where(LineMembership.staff_id == staff_id)
        )
        return [str(key) for key in result.scalars()]

    async def staff(self, staff_id: uuid.UUID) -> Staff | None:
        return await self.session.get(Staff, staff_id)

    async def aliases(self, staff_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not staff_ids:
            return {}
        result = await self.session.execute(
            select(Staff.id, Staff.alias).where(Staff.id.in_(list(staff_ids)))
        )
        return {row[0]: str(row[1]) for row in result.all()}


async def vacuum(engine: AsyncEngine) -> bool:
    """Make shredded rows unreadable in the files too; False when some may still be there.

    PostgreSQL keeps deleted rows as dead tuples until VACUUM, and a plain VACUUM leaves the
    index entries' bytes (the digest) in freed index space: VACUUM FULL writes the tables
    and their indexes anew and drops the old files. It locks the small tables (bounded by
    retention) for milliseconds, and cannot run inside a transaction. It copies rows that
    a transaction begun before the shred may still see, so it first waits (a little) for
    those to end. SQLite zeroes freed space itself (secure_delete); its WAL keeps earlier
    page images until a checkpoint."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            # The next transaction id: every deletion before this vacuum is older.
            horizon = (await autocommit.execute(NEXT_XID)).scalar_one()
            outlived = await _outlive_older_snapshots(autocommit, horizon)
            # Queued behind a long transaction, its lock would hold up every later query on
            # the tables: give up instead, and let the next try do it.
            await autocommit.execute(text(f"SET lock_timeout = '{VACUUM_LOCK_TIMEOUT}'"))
            try:
                await autocommit.execute(text(f"VACUUM FULL {', '.join(TABLES)}"))
            finally:
                await autocommit.execute(text("RESET lock_timeout"))
            # Unless outlived, an older transaction's snapshot kept the rows in the new files.
            return outlived
    elif engine.dialect.name == "sqlite":
        async with engine.connect() as connection:
            await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    return True


async def _outlive_older_snapshots(connection: AsyncConnection, horizon: int) -> bool:
    """Wait (a little) until no other session of this database holds a snapshot older than
    `horizon` (one that may still see the deleted rows) and no session of any database runs a
    transaction older than it; whether none is left. Once none is, none can come: later
    transactions and snapshots are newer. PostgreSQL shows other roles' sessions only to
    members of pg_read_all_stats; Lykta's own are the ones that matter."""
    deadline = time.monotonic() + OLDER_TRANSACTIONS_WAIT_SECONDS
    while (await connection.execute(OLDER_SNAPSHOTS, {"horizon": horizon})).scalar_one():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)
    return True
