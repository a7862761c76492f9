"""Wrap-ups read: topics, outcomes, risk and "in danger" from real chats in the statistics API,
the CSV and /metrics, small counts kept back; a practice line's chats in none of them."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import httpx
from sqlalchemy import select

from app.kit.db import unit_of_work
from app.models import ChatStatistic, StaffRole, Wrapup
from app.models.enums import ChatOutcome
from app.stats.recorder import ChatFacts
from tests.conftest import ServerFactory
from tests.support.clients import StaffClient, VisitorClient, open_staff, open_visitor
from tests.support.held import written
from tests.support.roster import http_as, local_now, problem
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer
from tests.test_stats import TOKEN, scrape

TOPICS = ["violence", "health", "housing", "other"]


async def chat_with_wrapup(
    server: RunningServer, anna: StaffClient, line: str, topics: list[str], outcome: str
) -> str:
    """A visitor's chat on `line`, answered, ended by the counsellor and wrapped up."""
    visitor = await open_chat_on(server, anna, line)
    await visitor.expect("counsellor.joined")
    await visitor.say("hej")
    await anna.send({"type": "end", "chat_id": visitor.chat_id})
    await anna.expect("wrapup.required", chat_id=visitor.chat_id)
    await anna.send(
        {"type": "wrapup", "chat_id": visitor.chat_id, "topics": topics, "outcome": outcome}
    )
    await anna.expect("wrapup.saved", chat_id=visitor.chat_id)
    return visitor.chat_id


async def open_chat_on(server: RunningServer, anna: StaffClient, line: str) -> VisitorClient:
    visitor = await open_visitor(server)
    await visitor.start(line=line)
    await anna.accept_offer()
    return visitor


async def test_topics_outcomes_and_risk_from_real_chats_and_practice_in_none(
    lykta: ServerFactory,
) -> None:
    async with lykta(metrics_token=TOKEN, stats_small_count=2) as server:
        rt = server.runtime
        await add_line(rt)
        await add_line(rt, "training", practice=True, practice_openings={"sv": ["Hej?"]})
        await add_staff(rt, "ella", StaffRole.coordinator)
        await add_counsellor(rt, "anna", lines=("support", "training"), capacity=1)
        anna = await open_staff(server, "anna", PASSWORD)
        await chat_with_wrapup(server, anna, "support", ["violence", "health"], "referred")
        await chat_with_wrapup(server, anna, "support", ["violence"], "support given")
        await chat_with_wrapup(server, anna, "support", ["violence", "housing"], "referred")
        # A practice chat: wrapped up like any other, kept out of every statistic.
        await chat_with_wrapup(server, anna, "training", ["violence"], "referred")
        # Risk and "in danger" reach the chat's statistics row at its end (set by the chat
        # core's risk feature); held here through the same path.
        await rt.held_rows.hold(
            ChatFacts("support", rt.broker.now(), 5, 60, ChatOutcome.answered, "acute", True).row(),
            ChatFacts("support", rt.broker.now(), 5, 60, ChatOutcome.answered, "acute", True).row(),
            ChatFacts("support", rt.broker.now(), 5, 60, ChatOutcome.answered, "concern").row(),
            ChatFacts(
                "training", rt.broker.now(), 5, 60, ChatOutcome.answered, "acute", True
            ).row(),
        )
        await written(rt)
        async with unit_of_work(rt.sessionmaker) as session:
            lines_of_rows = {
                *(await session.execute(select(ChatStatistic.line_key))).scalars(),
                *(await session.execute(select(Wrapup.line_key))).scalars(),
            }
        assert lines_of_rows == {"support"}

        today = local_now().date()
        async with http_as(server, "ella") as ella:
            week = (await ella.get("/api/stats/lines/support/wrapups")).json()
            month = await ella.get("/api/stats/lines/support/wrapups", params={"by": "month"})
            export = await ella.get("/api/stats/wrapups.csv", params={"by": "month"})
            practice = (await ella.get("/api/stats/lines/training/wrapups")).json()
            demand = (await ella.get("/api/stats/lines/training/demand")).json()
        assert week["period"] == "week" and week["small_count"] == 2
        this_week = week["periods"][-1]
        assert this_week["start"] == (today - timedelta(days=today.weekday())).isoformat()
        assert this_week["wrapups"] == 3
        # Shown from 2 up; a count of 1 is too few to show (null).
        assert this_week["topics"] == {
            "violence": 3,
            "health": None,
            "housing": None,
            "other": 0,
        }
        assert this_week["outcomes"] == {"support given": None, "referred": 2}
        # Six answered chats' rows: three real chats (their counsellor set no risk: none) and
        # three held ones.
        assert this_week["chats"] == 6
        assert this_week["risk"] == {"none": 3, "concern": None, "acute": 2}
        assert this_week["in_danger"] == 2
        assert all(p["wrapups"] == 0 for p in week["periods"][:-1])
        this_month = month.json()["periods"][-1]
        assert this_month["topics"]["violence"] == 3
        assert this_month["start"] == today.replace(day=1).isoformat()

        assert export.status_code == 200
        rows = list(csv.DictReader(io.StringIO(export.text)))
        mine = {
            (r["measure"], r["name"]): r["count"]
            for r in rows
            if r["start"] == today.replace(day=1).isoformat()
        }
        assert mine[("topic", "violence")] == "3"
        assert mine[("topic", "health")] == "<2"
        assert mine[("outcome", "referred")] == "2"
        assert mine[("risk", "acute")] == "2"
        assert mine[("in_danger", "")] == "2"
        assert {r["line"] for r in rows} == {"support"}

        # The practice line: nothing in its statistics, demand, or /metrics.
        assert all(p["wrapups"] == 0 and p["chats"] == 0 for p in practice["periods"])
        assert demand["totals"]["requested"] == 0
        metrics = await scrape(server.url)
        assert (
            metrics[
                (
                    "lykta_wrapup_topics",
                    (("line", "support"), ("topic", "violence"), ("window", "7d")),
                )
            ]
            == 3
        )
        assert (
            metrics[
                (
                    "lykta_wrapup_outcomes",
                    (("line", "support"), ("outcome", "referred"), ("window", "30d")),
                )
            ]
            == 2
        )
        assert (
            metrics[
                ("lykta_chats_risk", (("line", "support"), ("risk", "acute"), ("window", "7d")))
            ]
            == 2
        )
        assert metrics[("lykta_chats_in_danger", (("line", "support"), ("window", "7d")))] == 2
        # Too few to show: left out.
        assert (
            "lykta_wrapup_topics",
            (("line", "support"), ("topic", "health"), ("window", "7d")),
        ) not in metrics
        assert not [key for key in metrics if ("line", "training") in key[1]]


async def test_wrapup_statistics_refuse_bad_input(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_staff(rt, "ella", StaffRole.coordinator)
    await add_counsellor(rt, "anna")
    async with http_as(server, "ella") as ella:
        for params in (
            {"by": "year"},
            {"by": "x" * 5000},
            {"from": "2026-13-01"},
            {"from": "2026-01-10", "to": "2026-01-01"},
            {"from": "2020-01-01", "to": "2026-01-01"},
        ):
            response = await ella.get("/api/stats/lines/support/wrapups", params=params)
            assert response.status_code in (400, 422), response.text
            assert "x" * 50 not in response.text
            csv_response = await ella.get("/api/stats/wrapups.csv", params=params)
            assert csv_response.status_code in (400, 422), csv_response.text
        problem(await ella.get("/api/stats/lines/nowhere/wrapups"), 404, "unknown_line")
        problem(
            await ella.get("/api/stats/wrapups.csv", params={"line": "nowhere"}),
            404,
            "unknown_line",
        )
    # Counsellors read no statistics; nobody signed out does.
    async with http_as(server, "anna") as anna:
        assert (await anna.get("/api/stats/lines/support/wrapups")).status_code == 403
        assert (await anna.get("/api/stats/wrapups.csv")).status_code == 403
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        assert (await anonymous.get("/api/stats/lines/support/wrapups")).status_code == 401
