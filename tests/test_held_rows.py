"""A chat's durable rows tell no more than the hour: its audit entries, statistics row and
wrap-up are held in the broker and written after their hour, shuffled, in one transaction
(docs/privacy.md, "When a chat's rows are written"). Rows about no chat are written at once.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text

from app.audit.service import AuditAction, audit_service
from app.broker.base import Broker
from app.held.rows import serialise
from app.held.service import HOUR, SETTLE_SECONDS, HeldRows, hour_of
from app.kit.db import create_engine, create_sessionmaker, unit_of_work
from app.models import AuditEntry, ChatStatistic, Debrief, Staff, StaffRole, Wrapup
from app.settings import Settings
from tests.conftest import FAST, BrokerFactory, ServerFactory
from tests.support.clients import Endpoint, StaffClient, api, open_chat, open_staff, sign_in_session
from tests.support.held import after_the_hour, written
from tests.support.postgres import accepted_again, refused_at_commit
from tests.support.processes import processes, seeding
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff

pytestmark = pytest.mark.both_brokers

# Enough chats that a shuffle giving back their order (1 in 24!) never happens by chance.
CHATS = 24
SAVE = {"topics": ["violence"], "outcome": "support given"}
# What a test needs before the hour ends (seconds): more than any of these tests takes.
MARGIN = 45.0


async def clear_of_the_hour_end(broker: Broker) -> None:
    """Wait, if need be, until the hour has more than MARGIN seconds left, so a test's rows
    are all held under one hour (a bound on waiting, rarely reached: one test in 80)."""
    left = hour_of(broker.now()) + HOUR - broker.now()
    if left < MARGIN:
        await asyncio.sleep(left + SETTLE_SECONDS + 1)


async def wrapped_up_chat(server: Endpoint, anna: StaffClient) -> str:
    """A chat anna accepts, the visitor ends, and anna wraps up: three rows about it."""
    visitor = await open_chat(server, anna)
    await visitor.expect("counsellor.joined")
    await visitor.send({"type": "end"})
    await visitor.expect("chat.ended")
    await anna.expect("wrapup.required", chat_id=visitor.chat_id)
    await anna.send({"type": "wrapup", "chat_id": visitor.chat_id, **SAVE})
    await anna.expect("wrapup.saved", chat_id=visitor.chat_id)
    await visitor.close()
    return visitor.chat_id


async def chat_rows(database_url: str) -> tuple[int, int, int]:
    """(audit entries naming a chat, statistics rows, wrap-ups) in the database."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            counts = []
            for statement in (
                select(func.count()).select_from(AuditEntry).where(AuditEntry.chat_id.is_not(None)),
                select(func.count()).select_from(ChatStatistic),
                select(func.count()).select_from(Wrapup),
            ):
                counts.append((await session.execute(statement)).scalar_one())
    finally:
        await engine.dispose()
    return counts[0], counts[1], counts[2]


@pytest.mark.postgres
async def test_a_batch_is_written_after_its_hour_in_one_transaction_not_in_chat_order(
    lykta: ServerFactory, database_url_pg: str
) -> None:
    async with lykta(database_url=database_url_pg) as server:
        rt = server.runtime
        await clear_of_the_hour_end(rt.broker)
        await add_line(rt)
        await add_staff(rt, "cora", StaffRole.coordinator)
        await add_counsellor(rt, "anna", capacity=1)
        cora = await sign_in_session(server, "cora", PASSWORD)
        anna = await open_staff(server, "anna", PASSWORD)
        order = [await wrapped_up_chat(server, anna) for _ in range(CHATS)]

        # Until the hour is over, nothing about the chats is in the database or shown.
        assert await rt.held_rows.flush_due(rt.broker.now()) == 0
        assert await chat_rows(database_url_pg) == (0, 0, 0)
        log = (await api(server, cora, "GET", "/api/audit")).json()["entries"]
        assert {e["action"] for e in log} == {"sign_in"}
        assert len(await rt.broker.held_hours()) == 1

        assert await written(rt) == 3 * CHATS
        assert await chat_rows(database_url_pg) == (CHATS, CHATS, CHATS)
        async with rt.engine.connect() as connection:
            # One transaction for the whole batch: one commit, one commit time, whatever
            # PostgreSQL's write-ahead log records.
            batch = set(
                (
                    await connection.execute(
                        text(
                            "SELECT xmin::text FROM audit_log WHERE chat_id IS NOT NULL"
                            " UNION SELECT xmin::text FROM chat_statistics"
                            " UNION SELECT xmin::text FROM wrapups"
                        )
                    )
                ).scalars()
            )
            assert len(batch) == 1
            sign_ins = set(
                (
                    await connection.execute(
                        text("SELECT xmin::text FROM audit_log WHERE chat_id IS NULL")
                    )
                ).scalars()
            )
            assert sign_ins and sign_ins.isdisjoint(batch)
            # The table's physical order is not the order the chats came in.
            stored = list(
                (
                    await connection.execute(
                        text(
                            "SELECT chat_id FROM audit_log WHERE action = 'chat.accepted'"
                            " ORDER BY ctid"
                        )
                    )
                ).scalars()
            )
        assert sorted(stored) == sorted(order)
        assert stored not in (order, order[::-1])

        # Now the coordinator sees them, at their hour.
        log = (await api(server, cora, "GET", "/api/audit", params={"action": "chat"})).json()
        assert len(log["entries"]) == CHATS
        assert all(e["at"].endswith(":00:00Z") for e in log["entries"])
        # Written once: nothing is left to write.
        assert await written(rt) == 0
        assert await rt.broker.held_hours() == []


async def test_rows_about_no_chat_are_written_at_once(lykta: ServerFactory) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna")
        await open_staff(server, "anna", PASSWORD)
        async with rt.sessionmaker() as session:
            actions = (await session.execute(select(AuditEntry.action))).scalars().all()
        assert list(actions) == ["sign_in"]
        assert await rt.broker.held_hours() == []


async def test_a_batch_whose_writer_died_after_its_commit_is_not_written_twice(
    broker_factory: BrokerFactory, database_url: str
) -> None:
    engine = create_engine(database_url)
    async with broker_factory() as broker:
        held = HeldRows(broker, create_sessionmaker(engine))
        rows = [
            audit_service.entry(AuditAction.offer_accepted, actor_id=None, chat_id=f"chat-{n:04}")
            for n in range(50)
        ]
        await held.hold(*rows)
        assert await held.flush_due(after_the_hour(held)) == 50
        # As if the writer had died between its commit and forgetting the rows: its claim
        # lapses and the next writer finds them again.
        await broker.hold_rows(hour_of(broker.now()), [serialise(row) for row in rows])
        assert await held.flush_due(after_the_hour(held)) == 0
        assert await chat_rows(database_url) == (50, 0, 0)
        assert await broker.held_hours() == []
    await engine.dispose()


async def test_a_held_debrief_whose_counsellor_is_gone_does_not_hold_up_the_batch(
    lykta: ServerFactory,
) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt)
        anna = uuid.UUID(await add_counsellor(rt, "anna"))
        gone = uuid.UUID(await add_counsellor(rt, "gone"))
        hour = datetime.fromtimestamp(hour_of(rt.broker.now()), UTC)
        kept = Debrief(line_key="support", hour=hour, risk="acute", staff_id=anna)
        dropped = Debrief(line_key="support", hour=hour, risk="concern", staff_id=gone)
        entry = audit_service.entry(AuditAction.debrief_asked, actor_id=None, chat_id="chat-0001")
        await rt.held_rows.hold(kept, dropped, entry)
        # The account goes before the hour is over, as the foreign key's cascade would.
        async with unit_of_work(rt.sessionmaker) as session:
            await session.execute(delete(Staff).where(Staff.id == gone))
        assert await written(rt) == 2
        async with rt.sessionmaker() as session:
            rows = (await session.execute(select(Debrief.staff_id, Debrief.risk))).all()
            audited = (
                await session.execute(
                    select(AuditEntry.chat_id).where(AuditEntry.chat_id.is_not(None))
                )
            ).scalars()
            assert [tuple(row) for row in rows] == [(anna, "acute")]
            assert list(audited) == ["chat-0001"]
        assert await rt.broker.held_hours() == []


@pytest.mark.redis_only
async def test_two_processes_write_each_batch_once(
    broker_factory: BrokerFactory, database_url: str
) -> None:
    engine = create_engine(database_url)
    async with broker_factory() as one, broker_factory() as two:
        first = HeldRows(one, create_sessionmaker(engine))
        second = HeldRows(two, create_sessionmaker(engine))
        for n in range(200):
            process = first if n % 2 else second
            await process.hold(
                audit_service.entry(AuditAction.chat_observed, actor_id=None, chat_id=f"c{n:04}")
            )
        counts = await asyncio.gather(
            first.flush_due(after_the_hour(first)), second.flush_due(after_the_hour(second))
        )
        assert sum(counts) == 200
        assert await chat_rows(database_url) == (200, 0, 0)
    await engine.dispose()


@pytest.mark.postgres
async def test_a_batch_the_database_refuses_stays_held_and_is_written_later(
    lykta: ServerFactory, database_url_pg: str
) -> None:
    async with lykta(database_url=database_url_pg) as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna")
        anna = await open_staff(server, "anna", PASSWORD)
        # The wrap-up counts as saved once held: it is owed no more.
        chat_id = await wrapped_up_chat(server, anna)
        again = await open_staff(server, "anna", PASSWORD, available=False)
        assert again.hello["wrapups"] == []
        async with rt.engine.begin() as connection:
            for statement in refused_at_commit("wrapups", "INSERT"):
                await connection.execute(text(statement))

        with pytest.raises(Exception, match="refused at commit"):
            await written(rt)
        assert await chat_rows(database_url_pg) == (0, 0, 0)

        async with rt.engine.begin() as connection:
            await connection.execute(text(accepted_again("wrapups")))
        assert await written(rt) == 3
        assert await chat_rows(database_url_pg) == (1, 1, 1)
        async with rt.sessionmaker() as session:
            entry = (
                await session.execute(select(AuditEntry).where(AuditEntry.chat_id == chat_id))
            ).scalar_one()
        assert entry.action == "chat.accepted"


def embedded_settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, **FAST)


async def test_sigterm_writes_what_the_embedded_broker_holds(
    tmp_path: Path, database_url: str
) -> None:
    settings = embedded_settings(database_url)
    async with seeding(settings) as rt:
        await add_line(rt)
        await add_counsellor(rt, "anna")
    async with processes(settings, tmp_path, count=1) as (lykta,):
        anna = await open_staff(lykta, "anna", PASSWORD)
        await wrapped_up_chat(lykta, anna)
        assert await chat_rows(database_url) == (0, 0, 0)
        lykta.signal(signal.SIGTERM)
        assert await lykta.wait_exit() in (0, -signal.SIGTERM)
    assert await chat_rows(database_url) == (1, 1, 1)


@pytest.mark.postgres
@pytest.mark.redis
async def test_held_rows_outlive_a_sigkill_on_redis_and_the_next_process_writes_them(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    settings = scale_settings()
    async with seeding(settings) as rt:
        await add_line(rt)
        await add_counsellor(rt, "anna")
    async with processes(settings, tmp_path, count=1) as (lykta,):
        anna = await open_staff(lykta, "anna", PASSWORD)
        await wrapped_up_chat(lykta, anna)
        lykta.signal(signal.SIGKILL)
        assert await lykta.wait_exit() == -signal.SIGKILL
    assert await chat_rows(settings.database_url) == (0, 0, 0)
    # The next process to look once the hour is over writes them: here, this test's own.
    async with seeding(settings) as rt:
        await rt.broker.start()
        try:
            assert await written(rt) == 3
        finally:
            await rt.broker.close()
    assert await chat_rows(settings.database_url) == (1, 1, 1)
