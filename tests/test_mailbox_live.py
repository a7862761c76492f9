"""The mailbox around the live chat: a mailbox code starts a chat with the thread's
counsellor, the queue card and /metrics count waiting threads, retention shreds threads, and
statistics come from anonymous hour rows."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.models import MailboxMessage, MailboxStatistic, MailboxThread
from app.models.enums import StaffRole
from tests.conftest import ServerFactory
from tests.support.clients import api, open_staff, open_visitor, sign_in_session
from tests.support.held import written
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer

pytestmark = pytest.mark.both_brokers


async def new_thread(server: RunningServer, text: str = "hej") -> str:
    async with httpx.AsyncClient(base_url=server.url) as http:
        made = await http.post(
            "/api/visitor/mailbox/threads", json={"line": "support", "language": "sv", "text": text}
        )
    assert made.status_code == 201, made.text
    return str(made.json()["code"])


async def age(server: RunningServer, days: float) -> None:
    """Every thread's last message (and first) moved `days` into the past."""
    async with unit_of_work(server.runtime.sessionmaker) as session:
        for thread in (await session.execute(select(MailboxThread))).scalars():
            thread.last_at -= timedelta(days=days)
            thread.created_at -= timedelta(days=days)
            if thread.waiting_since is not None:
                thread.waiting_since -= timedelta(days=days)


async def test_a_mailbox_code_starts_a_chat_with_the_threads_counsellor(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    await add_counsellor(rt, "bert", alias="Bert")
    code = await new_thread(server)
    anna_http = await sign_in_session(server, "anna", PASSWORD)
    thread_id = (await api(server, anna_http, "GET", "/api/mailbox")).json()["waiting"][0]["id"]
    await api(server, anna_http, "POST", f"/api/mailbox/{thread_id}/claim")

    bert = await open_staff(server, "bert", PASSWORD)
    anna = await open_staff(server, "anna", PASSWORD)
    back = await open_visitor(server)
    await back.send({"type": "start", "line": "support", "language": "sv", "code": code})
    assert (await back.expect("continuity.found"))["name"] == "Anna"
    back.chat_id = (await back.expect("chat.started"))["chat_id"]
    offer = await anna.expect("offer", chat_id=back.chat_id)
    assert offer["continuity"] is True
    await anna.accept(back.chat_id)
    await back.expect("counsellor.joined", name="Anna")
    assert not bert.seen("offer")


async def test_an_unclaimed_threads_code_starts_no_chat(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    code = await new_thread(server)
    await open_staff(server, "anna", PASSWORD)
    back = await open_visitor(server)
    await back.send({"type": "start", "line": "support", "language": "sv", "code": code})
    error = await back.expect("error")
    assert error["code"] == "unknown_code"


async def test_the_queue_card_and_metrics_count_waiting_threads(lykta: ServerFactory) -> None:
    async with lykta(metrics_token="m" * 32) as server:
        rt = server.runtime
        await add_line(rt, mailbox="always")
        await add_counsellor(rt, "anna", alias="Anna")
        anna = await open_staff(server, "anna", PASSWORD)
        first = await anna.expect("queue.summary", line="support")
        assert first["mailbox_waiting"] == 0
        await new_thread(server)
        await new_thread(server)
        await anna.expect("queue.summary", line="support", mailbox_waiting=2)
        async with httpx.AsyncClient(base_url=server.url) as http:
            metrics = await http.get("/metrics", headers={"authorization": "Bearer " + "m" * 32})
        assert 'lykta_mailbox_threads_waiting{line="support"} 2.0' in metrics.text
        signed = await sign_in_session(server, "anna", PASSWORD)
        listed = (await api(server, signed, "GET", "/api/mailbox")).json()
        thread_id = listed["waiting"][0]["id"]
        await api(server, signed, "POST", f"/api/mailbox/{thread_id}/claim")
        # Claimed but not answered: it still waits for an answer.
        await api(server, signed, "POST", f"/api/mailbox/{thread_id}/answer", json={"text": "Hej"})
        await anna.expect("queue.summary", line="support", mailbox_waiting=1)


async def test_retention_shreds_threads_and_counts_them(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt, mailbox_retention_days=3)
    await add_staff(rt, "cora", StaffRole.coordinator)
    old = await new_thread(server, "gammal")
    await age(server, 3)
    young = await new_thread(server, "ung")
    assert await rt.mailbox.sweep() == 1
    async with httpx.AsyncClient(base_url=server.url) as http:
        gone = await http.post("/api/visitor/mailbox/read", json={"code": old})
        kept = await http.post("/api/visitor/mailbox/read", json={"code": young})
    assert gone.status_code == 404 and kept.status_code == 200
    assert kept.json()["deletes_on"] == (utcnow() + timedelta(days=3)).date().isoformat()
    async with unit_of_work(rt.sessionmaker) as session:
        assert len((await session.execute(select(MailboxThread))).all()) == 1
        assert len((await session.execute(select(MailboxMessage))).all()) == 1
    await written(rt, at_least=1)
    async with unit_of_work(rt.sessionmaker) as session:
        stats = (await session.execute(select(MailboxStatistic))).scalars().all()
    assert [(s.first_answer_hours, s.hour.minute) for s in stats] == [(None, 0)]


async def test_statistics_per_week_and_in_the_csv(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt, time_zone="UTC")
    await add_counsellor(rt, "anna", alias="Anna")
    await add_staff(rt, "cora", StaffRole.coordinator)
    anna = await sign_in_session(server, "anna", PASSWORD)
    for _ in range(3):
        await new_thread(server)
    await age(server, 1)  # the first messages came a day ago
    threads = (await api(server, anna, "GET", "/api/mailbox")).json()["waiting"]

    async def answer(thread: dict[str, Any]) -> None:
        await api(server, anna, "POST", f"/api/mailbox/{thread['id']}/claim")
        await api(server, anna, "POST", f"/api/mailbox/{thread['id']}/answer", json={"text": "Hej"})

    cora = await sign_in_session(server, "cora", PASSWORD)
    day = (utcnow() - timedelta(days=1)).date()
    period = {"from": day.isoformat(), "to": day.isoformat()}
    year, week, _ = day.isocalendar()

    async def weekly() -> dict[str, Any]:
        found = await api(server, cora, "GET", "/api/stats/lines/support/mailbox", params=period)
        return dict(found.json())

    async def hourly() -> list[tuple[str, str, str]]:
        export = await api(server, cora, "GET", "/api/stats/export.csv", params=period)
        rows = csv.DictReader(io.StringIO(export.text))
        return [
            (r["line"], r["mailbox_threads"], r["mailbox_median_first_answer_hours"]) for r in rows
        ]

    # Two answered, fewer than the small count (3): their median is their own answer times.
    for thread in threads[:2]:
        await answer(thread)
    assert await written(rt, at_least=2) >= 2
    two = await weekly()
    assert two["weeks"] == [
        {"week": f"{year}-W{week:02d}", "threads": 2, "median_first_answer_hours": None}
    ]
    assert two["small_count"] == 3
    assert await hourly() == [("support", "2", "suppressed")]

    await answer(threads[2])
    assert await written(rt, at_least=1) >= 1
    assert (await weekly())["weeks"] == [
        {"week": f"{year}-W{week:02d}", "threads": 3, "median_first_answer_hours": 24.0}
    ]
    assert await hourly() == [("support", "3", "24")]
    # Counsellors read no statistics.
    refused = await api(server, anna, "GET", "/api/stats/lines/support/mailbox")
    assert refused.status_code == 403
