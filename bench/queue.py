"""A long queue: 5,000 visitors waiting on one line, 100 counsellors going available in turn.

Measures, for Lykta embedded and Lykta on Redis (each one process, measured in turn over
ROUNDS rounds, a fresh 100 counsellors each round): the time from a counsellor becoming free
(their `status: available` sent) to their offer arriving, and how many `queue.position`
frames the waiting visitors get per assignment, with the shortest gap any visitor saw
between two of them (positions are coalesced to at most one a second).
Prints, last: `queue: offer_p99_ms=… updates_per_assignment=…`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvloop
from websockets.asyncio.client import ClientConnection, connect

from bench.common import (
    Server,
    final_line,
    lykta_server,
    median,
    percentile,
    postgres_database,
    quiet_client,
    raise_fd_limit,
    redis_server,
    seed,
    wait_port,
    write_result,
)


@dataclass
class Waiting:
    ws: ClientConnection
    positions: list[float] = field(default_factory=list)


class Side:
    def __init__(self, name: str, server: Server, tokens: list[str]) -> None:
        self.name = name
        self.server = server
        self.tokens = tokens
        self.visitors: list[Waiting] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def fill_queue(self, count: int) -> None:
        async def arrive() -> None:
            ws = await connect(f"{self.server.ws_url}/ws/visitor", compression=None)
            await ws.recv()  # hello
            await ws.send('{"type":"start","line":"bench","language":"sv"}')
            waiting = Waiting(ws)

            async def read() -> None:
                with contextlib.suppress(Exception):
                    async for raw in ws:
                        if b'"queue.position"' in (raw if isinstance(raw, bytes) else raw.encode()):
                            waiting.positions.append(time.perf_counter())

            self.tasks.append(asyncio.create_task(read()))
            self.visitors.append(waiting)

        for start in range(0, count, 100):
            await asyncio.gather(*(arrive() for _ in range(min(100, count - start))))

    async def round(self, tokens: list[str]) -> dict[str, Any]:
        """Counsellors go available one after another; each waits for their offer."""
        staff: list[ClientConnection] = []
        for token in tokens:
            ws = await connect(
                f"{self.server.ws_url}/ws/staff",
                additional_headers={"Cookie": f"lykta_session={token}"},
                compression=None,
            )
            await ws.recv()  # hello (away)
            staff.append(ws)
        await asyncio.sleep(1.5)  # the queue settles; position pushes from arrivals are done
        for visitor in self.visitors:
            visitor.positions.clear()
        started = time.perf_counter()
        latencies = []
        for ws in staff:
            sent = time.perf_counter()
            await ws.send('{"type":"status","status":"available"}')
            while True:
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                if frame.get("type") == "offer":
                    latencies.append(time.perf_counter() - sent)
                    break
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1.5)  # the last coalesced pushes arrive
        frames = sum(len(v.positions) for v in self.visitors)
        gaps = [
            later - earlier
            for v in self.visitors
            for earlier, later in zip(v.positions, v.positions[1:], strict=False)
        ]
        for ws in staff:
            await ws.close()
        return {
            "assignments": len(latencies),
            "seconds": elapsed,
            "offer_p50_ms": percentile(latencies, 0.5) * 1000,
            "offer_p99_ms": percentile(latencies, 0.99) * 1000,
            "offer_max_ms": max(latencies) * 1000,
            "position_frames": frames,
            "updates_per_assignment": frames / max(len(latencies), 1),
            "shortest_gap_between_position_frames_s": min(gaps) if gaps else None,
            "cpu_seconds": None,
        }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="lykta-bench-"))
    log = workdir / "servers.log"
    redis = redis_server()
    redis.spawn(log)
    await wait_port(redis.port)
    servers: list[Server] = [redis]
    counsellors = args.counsellors * args.rounds
    try:
        async with postgres_database() as pg_url:
            sqlite_url = f"sqlite+aiosqlite:///{workdir / 'embedded.db'}"
            line = {"offer_timeout_seconds": 600, "max_queue_length": 10_000}
            embedded_tokens = await seed(
                sqlite_url, counsellors=counsellors + 1, capacity=1, **line
            )
            redis_tokens = await seed(pg_url, counsellors=counsellors + 1, capacity=1, **line)
            embedded = lykta_server("embedded", {"LYKTA_DATABASE_URL": sqlite_url})
            on_redis = lykta_server(
                "redis",
                {
                    "LYKTA_DATABASE_URL": pg_url,
                    "LYKTA_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
                },
            )
            for server in (embedded, on_redis):
                server.spawn(log)
                servers.append(server)
                await server.ready()
            sides = [
                Side("embedded", embedded, embedded_tokens),
                Side("redis", on_redis, redis_tokens),
            ]
            keepers = []
            for side in sides:
                # Someone on duty and available keeps the line open while the queue fills (they
                # hold one offer, which fills their capacity of one).
                keeper = await connect(
                    f"{side.server.ws_url}/ws/staff",
                    additional_headers={"Cookie": f"lykta_session={side.tokens[-1]}"},
                    compression=None,
                )
                await keeper.recv()
                await keeper.send('{"type":"status","status":"available"}')
                keepers.append(keeper)
                await side.fill_queue(args.visitors)
            quiet_client()
            rounds = []
            for index in range(args.rounds):
                measured = {}
                for side in sides:
                    batch = side.tokens[index * args.counsellors : (index + 1) * args.counsellors]
                    cpu0 = side.server.cpu()
                    measured[side.name] = await side.round(batch)
                    measured[side.name]["cpu_seconds"] = side.server.cpu() - cpu0
                rounds.append(measured)
                print(f"round {index + 1}: " + orjson.dumps(measured).decode(), flush=True)
            rss = {side.name: side.server.rss() for side in sides}
    finally:
        for server in reversed(servers):
            server.stop()

    def med(side: str, key: str) -> float:
        return median(r[side][key] for r in rounds)

    summary = {
        side: {
            "offer_p50_ms": med(side, "offer_p50_ms"),
            "offer_p99_ms": med(side, "offer_p99_ms"),
            "updates_per_assignment": med(side, "updates_per_assignment"),
            "shortest_gap_between_position_frames_s": min(
                r[side]["shortest_gap_between_position_frames_s"] or 99 for r in rounds
            ),
            "rss_mib_with_queue": rss[side] / 2**20,
        }
        for side in ("embedded", "redis")
    }
    return {
        "parameters": {
            "visitors": args.visitors,
            "counsellors_per_round": args.counsellors,
            "rounds": args.rounds,
        },
        "goals": {
            "offer_p99_ms": "< 50",
            "position frames": "at most one a second per visitor",
        },
        "summary": summary,
        "final": {
            "offer_p99_ms": max(s["offer_p99_ms"] for s in summary.values()),
            "updates_per_assignment": max(s["updates_per_assignment"] for s in summary.values()),
        },
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=5000)
    parser.add_argument("--counsellors", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    result = uvloop.run(run(args))
    write_result("queue", result)
    print(final_line("queue", result["final"]))


if __name__ == "__main__":
    main()
