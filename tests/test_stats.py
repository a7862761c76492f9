"""Demand, CSV export and /metrics, from statistics rows and counters made by real chats."""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from datetime import timedelta
from statistics import median

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from sqlalchemy import select

from app.kit.db import unit_of_work
from app.models import ChatStatistic, StaffRole
from app.roster.occurrences import hour_of_week
from app.runtime import Runtime
from app.settings import Settings
from tests.conftest import ServerFactory
from tests.support.clients import open_chat, open_staff, open_visitor
from tests.support.held import written
from tests.support.roster import STOCKHOLM, http_as, local_now, problem
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff

TOKEN = "metrics-token-for-tests-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, parsed by the Prometheus client."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def line(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted({"line": "support", **labels}.items()))


async def scrape(server_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(base_url=server_url) as http:
        response = await http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def statistics(rt: Runtime, count: int) -> list[ChatStatistic]:
    """The statistics rows, written as once their hour is over (a chat's end may still be
    holding its row when its visitor is told)."""
    for _ in range(200):
        await written(rt)
        async with unit_of_work(rt.sessionmaker) as session:
            rows = list((await session.execute(select(ChatStatistic))).scalars().all())
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError("statistics rows were not held")


async def test_demand_csv_and_metrics_from_real_chats(lykta: ServerFactory) -> None:
    async with lykta(metrics_token=TOKEN) as server:
        rt = server.runtime
        await add_line(rt)
        await add_staff(rt, "ella", StaffRole.coordinator)
        await add_counsellor(rt, "anna", capacity=1)
        anna = await open_staff(server, "anna", PASSWORD)

        answered = await open_chat(server, anna)
        await answered.say("hello")
        gave_up = await open_visitor(server)
        await gave_up.start()
        await gave_up.expect("queue.position", position=1)

        during = await scrape(server.url)
        assert during[line("lykta_queue_length")] == 1
        assert during[line("lykta_counsellors_on_duty")] == 1
        assert during[line("lykta_counsellors_available")] == 1
        assert during[line("lykta_line_open")] == 1
        assert during[line("lykta_offers_total")] == 1
        assert during[line("lykta_chats_requested_total")] == 2
        assert during[line("lykta_chats_answered_total")] == 1
        assert during[line("lykta_queue_longest_wait_seconds")] >= 0

        await gave_up.send({"type": "end"})
        await gave_up.expect("chat.ended")
        await anna.send({"type": "status", "status": "away"})
        await anna.expect("status", status="away")
        turned_away = await open_visitor(server)
        await turned_away.send({"type": "start", "line": "support", "language": "sv"})
        await turned_away.expect("line.closed")
        await answered.send({"type": "end"})
        await answered.expect("chat.ended")

        after = await scrape(server.url)
        assert after[line("lykta_chats_requested_total")] == 3
        assert after[line("lykta_chats_answered_total")] == 1
        assert after[line("lykta_chats_abandoned_total")] == 1
        assert after[line("lykta_chats_turned_away_total", reason="closed")] == 1
        assert after[line("lykta_chats_turned_away_total", reason="full")] == 0
        assert after[line("lykta_queue_length")] == 0
        assert after[line("lykta_counsellors_available")] == 0
        assert after[line("lykta_line_open")] == 0
        # Ad hoc duty is not a shift: the roster needs nobody on this line now.
        assert after[line("lykta_roster_needed")] == 0
        async with httpx.AsyncClient(base_url=server.url) as http:
            text = (await http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})).text
        for chat in (answered, gave_up):
            assert chat.chat_id not in text

        rows = await statistics(rt, 3)
        assert sorted(r.outcome for r in rows) == ["abandoned", "answered", "closed"]
        today = local_now().date()
        async with http_as(server, "ella") as ella:
            demand = await ella.get(
                "/api/stats/lines/support/demand",
                params={"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()},
            )
            assert demand.status_code == 200
            body = demand.json()
            export = await ella.get(
                "/api/stats/export.csv",
                params={
                    "from": (today - timedelta(days=1)).isoformat(),
                    "to": (today + timedelta(days=1)).isoformat(),
                },
            )

        # The figures per hour of the week are those of the rows the chats left.
        expected = Counter(hour_of_week(r.hour, STOCKHOLM) for r in rows)
        assert {h["hour_of_week"]: h["requested"] for h in body["hours"] if h["requested"]} == dict(
            expected
        )
        assert body["totals"]["requested"] == 3
        assert (body["totals"]["answered"], body["totals"]["abandoned"]) == (1, 1)
        assert body["totals"]["turned_away"] == 1
        wait = next(r.waited_seconds for r in rows if r.outcome == "answered")
        assert wait is not None
        assert body["totals"]["median_wait_seconds"] == median([wait])
        assert body["totals"]["p90_wait_seconds"] == wait
        assert len(body["hours"]) == 168 and all(h["weeks"] == 1 for h in body["hours"])

        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        assert "attachment" in export.headers["content-disposition"]
        table = list(csv.DictReader(io.StringIO(export.text)))
        assert {r["line"] for r in table} == {"support"}
        assert sum(int(r["requested"]) for r in table) == 3
        assert sum(int(r["answered"]) for r in table) == 1
        assert sum(int(r["closed"]) for r in table) == 1
        # One row per line and hour, never one per chat.
        assert len(table) == len({r.hour for r in rows})


async def test_statistics_and_metrics_refuse_bad_input(lykta: ServerFactory) -> None:
    async with lykta(metrics_token=TOKEN) as server:
        await add_line(server.runtime)
        await add_staff(server.runtime, "ella", StaffRole.coordinator)
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/metrics")).status_code == 401
            wrong = await http.get("/metrics", headers={"authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith(
                "Bearer"
            )
            basic = await http.get("/metrics", headers={"authorization": f"Basic {TOKEN}"})
            assert basic.status_code == 401
        async with http_as(server, "ella") as ella:
            url = "/api/stats/lines/support/demand"
            problem(
                await ella.get(url, params={"from": "2026-03-02", "to": "2026-03-01"}),
                422,
                "invalid_range",
            )
            problem(
                await ella.get(url, params={"from": "2024-01-01", "to": "2026-01-01"}),
                422,
                "invalid_range",
            )
            assert (await ella.get(url, params={"from": "yesterday"})).status_code == 422
            problem(await ella.get("/api/stats/lines/nowhere/demand"), 404, "unknown_line")
            problem(
                await ella.get("/api/stats/export.csv", params={"line": "nowhere"}),
                404,
                "unknown_line",
            )
            assert (
                await ella.get("/api/stats/export.csv", params={"line": "x" * 40})
            ).status_code == 422
    async with lykta() as server, httpx.AsyncClient(base_url=server.url) as http:
        off = await http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert off.status_code == 404
    with pytest.raises(ValidationError, match="at least 24 characters"):
        Settings(metrics_token="short")
