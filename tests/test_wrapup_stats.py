"""Wrap-ups read: topics, outcomes, risk and "in danger" from real chats in the statistics API,
the CSV and /metrics, small counts kept back; a practice line's chats in none of them."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from app.kit.db import unit_of_work
from app.kit.migrate import upgrade
from app.models import ChatStatistic, StaffRole, Wrapup
from app.models.enums import ChatOutcome
from app.stats.recorder import ChatFacts
from app.stats.wrapups import shown_parts
from tests.conftest import ServerFactory
from tests.support.clients import StaffClient, VisitorClient, open_staff, open_visitor, sign_in
from tests.support.held import written
from tests.support.postgres import fresh_database
from tests.support.roster import http_as, local_now, problem
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer
from tests.support.waiting import eventually
from tests.test_stats import TOKEN, scrape

TOPICS = ["violence", "health", "housing", "other"]


async def chat_with_wrapup(
    server: RunningServer,
    anna: StaffClient,
    line: str,
    topics: list[str],
    outcome: str,
    player: str | None = None,
) -> str:
    """A visitor's chat on `line`, answered, ended by the counsellor and wrapped up; on a
    practice line the visitor is played by staff with the session `player`."""
    visitor = await open_chat_on(server, anna, line, player)
    await visitor.expect("counsellor.joined")
    await visitor.say("hej")
    await anna.send({"type": "end", "chat_id": visitor.chat_id})
    await anna.expect("wrapup.required", chat_id=visitor.chat_id)
    await anna.send(
        {"type": "wrapup", "chat_id": visitor.chat_id, "topics": topics, "outcome": outcome}
    )
    await anna.expect("wrapup.saved", chat_id=visitor.chat_id)
    return visitor.chat_id


async def open_chat_on(
    server: RunningServer, anna: StaffClient, line: str, player: str | None = None
) -> VisitorClient:
    cookie = {"Cookie": f"lykta_session={player}"} if player is not None else None
    visitor = await open_visitor(server, headers=cookie)
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
        await chat_with_wrapup(server, anna, "support", ["violence"], "referred")
        await chat_with_wrapup(server, anna, "support", ["violence", "housing"], "referred")
        # A practice chat, Ella playing the visitor: wrapped up like any other, kept out of
        # every statistic.
        player = await sign_in(server, "ella", PASSWORD)
        await chat_with_wrapup(server, anna, "training", ["violence"], "referred", player)
        # Risk and "in danger" reach the chat's statistics row at its end (set by the chat
        # core's risk feature); held here through the same path.
        await rt.held_rows.hold(
            ChatFacts("support", rt.broker.now(), 5, 60, ChatOutcome.answered, "acute", True).row(),
            ChatFacts("support", rt.broker.now(), 5, 60, ChatOutcome.answered, "acute", True).row(),
            ChatFacts("support", rt.broker.now(), 5, 60, ChatOutcome.answered, "concern").row(),
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
        assert this_week["outcomes"] == {"support given": 0, "referred": 3}
        # Seven answered chats' rows: three real chats (their counsellor set no risk: none) and
        # four held ones.
        assert this_week["chats"] == 7
        assert this_week["risk"] == {"none": 3, "concern": 2, "acute": 2}
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
        assert mine[("topic", "health")] == "suppressed"
        assert mine[("outcome", "referred")] == "3"
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
            == 3
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


def worked_out(total: int | None, cells: dict[str, int | None]) -> dict[str, int]:
    """The counts kept back (None) that subtraction gives away, to someone who knows only
    what is shown and that a count kept back is at least 1 (zero is shown as zero): the one
    kept back alone, or several that can only be 1 each."""
    if total is None:
        return {}
    hidden = [name for name, value in cells.items() if value is None]
    rest = total - sum(value for value in cells.values() if value is not None)
    if len(hidden) == 1 or (hidden and rest == len(hidden)):
        return {name: rest // len(hidden) for name in hidden}
    return {}


@pytest.fixture(params=["sqlite", "postgresql"])
async def either_database(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[str]:
    """The test's SQLite database, or a fresh PostgreSQL one: counts are made in SQL."""
    if request.param == "sqlite":
        yield database_url
        return
    async with fresh_database() as url:
        await upgrade(url)
        yield url


async def test_a_count_kept_back_cannot_be_worked_out_from_the_total(
    lykta: ServerFactory, either_database: str
) -> None:
    # The default small count, 3. Before complementary suppression: "referred" (1) was kept
    # back beside "support given" (3) of 4 wrap-ups, and "concern" and "acute" (1 each)
    # beside "none" (4) of 6 answered chats: 4 - 3 and 6 - 4 = 1 + 1 gave them away.
    async with lykta(metrics_token=TOKEN, database_url=either_database) as server:
        rt = server.runtime
        await add_line(rt)
        await add_staff(rt, "ella", StaffRole.coordinator)
        await add_counsellor(rt, "anna", capacity=1)
        anna = await open_staff(server, "anna", PASSWORD)
        await chat_with_wrapup(server, anna, "support", ["violence", "health"], "referred")
        for _ in range(3):
            await chat_with_wrapup(server, anna, "support", ["violence"], "support given")
        now = rt.broker.now()
        await rt.held_rows.hold(
            ChatFacts("support", now, 5, 60, ChatOutcome.answered, "concern").row(),
            ChatFacts("support", now, 5, 60, ChatOutcome.answered, "acute", True).row(),
        )
        await written(rt)
        today = local_now().date()
        async with http_as(server, "ella") as ella:
            week = (await ella.get("/api/stats/lines/support/wrapups")).json()["periods"][-1]
            export = await ella.get("/api/stats/wrapups.csv", params={"line": "support"})
        metrics = await scrape(server.url)

    assert week["wrapups"] == 4 and week["chats"] == 6
    assert worked_out(week["wrapups"], week["outcomes"]) == {}
    assert worked_out(week["chats"], week["risk"]) == {}
    assert week["outcomes"] == {"support given": None, "referred": None}
    assert week["risk"] == {"none": None, "concern": None, "acute": None}
    assert week["in_danger"] is None
    # Topics overlap (a wrap-up names several or none): they add up to no total, and only
    # the small one is kept back.
    assert week["topics"] == {"violence": 4, "health": None, "housing": 0, "other": 0}

    # The CSV keeps back the same counts, all marked alike.
    monday = (today - timedelta(days=today.weekday())).isoformat()
    rows = list(csv.DictReader(io.StringIO(export.text)))
    cell = {(r["measure"], r["name"]): r["count"] for r in rows if r["start"] == monday}
    assert cell[("wrapups", "")] == "4" and cell[("chats", "")] == "6"
    assert cell[("topic", "violence")] == "4" and cell[("topic", "health")] == "suppressed"
    assert {cell[("outcome", name)] for name in ("support given", "referred")} == {"suppressed"}
    assert {cell[("risk", name)] for name in ("none", "concern", "acute")} == {"suppressed"}

    # /metrics leaves out what the API keeps back; zero is a sample of its own.
    def sample(name: str, label: str, value: str) -> float | None:
        labels = tuple(sorted({"line": "support", label: value, "window": "7d"}.items()))
        return metrics.get((name, labels))

    assert sample("lykta_wrapup_topics", "topic", "violence") == 4
    assert sample("lykta_wrapup_topics", "topic", "housing") == 0
    assert sample("lykta_wrapup_topics", "topic", "health") is None
    assert sample("lykta_wrapup_outcomes", "outcome", "support given") is None
    assert sample("lykta_wrapup_outcomes", "outcome", "referred") is None
    for level in ("none", "concern", "acute"):
        assert sample("lykta_chats_risk", "risk", level) is None


def test_kept_back_counts_fit_more_than_one_split() -> None:
    """Every group of up to three counts of 0..6, and of four of 0..4, whose total is shown,
    for small counts 2 to 4: someone who knows the rule and sees what is shown finds more
    than one value for each count kept back (among the splits of the rest into the counts
    kept back, those the rule would have shown the same way)."""
    for small in (2, 3, 4):
        for size in (1, 2, 3, 4):
            for values in itertools.product(range(7 if size < 4 else 5), repeat=size):
                parts = {f"c{i}": v for i, v in enumerate(values)}
                total, shown = shown_parts(sum(values), parts, small)
                hidden = [name for name, value in shown.items() if value is None]
                if total is None or not hidden:
                    continue
                rest = total - sum(v for v in shown.values() if v is not None)
                seen: dict[str, set[int]] = {name: set() for name in hidden}
                for split in itertools.product(range(1, rest + 1), repeat=len(hidden)):
                    if sum(split) != rest:
                        continue
                    guess = {**parts, **dict(zip(hidden, split, strict=True))}
                    if shown_parts(sum(guess.values()), guess, small) == (total, shown):
                        for name, value in zip(hidden, split, strict=True):
                            seen[name].add(value)
                assert all(len(found) > 1 for found in seen.values()), (small, parts, shown)


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


async def wrap_up(anna: StaffClient, chat_id: str, topics: list[str], outcome: str) -> None:
    await anna.send({"type": "wrapup", "chat_id": chat_id, "topics": topics, "outcome": outcome})
    await anna.expect("wrapup.saved", chat_id=chat_id)


async def end_and_wrap_up(
    anna: StaffClient, visitor: VisitorClient, topics: list[str], outcome: str
) -> None:
    await anna.send({"type": "end", "chat_id": visitor.chat_id})
    await anna.expect("wrapup.required", chat_id=visitor.chat_id)
    await wrap_up(anna, visitor.chat_id, topics, outcome)


async def set_risk(anna: StaffClient, chat_id: str, level: str) -> None:
    await anna.send({"type": "risk", "chat_id": chat_id, "level": level})
    await anna.expect("risk.set", chat_id=chat_id, risk=level)


async def take_a_moment(anna: StaffClient) -> None:
    """After an acute chat the counsellor's pause begins; she is ready again."""
    await anna.expect("care.paused")
    await anna.send({"type": "ready"})
    await anna.expect("care.ready")


async def test_risk_and_in_danger_from_real_chats_count_the_level_at_the_end(
    lykta: ServerFactory,
) -> None:
    # Small counts from 2: the counts of 2 and up below are shown, "health" (1) is not.
    async with lykta(metrics_token=TOKEN, stats_small_count=2) as server:
        rt = server.runtime
        await add_line(rt)
        await add_staff(rt, "ella", StaffRole.coordinator)
        await add_counsellor(rt, "anna", capacity=1)

        anna = await open_staff(server, "anna", PASSWORD)
        # 1. A visitor presses "I am in danger" during the chat; Anna sets it acute.
        during = await open_chat_on(server, anna, "support")
        await during.expect("counsellor.joined")
        # 2. Meanwhile another, waiting (Anna is full), presses it too.
        waiting = await open_visitor(server)
        await waiting.start()
        await waiting.send({"type": "danger"})
        await waiting.expect("danger.noted")
        await during.send({"type": "danger"})
        await during.expect("danger.noted")
        await anna.expect("chat.in_danger", chat_id=during.chat_id)
        await set_risk(anna, during.chat_id, "acute")
        await end_and_wrap_up(anna, during, ["violence", "health"], "referred")
        await take_a_moment(anna)
        offer = await anna.expect("offer")
        assert offer["chat_id"] == waiting.chat_id and offer["in_danger"] is True
        await anna.accept(waiting.chat_id)
        await waiting.expect("counsellor.joined")
        await set_risk(anna, waiting.chat_id, "acute")
        await end_and_wrap_up(anna, waiting, ["violence"], "referred")
        await take_a_moment(anna)

        # 3, 4. Concern on two chats.
        for _ in range(2):
            visitor = await open_chat_on(server, anna, "support")
            await visitor.expect("counsellor.joined")
            await set_risk(anna, visitor.chat_id, "concern")
            await end_and_wrap_up(anna, visitor, ["housing"], "support given")

        # 5. Concern during the chat; the visitor leaves, and Anna judges it acute only in
        # the wrap-up (the chat has ended: the `risk` frame is taken while its wrap-up is due).
        late = await open_chat_on(server, anna, "support")
        await late.expect("counsellor.joined")
        await set_risk(anna, late.chat_id, "concern")
        await late.send({"type": "end"})
        required = await anna.expect("wrapup.required", chat_id=late.chat_id)
        assert required["risk"] == "concern"
        await anna.send({"type": "risk", "chat_id": late.chat_id, "level": "acute"})
        done = await anna.expect("risk.set", chat_id=late.chat_id, risk="acute")
        assert done["ended"] is True
        await wrap_up(anna, late.chat_id, ["violence"], "referred")

        # The rows are held until their hour is over; the hour ends by asking for it.
        stats: list[tuple[str, bool]] = []
        wrapup_risks: list[str] = []

        async def all_five_written() -> bool:
            nonlocal stats, wrapup_risks
            await written(rt)
            async with unit_of_work(rt.sessionmaker) as session:
                stats = sorted(
                    (s.risk, s.in_danger)
                    for s in (await session.execute(select(ChatStatistic))).scalars()
                )
                wrapup_risks = sorted((await session.execute(select(Wrapup.risk))).scalars())
            return len(stats) == 5 and len(wrapup_risks) == 5

        await eventually(all_five_written, what="five chats' statistics and wrap-up rows")
        # The level set during the wrap-up is in the wrap-up row only; the chat's statistics
        # row keeps the level it ended with.
        assert wrapup_risks == ["acute", "acute", "acute", "concern", "concern"]
        assert stats == [
            ("acute", True),
            ("acute", True),
            ("concern", False),
            ("concern", False),
            ("concern", False),
        ]

        today = local_now().date()
        monday = (today - timedelta(days=today.weekday())).isoformat()
        async with http_as(server, "ella") as ella:
            week = (await ella.get("/api/stats/lines/support/wrapups")).json()
            export = await ella.get("/api/stats/wrapups.csv", params={"line": "support"})
        metrics = await scrape(server.url)

    # What the coordinator sees: the risk levels the chats ended with, the fifth as concern
    # although its wrap-up says acute.
    this_week = week["periods"][-1]
    assert this_week["start"] == monday and week["small_count"] == 2
    assert this_week["chats"] == 5 and this_week["wrapups"] == 5
    assert this_week["risk"] == {"none": 0, "concern": 3, "acute": 2}
    assert this_week["in_danger"] == 2
    assert this_week["topics"] == {"violence": 3, "health": None, "housing": 2, "other": 0}
    assert this_week["outcomes"] == {"support given": 2, "referred": 3}

    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text)))
    cell = {(r["measure"], r["name"]): r["count"] for r in rows if r["start"] == monday}
    assert cell[("chats", "")] == "5" and cell[("wrapups", "")] == "5"
    assert cell[("risk", "none")] == "0"
    assert cell[("risk", "concern")] == "3"
    assert cell[("risk", "acute")] == "2"
    assert cell[("in_danger", "")] == "2"
    assert cell[("topic", "health")] == "suppressed"

    def sample(name: str, label: str | None = None, value: str = "") -> float | None:
        labels = {"line": "support", "window": "7d"} | ({label: value} if label else {})
        return metrics.get((name, tuple(sorted(labels.items()))))

    assert sample("lykta_chats_risk", "risk", "none") == 0
    assert sample("lykta_chats_risk", "risk", "concern") == 3
    assert sample("lykta_chats_risk", "risk", "acute") == 2
    assert sample("lykta_chats_in_danger") == 2
    assert sample("lykta_wrapup_topics", "topic", "violence") == 3
    assert sample("lykta_wrapup_topics", "topic", "health") is None
