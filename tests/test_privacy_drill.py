"""`lykta privacy drill`: everything the database could hand over about a window, classified."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.kit.db import Base, create_engine, create_sessionmaker, unit_of_work
from app.lines.service import line_service
from app.models import MailboxMessage, MailboxThread
from app.models.enums import ChatOutcome, Qualification, StaffRole
from app.privacy.drill import IGNORED, RULES
from app.staff.service import staff_service
from app.stats.recorder import ChatFacts
from app.stats.repository import ChatStatisticRepository
from tests.support.seed import line_settings
from tests.test_cli import run_cli


def test_every_table_is_classified() -> None:
    assert set(Base.metadata.tables) <= set(RULES)
    assert set(RULES).isdisjoint(IGNORED)


async def test_the_drill_prints_the_window_and_withholds_secrets(
    database_url: str, tmp_path: Path
) -> None:
    inside = datetime(2026, 3, 10, 14, 25, tzinfo=UTC)
    outside = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    engine = create_engine(database_url)
    async with unit_of_work(create_sessionmaker(engine)) as session:
        anna = await staff_service.create(
            session,
            username="anna",
            alias="Anna",
            role=StaffRole.counsellor,
            password="a long enough password",
            qualification=Qualification.psychologist,
            languages=["sv"],
            capacity=2,
            peer=False,
            supervisor=False,
        )
        await staff_service.open_session(session, anna, absolute=timedelta(hours=12))
        await ChatStatisticRepository(session).add_many(
            [
                ChatFacts("support", inside.timestamp(), 30, 600, ChatOutcome.answered).row(),
                ChatFacts("support", outside.timestamp(), 5, None, ChatOutcome.abandoned).row(),
            ]
        )
        await line_service.upsert(session, line_settings())
        thread = MailboxThread(
            line_key="support",
            digest="d" * 64,
            staff_id=anna.id,
            wrapped_key="dev:wrappedkeycanary",
            status="answered",
            language="sv",
            next_seq=2,
            created_at=inside.replace(second=0),
            last_at=inside.replace(second=0),
            waiting_since=None,
            counted=True,
        )
        session.add(thread)
        await session.flush()
        session.add(
            MailboxMessage(
                thread_id=thread.id,
                seq=1,
                author="visitor",
                staff_id=None,
                at=inside.replace(second=0),
                nonce=b"n" * 12,
                sealed=b"sealedcanary",
            )
        )
    await engine.dispose()

    result = run_cli(
        "privacy", "drill", "--from", "2026-03-01", "--to", "2026-04-01",
        LYKTA_DATABASE_URL=database_url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["window"] == {
        "from": "2026-03-01T00:00:00+00:00",
        "to": "2026-04-01T00:00:00+00:00",
    }
    assert set(report) == {
        "window",
        "staff records",
        "audit log",
        "hourly aggregates",
        "configuration",
        "continuity codes",
        "mailbox threads",
    }
    staff = report["staff records"]["staff"]
    assert [s["username"] for s in staff] == ["anna"]
    assert staff[0]["password_hash"] == "(withheld: a secret)"
    assert "argon2" not in result.stdout
    # The session was opened now, not in March: it is not in the window.
    assert report["staff records"]["staff_sessions"] == []
    # The mailbox: who holds a thread and when it was written to, never what or its keys.
    [thread_row] = report["mailbox threads"]["mailbox_threads"]
    assert thread_row["status"] == "answered" and thread_row["staff_id"] == anna.id.hex
    assert thread_row["digest"] == thread_row["wrapped_key"] == "(withheld: a secret)"
    [message] = report["mailbox threads"]["mailbox_messages"]
    assert message["author"] == "visitor" and message["sealed"] == "(withheld: a secret)"
    assert "canary" not in result.stdout
    stats = report["hourly aggregates"]["chat_statistics"]
    assert [(s["hour"], s["outcome"]) for s in stats] == [("2026-03-10T14:00:00+00:00", "answered")]

    now = datetime.now(UTC)
    current = run_cli(
        "privacy", "drill", "--from", (now - timedelta(hours=1)).isoformat(),
        "--to", (now + timedelta(hours=1)).isoformat(), LYKTA_DATABASE_URL=database_url,
    )  # fmt: skip
    sessions = json.loads(current.stdout)["staff records"]["staff_sessions"]
    assert len(sessions) == 1 and sessions[0]["token_digest"] == "(withheld: a secret)"


def test_an_unclassified_table_stops_the_drill(database_url: str) -> None:
    path = database_url.split(":///", 1)[1]
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE visitor_notes (id INTEGER PRIMARY KEY, body TEXT)")
    result = run_cli(
        "privacy", "drill", "--from", "2026-01-01", "--to", "2026-02-01",
        LYKTA_DATABASE_URL=database_url,
    )  # fmt: skip
    assert result.returncode == 1
    assert "visitor_notes" in result.stderr and "not classified" in result.stderr
    assert result.stdout == ""


def test_bad_windows_are_refused(database_url: str) -> None:
    for window, problem in (
        (("--from", "2026-02-01", "--to", "2026-01-01"), "before"),
        (("--from", "yesterday", "--to", "2026-01-01"), "ISO 8601"),
        (("--from", "2026-01-01", "--to", "2026-01-01"), "before"),
    ):
        result = run_cli("privacy", "drill", *window, LYKTA_DATABASE_URL=database_url)
        assert result.returncode == 2 and problem in result.stderr, result.stderr
    missing = run_cli("privacy", "drill", "--from", "2026-01-01", LYKTA_DATABASE_URL=database_url)
    assert missing.returncode == 2 and "--to" in missing.stderr
