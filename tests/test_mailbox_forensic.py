"""The mailbox's forensic test: after a visitor deletes a thread, and after another one's
retention ran out, nothing of them is readable anywhere Lykta leaves traces: not in any
table, not in the database's files (SQLite's file and WAL; PostgreSQL's relation files of the
mailbox's and the bookings' tables, where deleted rows would stay as dead tuples without
VACUUM), not in the broker, not in the logs. The deleted thread had a booked chat (times
offered, one picked), the expired one times offered: those rows hold the thread's digest.

Searched for: the message texts, the code in every form it could be stored in, the thread's
digest, its wrapped key, its raw key (bytes, hex, base64) and its ciphertexts.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.service import booking_service, iso
from app.broker.memory import MemoryBroker
from app.chats.background import purge_codes_and_bookings
from app.continuity import codes
from app.continuity.service import Issued, continuity_service
from app.kit.clock import utcnow
from app.kit.db import Base, unit_of_work
from app.kit.migrate import upgrade
from app.mailbox import protocol
from app.models import Booking, ContinuityCode, MailboxMessage, MailboxThread
from app.runtime import Runtime
from tests.conftest import REDIS_URL
from tests.support.brokers import redis_dump
from tests.support.clients import api, sign_in_session
from tests.support.postgres import ADMIN_DSN, fresh_database
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer
from tests.support.waiting import eventually
from tests.test_bookings import bookings, give_shift, pick, soon

pytestmark = pytest.mark.both_brokers

# A vacuum waits up to ten seconds for older snapshots (a busy server's), then tries again.
VACUUM_WAIT = 60.0


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "lykta.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    async with fresh_database() as url:
        await upgrade(url)
        yield url


async def sql_blob(rt: Runtime) -> bytes:
    """Every row of every table, as a dump would hold them."""
    parts: list[bytes] = []
    async with unit_of_work(rt.sessionmaker) as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                for value in row:
                    parts.append(value if isinstance(value, bytes) else str(value).encode())
    return b"\n".join(parts)


async def file_blob(rt: Runtime) -> bytes:
    """The database's files of the mailbox's, the bookings' and the continuity codes' tables,
    as they are on disk."""
    url = rt.settings.database_url
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")  # noqa: ASYNC240
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        # Written out to the files first, so that the files are what is searched.
        await connection.execute("CHECKPOINT")
        paths = await connection.fetch(
            """SELECT pg_relation_filepath(c.oid) AS path FROM pg_class c
               WHERE c.relname SIMILAR TO $1 AND pg_relation_filepath(c.oid) IS NOT NULL
               UNION
               SELECT pg_relation_filepath(c.reltoastrelid) FROM pg_class c
               WHERE c.relname SIMILAR TO $1 AND c.reltoastrelid <> 0""",
            # The tables that hold a thread, its messages or a code's digest, and their indexes.
            "%(mailbox|booking|continuity)%",
        )
        parts = [
            await connection.fetchval("SELECT pg_read_binary_file($1)", r["path"]) for r in paths
        ]
    finally:
        await connection.close()
    assert parts
    return b"\n".join(parts)


async def broker_blob(rt: Runtime) -> bytes:
    if isinstance(rt.broker, MemoryBroker):
        return rt.broker.dump()
    return await redis_dump(REDIS_URL, rt.settings.redis_prefix)


async def idle(rt: Runtime) -> bool:
    return not rt.mailbox.vacuum_pending


async def issue_code(session: AsyncSession, rt: Runtime, staff_id: str) -> Issued:
    """A continuity code from this counsellor, as the end of a chat issues it."""
    return await continuity_service.issue(
        session,
        rt.settings,
        line_key="support",
        staff_id=uuid.UUID(staff_id),
        language="sv",
        note="",
        now=utcnow(),
    )


async def messages_of(rt: Runtime, thread_id: uuid.UUID) -> list[MailboxMessage]:
    async with unit_of_work(rt.sessionmaker) as session:
        found = await session.execute(
            select(MailboxMessage).where(MailboxMessage.thread_id == thread_id)
        )
        return list(found.scalars().all())


async def traces(rt: Runtime, thread_id: str, code: str, words: list[str]) -> list[bytes]:
    """Everything that would betray the thread, read while it still exists."""
    async with unit_of_work(rt.sessionmaker) as session:
        thread = await session.get(MailboxThread, uuid.UUID(thread_id))
    assert thread is not None
    messages = await messages_of(rt, thread.id)
    key = rt.mailbox.keyring.unwrap(thread.wrapped_key, protocol.KEY_PURPOSE)
    normal = codes.normalise(code)
    assert normal is not None and messages
    return [
        *(w.encode() for w in words),
        code.encode(),
        normal.encode(),
        normal.replace(" ", "").encode(),
        thread.digest.encode(),
        thread.wrapped_key.encode(),
        thread.wrapped_key.split(":", 1)[1].encode(),
        key,
        key.hex().encode(),
        base64.b64encode(key),
        base64.urlsafe_b64encode(key),
        *(m.sealed[:24] for m in messages),
    ]


async def test_deleted_and_expired_threads_leave_nothing_readable(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="app")
    rt = server.runtime
    await add_line(rt, mailbox_retention_days=2)
    anna_id = await add_counsellor(rt, "anna", alias="Anna")
    await give_shift(rt, anna_id)
    run = uuid.uuid4().hex[:8]
    said = {name: f"canary{name}{run}" for name in ("visitor", "again", "answer", "note", "old")}
    anna = await sign_in_session(server, "anna", PASSWORD)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        made = await http.post(
            "/api/visitor/mailbox/threads",
            json={"line": "support", "language": "sv", "text": f"hjälp {said['visitor']}"},
        )
        code = made.json()["code"]
        thread_id = (await api(server, anna, "GET", "/api/mailbox")).json()["waiting"][0]["id"]
        await api(server, anna, "POST", f"/api/mailbox/{thread_id}/claim")
        await api(
            server, anna, "POST", f"/api/mailbox/{thread_id}/answer", json={"text": said["answer"]}
        )
        await api(
            server, anna, "POST", f"/api/mailbox/{thread_id}/notes", json={"text": said["note"]}
        )
        await http.post("/api/visitor/mailbox/write", json={"code": code, "text": said["again"]})
        # A booked chat: times offered (a booking_offers row), one picked (a bookings row).
        booked_at = soon()
        offered = await api(
            server,
            anna,
            "POST",
            f"/api/mailbox/{thread_id}/times",
            json={"times": [iso(booked_at), iso(booked_at + timedelta(minutes=5))]},
        )
        assert offered.status_code == 200, offered.text
        booked = await http.post(
            "/api/visitor/mailbox/book", json={"code": code, "time": iso(booked_at)}
        )
        assert booked.status_code == 200, booked.text
        assert len(await bookings(rt)) == 1
        deleted = await traces(
            rt, thread_id, code, [said[n] for n in ("visitor", "again", "answer", "note")]
        )
        assert said["visitor"].encode() not in await sql_blob(rt)  # sealed while it lives
        gone = await http.post("/api/visitor/mailbox/delete", json={"code": code})
        assert gone.json() == {"status": "deleted"}

        old = await http.post(
            "/api/visitor/mailbox/threads",
            json={"line": "support", "language": "sv", "text": said["old"]},
        )
        old_code = old.json()["code"]
        old_id = (await api(server, anna, "GET", "/api/mailbox")).json()["waiting"][0]["id"]
        # Times offered and not picked: they go with the thread at its retention.
        await api(server, anna, "POST", f"/api/mailbox/{old_id}/claim")
        offered = await api(
            server,
            anna,
            "POST",
            f"/api/mailbox/{old_id}/times",
            json={"times": [iso(booked_at + timedelta(minutes=30))]},
        )
        assert offered.status_code == 200, offered.text
        expired = await traces(rt, old_id, old_code, [said["old"]])
        async with unit_of_work(rt.sessionmaker) as session:
            thread = await session.get(MailboxThread, uuid.UUID(old_id))
            assert thread is not None
            thread.last_at -= timedelta(days=2)
        assert await rt.mailbox.sweep() == 1
        assert (
            await http.post("/api/visitor/mailbox/read", json={"code": old_code})
        ).status_code == 404
        assert await bookings(rt) == []

    # The visitor's answer does not wait for the vacuum; the search does.
    await eventually(lambda: idle(rt), timeout=VACUUM_WAIT, what="the vacuum after the shreds")
    logs = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records).encode()
    places = {
        "tables": await sql_blob(rt),
        "files": await file_blob(rt),
        "broker": await broker_blob(rt),
        "logs": logs,
    }
    found = [
        (where, needle[:40])
        for where, blob in places.items()
        for needle in [*deleted, *expired]
        if needle in blob or needle.lower() in blob.lower()
    ]
    assert found == []
    # The VACUUM (or checkpoint) after each shred was logged, without content.
    assert any(r.getMessage() == "mailbox tables vacuumed" for r in caplog.records)


async def _older_transaction(rt: Runtime, elsewhere: bool) -> asyncpg.Connection:
    """A transaction begun now and left open: a long read of other tables of Lykta's database
    (a report, say: no lock on the mailbox's tables, only a snapshot that sees its rows), or
    a write in another database of the server."""
    dsn = make_url(rt.settings.database_url).set(drivername="postgresql")
    older = await asyncpg.connect(ADMIN_DSN if elsewhere else dsn.render_as_string(False))
    await older.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    if elsewhere:
        await older.fetchval("SELECT pg_current_xact_id()")  # a write's transaction id
    else:
        assert await older.fetchval("SELECT count(*) FROM lines") == 1
    return older


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("elsewhere", [False, True], ids=["same-database", "other-database"])
async def test_a_transaction_older_than_the_shred_is_outlived_before_the_files_are_searched(
    server: RunningServer, elsewhere: bool
) -> None:
    # A snapshot of Lykta's database older than the delete may still see the rows, and so
    # does VACUUM FULL's own, which reaches back to the oldest transaction running in any
    # database of the server: it would copy them into the tables' new files. The vacuum
    # waits for such transactions to end.
    rt = server.runtime
    await add_line(rt)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        made = await http.post(
            "/api/visitor/mailbox/threads",
            json={"line": "support", "language": "sv", "text": f"canary{uuid.uuid4().hex}"},
        )
        code = made.json()["code"]
        async with unit_of_work(rt.sessionmaker) as session:
            thread = (await session.execute(select(MailboxThread))).scalar_one()
        sealed = [m.sealed[:24] for m in await messages_of(rt, thread.id)]
        older = await _older_transaction(rt, elsewhere)
        try:
            gone = await http.post("/api/visitor/mailbox/delete", json={"code": code})
            assert gone.json() == {"status": "deleted"}
            await asyncio.sleep(1)
            assert rt.mailbox.vacuum_pending  # waiting for the older transaction
            await older.execute("ROLLBACK")
        finally:
            await older.close()
    await eventually(lambda: idle(rt), timeout=VACUUM_WAIT, what="the vacuum after the shred")
    files = await file_blob(rt)
    assert [s for s in sealed if s in files] == []


async def test_a_booking_left_by_an_expired_code_leaves_the_files_when_its_time_is_past(
    server: RunningServer,
) -> None:
    # A continuity code that expires (rather than being deleted) leaves its booked chat until
    # the booked time and the wait after it are past; the sweep then deletes the row, and the
    # same vacuum as after a shred takes its digest out of the bookings tables' files.
    rt = server.runtime
    await add_line(rt)
    anna_id = await add_counsellor(rt, "anna", alias="Anna")
    await give_shift(rt, anna_id)
    booked_at = soon()
    async with unit_of_work(rt.sessionmaker) as session:
        issued = await issue_code(session, rt, anna_id)
        await booking_service.offer(
            session,
            staff_id=uuid.UUID(anna_id),
            line_key="support",
            digest=issued.digest,
            times=[booked_at, booked_at + timedelta(minutes=5)],
            now=utcnow(),
        )
    picked = await pick(server, issued.code, iso(booked_at))
    assert picked.status_code == 200, picked.text
    await eventually(lambda: idle(rt), timeout=VACUUM_WAIT, what="no vacuum pending")
    digest = issued.digest.encode()
    assert digest in await file_blob(rt)

    async with unit_of_work(rt.sessionmaker) as session:
        code = (await session.execute(select(ContinuityCode))).scalar_one()
        code.expires_at = utcnow() - timedelta(minutes=1)
    await purge_codes_and_bookings(rt)
    # The code is gone; its booking waits for its time.
    assert len(await bookings(rt)) == 1
    async with unit_of_work(rt.sessionmaker) as session:
        (booking,) = (await session.execute(select(Booking))).scalars().all()
        booking.starts_at -= timedelta(hours=1)
    await purge_codes_and_bookings(rt)
    assert await bookings(rt) == []

    await eventually(
        lambda: idle(rt), timeout=VACUUM_WAIT, what="the vacuum after the booking's deletion"
    )
    assert digest not in await sql_blob(rt)
    assert digest not in await file_blob(rt)


async def test_a_deleted_continuity_code_leaves_the_files(server: RunningServer) -> None:
    # The visitor deletes her code: its digest leaves the table and the database's files.
    rt = server.runtime
    await add_line(rt)
    anna_id = await add_counsellor(rt, "anna", alias="Anna")
    async with unit_of_work(rt.sessionmaker) as session:
        issued = await issue_code(session, rt, anna_id)
    digest = issued.digest.encode()
    assert digest in await file_blob(rt)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        gone = await http.post("/api/visitor/continuity/delete", json={"code": issued.code})
    assert gone.json() == {"status": "deleted"}
    await eventually(
        lambda: idle(rt), timeout=VACUUM_WAIT, what="the vacuum after the code's deletion"
    )
    assert digest not in await sql_blob(rt)
    assert digest not in await file_blob(rt)
