"""A Prometheus scrape of /metrics with 30 days of wrap-ups against one with none.

/metrics reports wrap-up topics and outcomes, risk levels and "in danger" over the last 7 and
30 days; Prometheus scrapes it every 15 s or so. Sides, each one `lykta serve` process on
PostgreSQL (or SQLite with `--database sqlite`), measured in turn (A, B, A, B, ... for ROUNDS
rounds; medians reported):
- empty: a database with the line and no wrap-up or statistics rows (the baseline);
- rows: the same line with ROWS wrap-ups and as many answered chats' statistics rows, spread
  over the last 30 days (topics, outcomes, risk levels and "in danger" drawn at random);
- with `--before REF`, empty-before and rows-before: the code at git REF on the same two
  databases and packages (an A/B of a change to the scrape).

Per side and round: SCRAPES scrapes one after another. Measured: the server's own CPU time
per scrape (/proc, stable on a shared machine) and the time to the whole answer (p50, p90),
which includes the database's work. Ratios: rows ÷ empty, for each code; with --before, this
code ÷ that code on the rows.
Prints, last: `metrics: rows_to_empty_cpu=… rows_to_empty_p50=… …`
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop
from sqlalchemy import insert, text

from bench.common import (
    Server,
    checkout,
    final_line,
    lykta_server,
    lykta_server_at,
    median,
    percentile,
    postgres_database,
    seed,
    write_result,
)

TOKEN = "bench-metrics-token-0123456789abcdef"
TOPICS = ["violence", "health", "housing", "money", "migration", "other"]
OUTCOMES = ["support given", "referred", "ended by the visitor", "other"]
RISK = (("none", 80), ("concern", 15), ("acute", 5))
IN_DANGER_PERCENT = 3
DAYS = 30


async def add_rows(database_url: str, count: int) -> None:
    """`count` wrap-ups and answered chats' statistics rows on the `bench` line, in hour
    buckets over the last 30 days, as the held rows would have written them."""
    from app.kit.db import create_engine
    from app.models import ChatStatistic, Wrapup

    draw = random.Random(30)
    now = datetime.now(UTC)

    def hour() -> datetime:
        moment = now - timedelta(seconds=draw.uniform(3600, DAYS * 86400 - 3600))
        return moment.replace(minute=0, second=0, microsecond=0)

    wrapups = [
        {
            "id": uuid.uuid4(),
            "line_key": "bench",
            "hour": hour(),
            "topics": sorted(draw.sample(TOPICS, draw.choice((0, 1, 1, 2, 2, 3)))),
            "outcome": draw.choice(OUTCOMES),
        }
        for _ in range(count)
    ]
    levels = [level for level, _ in RISK]
    weights = [weight for _, weight in RISK]
    chats = [
        {
            "id": uuid.uuid4(),
            "line_key": "bench",
            "hour": hour(),
            "waited_seconds": draw.randint(0, 600),
            "duration_seconds": draw.randint(60, 3600),
            "outcome": "answered",
            "answered": True,
            "risk": draw.choices(levels, weights)[0],
            "in_danger": draw.randrange(100) < IN_DANGER_PERCENT,
        }
        for _ in range(count)
    ]
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            for model, rows in ((Wrapup, wrapups), (ChatStatistic, chats)):
                for start in range(0, len(rows), 5000):
                    await connection.execute(insert(model), rows[start : start + 5000])
        async with engine.connect() as connection:
            # As autovacuum would after so many inserts: without the tables' statistics the
            # planner guesses ten rows and sorts 20,000 where it hashes them once it knows.
            await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


async def scrapes(server: Server, count: int) -> dict[str, float]:
    """`count` scrapes one after another: server CPU per scrape and the time to each answer."""
    async with httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as http:
        times = []
        cpu0 = server.cpu()
        for _ in range(count):
            started = time.perf_counter()
            response = await http.get("/metrics")
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
        cpu = server.cpu() - cpu0
    return {
        "cpu_ms_per_scrape": cpu / count * 1000,
        "p50_ms": percentile(times, 0.5) * 1000,
        "p90_ms": percentile(times, 0.9) * 1000,
        "bytes": len(response.content),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.before:
        with checkout(args.before) as source:
            return await measure(args, source)
    return await measure(args, None)


async def measure(args: argparse.Namespace, before: Path | None) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="lykta-bench-"))
    log = workdir / "servers.log"
    servers: dict[str, Server] = {}
    line = {"wrapup_topics": TOPICS, "wrapup_outcomes": OUTCOMES}
    env = {"LYKTA_METRICS_TOKEN": TOKEN}
    try:
        async with contextlib.AsyncExitStack() as stack:
            urls: dict[str, str] = {}
            for name in ("empty", "rows"):
                if args.database == "sqlite":
                    urls[name] = f"sqlite+aiosqlite:///{workdir / name}.db"
                else:
                    urls[name] = await stack.enter_async_context(postgres_database())
                await seed(urls[name], counsellors=0, capacity=1, **line)
            await add_rows(urls["rows"], args.rows)
            for name, url in urls.items():
                servers[name] = lykta_server(name, {**env, "LYKTA_DATABASE_URL": url})
                if before is not None:
                    servers[f"{name}-before"] = lykta_server_at(
                        f"{name}-before", {**env, "LYKTA_DATABASE_URL": url}, before
                    )
            for server in servers.values():
                server.spawn(log)
                await server.ready()
                await scrapes(server, 5)  # warm: imports, connections, plans
            rounds = []
            for index in range(args.rounds):
                measured = {
                    name: await scrapes(server, args.scrapes) for name, server in servers.items()
                }
                rounds.append(measured)
                print(f"round {index + 1}: " + orjson.dumps(measured).decode(), flush=True)
    finally:
        for server in servers.values():
            server.stop()

    def med(side: str, key: str) -> float:
        return median(r[side][key] for r in rounds)

    summary = {
        name: {key: med(name, key) for key in ("cpu_ms_per_scrape", "p50_ms", "p90_ms", "bytes")}
        for name in servers
    }

    def ratio(top: str, bottom: str, key: str) -> float:
        # Within each round (its sides ran seconds apart), then the median.
        return median(r[top][key] / r[bottom][key] for r in rounds)

    ratios = {
        "rows_to_empty_cpu": ratio("rows", "empty", "cpu_ms_per_scrape"),
        "rows_to_empty_p50": ratio("rows", "empty", "p50_ms"),
    }
    if before is not None:
        ratios |= {
            "before_rows_to_empty_cpu": ratio("rows-before", "empty-before", "cpu_ms_per_scrape"),
            "before_rows_to_empty_p50": ratio("rows-before", "empty-before", "p50_ms"),
            "rows_after_to_before_cpu": ratio("rows", "rows-before", "cpu_ms_per_scrape"),
            "rows_after_to_before_p50": ratio("rows", "rows-before", "p50_ms"),
        }
    return {
        "parameters": {
            "database": args.database,
            "rows": args.rows,
            "days": DAYS,
            "scrapes_per_round": args.scrapes,
            "rounds": args.rounds,
            "before": args.before,
        },
        "summary": summary,
        "ratios": ratios,
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="wrap-ups (and chats) in 30 days")
    parser.add_argument("--scrapes", type=int, default=100, help="scrapes per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument(
        "--before", default=None, help="a git ref: also run the code there on the same rows (A/B)"
    )
    args = parser.parse_args()
    result = uvloop.run(run(args))
    name = "metrics" if args.database == "postgresql" else f"metrics-{args.database}"
    write_result(name, result)
    print(final_line("metrics", result["ratios"]))


if __name__ == "__main__":
    main()
