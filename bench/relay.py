"""Message throughput at saturation and latency at a fixed rate: bare relay vs Lykta.

Sides, each on its own server processes, all running at once and measured in turn
(A, B, C, A, B, C, ... for ROUNDS rounds; medians reported):
- baseline: the bare FastAPI relay of bench/relay_app.py;
- embedded: one Lykta process, in-process broker, SQLite;
- redis: two Lykta processes on Redis and PostgreSQL, every visitor on one process and every
  counsellor on the other, so each message crosses Redis;
- redis-relay, a reference outside the ratios: the bare relay on two processes, each frame
  crossing Redis by pub/sub, publishes batched per loop turn (bench/redis_relay_app.py), i.e.
  what crossing Redis alone costs.
Lykta does all it does in production per message: protocol validation, flood control,
AES-256-GCM sealing, compare-and-set append to the transcript (a Redis stream), delivery in
sequence to the other party and an acknowledgement to the sender.

With `--plain`, one more side: Lykta embedded on uvicorn's own WebSocket protocol, without
app/web/websocket.py (`adapter` in the results: what the adapter saves). With `--before REF`,
two more sides: Lykta embedded and Lykta on Redis as the code at git REF has them, on the same
packages (an A/B of a change to the message path: `ab` in the results, CPU per message of
this code ÷ that code's, per round and median, for each).

Ratios come from the servers' own CPU time per message (ratio = baseline µs ÷ Lykta µs), which
is stable on a shared machine where throughput is not. Prints the reference's ratios on a line
of their own, then, last:
`relay: embedded_ratio=… redis_ratio=… embedded_p99_ratio=… redis_p99_ratio=…`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import uvloop
from websockets.asyncio.client import ClientConnection, connect

from bench.common import (
    Server,
    checkout,
    final_line,
    lykta_server,
    lykta_server_at,
    median,
    percentile,
    postgres_database,
    quiet_client,
    raise_fd_limit,
    redis_server,
    relay_server,
    seed,
    wait_port,
    write_result,
)

# The sides the ratios need (a run with fewer is partial, for profiling).
SIDES = ("baseline", "embedded", "redis", "redis-relay")
RATE = 2.0  # messages a second from every connection in the latency phase
WINDOW = 8  # messages a sender may have in flight at saturation


@dataclass
class Pair:
    """Two connections that talk to each other; `send_*` frame a payload the side's way."""

    a: ClientConnection
    b: ClientConnection
    send_a: Callable[[str], Any]
    send_b: Callable[[str], Any]
    # The sender's messages in flight, while a saturation phase runs (None outside it).
    window: asyncio.Semaphore | None = None


class Meter:
    """What the clients saw: messages received and their latencies, while recording."""

    def __init__(self) -> None:
        self.recording = False
        self.received = 0
        self.latencies: list[float] = []

    def got(self, payload: str, pair: Pair) -> None:
        window = pair.window
        if window is not None:
            window.release()
        if not self.recording:
            return
        self.received += 1
        if payload[0] == "t":
            self.latencies.append(time.perf_counter() - float(payload[1:]))


class Side:
    name: str
    servers: list[Server]
    pairs: list[Pair]

    def __init__(self, name: str, servers: list[Server], redis: Server | None = None) -> None:
        self.name = name
        self.servers = servers
        # The Redis the side uses: its CPU is reported, outside the ratios.
        self.redis = redis
        self.pairs = []
        self.meter = Meter()
        self.readers: list[asyncio.Task[None]] = []

    def cpu(self) -> float:
        return sum(s.cpu() for s in self.servers)

    def read(self, ws: ClientConnection, pair_of: Callable[[], Pair], lykta: bool) -> None:
        meter = self.meter

        async def run() -> None:
            with contextlib.suppress(Exception):
                async for raw in ws:
                    if lykta:
                        frame = orjson.loads(raw)
                        if frame.get("type") != "message":
                            continue
                        meter.got(frame["text"], pair_of())
                    else:
                        meter.got(str(raw), pair_of())

        self.readers.append(asyncio.create_task(run()))


async def baseline_pairs(
    side: Side, server: Server, count: int, b_at: Server | None = None
) -> None:
    """Pairs on the bare relay: both ends on `server`, or the second end on `b_at`."""
    other = b_at or server

    async def make(index: int) -> None:
        a = await connect(f"{server.ws_url}/ws/{index}/a", compression=None)
        b = await connect(f"{other.ws_url}/ws/{index}/b", compression=None)
        pair = Pair(a, b, a.send, b.send)
        side.read(a, lambda: pair, lykta=False)
        side.read(b, lambda: pair, lykta=False)
        side.pairs.append(pair)

    for start in range(0, count, 50):
        await asyncio.gather(*(make(i) for i in range(start, min(count, start + 50))))


async def lykta_pairs(side: Side, visitors_at: Server, staff_at: Server, tokens: list[str]) -> None:
    opened: dict[str, ClientConnection] = {}
    waiting: dict[str, asyncio.Future[None]] = {}

    async def counsellor(token: str) -> ClientConnection:
        ws = await connect(
            f"{staff_at.ws_url}/ws/staff",
            additional_headers={"Cookie": f"lykta_session={token}"},
            compression=None,
        )
        await ws.recv()  # hello
        await ws.send('{"type":"status","status":"available"}')
        while orjson.loads(await ws.recv()).get("type") != "status":
            pass

        async def watch() -> None:
            # Until its chat opens; then the pair's reader takes over.
            while True:
                frame = orjson.loads(await ws.recv())
                if frame.get("type") == "chat.opened":
                    opened[frame["chat_id"]] = ws
                    future = waiting.get(frame["chat_id"])
                    if future is not None and not future.done():
                        future.set_result(None)
                    return

        side.readers.append(asyncio.create_task(watch()))
        return ws

    for start in range(0, len(tokens), 50):
        await asyncio.gather(*(counsellor(t) for t in tokens[start : start + 50]))

    async def visitor() -> None:
        ws = await connect(f"{visitors_at.ws_url}/ws/visitor", compression=None)
        await ws.recv()  # hello
        await ws.send('{"type":"start","line":"bench","language":"sv"}')
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("type") == "chat.started":
                chat_id = frame["chat_id"]
                break
        if chat_id not in opened:
            waiting[chat_id] = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(waiting[chat_id], 60)
        staff = opened[chat_id]
        counter = iter(range(1 << 62))
        prefix = '{"type":"message","chat_id":"' + chat_id + '","client_id":"'

        def send_a(payload: str) -> Any:
            return ws.send(
                '{"type":"message","client_id":"'
                + str(next(counter))
                + '","text":'
                + orjson.dumps(payload).decode()
                + "}"
            )

        def send_b(payload: str) -> Any:
            return staff.send(
                prefix + str(next(counter)) + '","text":' + orjson.dumps(payload).decode() + "}"
            )

        pair = Pair(ws, staff, send_a, send_b)
        side.read(ws, lambda: pair, lykta=True)
        side.read(staff, lambda: pair, lykta=True)
        side.pairs.append(pair)

    for _ in range(0, len(tokens), 50):
        await asyncio.gather(*(visitor() for _ in range(min(50, len(tokens) - len(side.pairs)))))


async def saturation(side: Side, pairs: int, seconds: float) -> dict[str, Any]:
    """Every sender keeps up to 8 messages in flight to its peer, as fast as they go."""
    running = True
    chosen = side.pairs[:pairs]

    # A fresh window for every phase: a message received outside one (at the fixed rate, or
    # late from the last phase) must not leave a sender more than WINDOW in flight.
    windows = [asyncio.Semaphore(WINDOW) for _ in chosen]
    for pair, window in zip(chosen, windows, strict=True):
        pair.window = window

    async def pump(pair: Pair, window: asyncio.Semaphore) -> None:
        while running:
            await window.acquire()
            await pair.send_a("s")

    tasks = [
        asyncio.create_task(pump(pair, window))
        for pair, window in zip(chosen, windows, strict=True)
    ]
    await asyncio.sleep(0.5)  # warm up
    meter = side.meter
    meter.received = 0
    meter.recording = True
    each0 = [s.cpu() for s in side.servers]
    calls0 = [s.syscalls() for s in side.servers]
    redis0 = side.redis.cpu() if side.redis is not None else 0.0
    cpu0, t0 = side.cpu(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, t1 = side.cpu(), time.perf_counter()
    each1 = [s.cpu() for s in side.servers]
    calls1 = [s.syscalls() for s in side.servers]
    redis1 = side.redis.cpu() if side.redis is not None else 0.0
    meter.recording = False
    count = meter.received
    running = False
    for task in tasks:
        task.cancel()
    await asyncio.sleep(0.5)  # drain what is in flight
    for pair in chosen:
        pair.window = None
    result: dict[str, Any] = {
        "messages_per_second": count / (t1 - t0),
        "cpu_us_per_message": (cpu1 - cpu0) / max(count, 1) * 1e6,
        "cpu_us_per_message_by_process": [
            (after - before) / max(count, 1) * 1e6
            for before, after in zip(each0, each1, strict=True)
        ],
        # Reads and writes (system calls) per message, by process: on loopback a write
        # does the receiver's network work too, so fewer is much of what batching buys.
        "syscalls_per_message_by_process": [
            [round((a[0] - b[0]) / max(count, 1), 3), round((a[1] - b[1]) / max(count, 1), 3)]
            for b, a in zip(calls0, calls1, strict=True)
        ],
        "messages": count,
    }
    if side.redis is not None:
        # Redis runs one command at a time for every app process: what a deployment's
        # message rate is bounded by once it has enough processes.
        result["redis_cpu_us_per_message"] = (redis1 - redis0) / max(count, 1) * 1e6
    return result


async def fixed_rate(side: Side, seconds: float) -> dict[str, float]:
    """Every connection sends RATE messages a second to its peer, at random phases."""
    running = True
    interval = 1 / RATE

    async def talk(send: Callable[[str], Any]) -> None:
        await asyncio.sleep(random.random() * interval)
        next_at = time.perf_counter()
        while running:
            await send(f"t{time.perf_counter():.6f}")
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    tasks = []
    for pair in side.pairs:
        tasks.append(asyncio.create_task(talk(pair.send_a)))
        tasks.append(asyncio.create_task(talk(pair.send_b)))
    await asyncio.sleep(1.0)  # everyone has started
    meter = side.meter
    meter.received = 0
    meter.latencies = []
    meter.recording = True
    cpu0, t0 = side.cpu(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, t1 = side.cpu(), time.perf_counter()
    meter.recording = False
    running = False
    for task in tasks:
        task.cancel()
    await asyncio.sleep(0.5)
    latencies = meter.latencies
    return {
        "messages_per_second": meter.received / (t1 - t0),
        "cpu_us_per_message": (cpu1 - cpu0) / max(meter.received, 1) * 1e6,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.before:
        with checkout(args.before) as source:
            return await measure(args, source)
    return await measure(args, None)


async def measure(args: argparse.Namespace, before: Path | None) -> dict[str, Any]:
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="lykta-bench-"))
    log = workdir / "servers.log"
    redis = redis_server()
    redis.spawn(log)
    await wait_port(redis.port)
    servers: list[Server] = [redis]
    try:
        async with contextlib.AsyncExitStack() as stack:
            pg_url = await stack.enter_async_context(postgres_database())
            sqlite_url = f"sqlite+aiosqlite:///{workdir / 'embedded.db'}"
            embedded_tokens = await seed(
                sqlite_url, counsellors=args.pairs, capacity=1, auto_accept=True
            )
            redis_tokens = await seed(pg_url, counsellors=args.pairs, capacity=1, auto_accept=True)
            relay = relay_server()
            embedded = lykta_server("embedded", {"LYKTA_DATABASE_URL": sqlite_url})
            extra: list[Server] = []
            plain: list[Server] = []
            if args.plain:
                # This code on uvicorn's own WebSocket protocol: what app/web/websocket.py saves.
                plain_url = f"sqlite+aiosqlite:///{workdir / 'plain.db'}"
                plain_tokens = await seed(
                    plain_url, counsellors=args.pairs, capacity=1, auto_accept=True
                )
                plain.append(
                    lykta_server(
                        "embedded-plain",
                        {"LYKTA_DATABASE_URL": plain_url, "LYKTA_WEBSOCKET_ADAPTER": "false"},
                    )
                )
            if before is not None:
                before_url = f"sqlite+aiosqlite:///{workdir / 'before.db'}"
                before_tokens = await seed(
                    before_url, counsellors=args.pairs, capacity=1, auto_accept=True
                )
                extra.append(
                    lykta_server_at("embedded-before", {"LYKTA_DATABASE_URL": before_url}, before)
                )
                # Its Redis side too: the same Redis, keys under a prefix of its own.
                before_pg = await stack.enter_async_context(postgres_database())
                before_redis_tokens = await seed(
                    before_pg, counsellors=args.pairs, capacity=1, auto_accept=True
                )
                before_shared = {
                    "LYKTA_DATABASE_URL": before_pg,
                    "LYKTA_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
                    "LYKTA_REDIS_PREFIX": "before",
                }
                extra += [lykta_server_at(f"redis-before-{n}", before_shared, before) for n in "ab"]
            shared = {
                "LYKTA_DATABASE_URL": pg_url,
                "LYKTA_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
            }
            on_a = lykta_server("redis-a", shared)
            on_b = lykta_server("redis-b", shared)
            hops = [
                relay_server(f"redis-relay-{n}", app="bench.redis_relay_app:app")
                for n in ("a", "b")
            ]
            for hop in hops:
                hop.env = {"BENCH_REDIS_URL": f"redis://127.0.0.1:{redis.port}/1"}
            for server in (relay, embedded, on_a, on_b, *hops, *extra, *plain):
                server.spawn(log)
                servers.append(server)
            for server in (relay, embedded, on_a, on_b, *hops, *extra, *plain):
                await server.ready()

            sides = [
                side
                for side in (
                    Side("baseline", [relay]),
                    Side("embedded", [embedded]),
                    Side("redis", [on_a, on_b], redis),
                    Side("redis-relay", hops, redis),
                    *([Side("embedded-before", extra[:1])] if extra else []),
                    *([Side("redis-before", extra[1:], redis)] if extra else []),
                    *([Side("embedded-plain", plain)] if plain else []),
                )
                if side.name in args.sides or side.name.endswith(("-before", "-plain"))
            ]
            for side in sides:
                if side.name == "baseline":
                    await baseline_pairs(side, relay, args.pairs)
                elif side.name == "redis-relay":
                    await baseline_pairs(side, hops[0], args.pairs, b_at=hops[1])
                elif side.name == "embedded":
                    await lykta_pairs(side, embedded, embedded, embedded_tokens)
                elif side.name == "embedded-before":
                    await lykta_pairs(side, extra[0], extra[0], before_tokens)
                elif side.name == "redis-before":
                    await lykta_pairs(side, extra[1], extra[2], before_redis_tokens)
                elif side.name == "embedded-plain":
                    await lykta_pairs(side, plain[0], plain[0], plain_tokens)
                else:
                    await lykta_pairs(side, on_a, on_b, redis_tokens)
            for side in sides:
                assert len(side.pairs) == args.pairs, (side.name, len(side.pairs))

            quiet_client()
            rounds: list[dict[str, Any]] = []
            redis_cpu0 = redis.cpu()
            for index in range(args.rounds):
                measured: dict[str, Any] = {}
                for side in sides:
                    measured[side.name] = {
                        "saturation": await saturation(side, args.sat_pairs, args.seconds),
                    }
                for side in sides:
                    measured[side.name]["fixed_rate"] = await fixed_rate(side, args.seconds)
                rounds.append(measured)
                print(f"round {index + 1}: " + orjson.dumps(measured).decode(), flush=True)
            redis_cpu = redis.cpu() - redis_cpu0
    finally:
        for server in reversed(servers):
            server.stop()

    def med(side: str, phase: str, key: str) -> float:
        return median(r[side][phase][key] for r in rounds)

    summary: dict[str, Any] = {}
    if not set(SIDES) <= set(args.sides):  # a partial run, for profiling: no ratios
        return {"rounds": rounds, "ratios": {}}
    for name in SIDES:
        summary[name] = {
            "saturation_messages_per_second": med(name, "saturation", "messages_per_second"),
            "saturation_cpu_us_per_message": med(name, "saturation", "cpu_us_per_message"),
            "fixed_rate_cpu_us_per_message": med(name, "fixed_rate", "cpu_us_per_message"),
            "fixed_rate_messages_per_second": med(name, "fixed_rate", "messages_per_second"),
            "p50_ms": med(name, "fixed_rate", "p50_ms"),
            "p99_ms": med(name, "fixed_rate", "p99_ms"),
        }
        if "redis_cpu_us_per_message" in rounds[0][name]["saturation"]:
            summary[name]["saturation_redis_cpu_us_per_message"] = med(
                name, "saturation", "redis_cpu_us_per_message"
            )
    base = summary["baseline"]
    ratios = {
        "embedded_ratio": base["saturation_cpu_us_per_message"]
        / summary["embedded"]["saturation_cpu_us_per_message"],
        "redis_ratio": base["saturation_cpu_us_per_message"]
        / summary["redis"]["saturation_cpu_us_per_message"],
        "embedded_p99_ratio": summary["embedded"]["p99_ms"] / base["p99_ms"],
        "redis_p99_ratio": summary["redis"]["p99_ms"] / base["p99_ms"],
    }
    # The same ratios within each round, whose sides ran minutes apart at most: they show how
    # far the medians' ratio moves with the machine (a slow spell raises every side at once).
    by_round = [
        {
            "embedded_ratio": r["baseline"]["saturation"]["cpu_us_per_message"]
            / r["embedded"]["saturation"]["cpu_us_per_message"],
            "redis_ratio": r["baseline"]["saturation"]["cpu_us_per_message"]
            / r["redis"]["saturation"]["cpu_us_per_message"],
        }
        for r in rounds
    ]
    # What crossing Redis alone costs, against the same baseline (not a goal).
    reference = {
        "redis_relay_ratio": base["saturation_cpu_us_per_message"]
        / summary["redis-relay"]["saturation_cpu_us_per_message"],
        "redis_relay_p99_ratio": summary["redis-relay"]["p99_ms"] / base["p99_ms"],
    }
    result: dict[str, Any] = {}
    if plain:
        adapter = [
            r["embedded-plain"]["saturation"]["cpu_us_per_message"]
            / r["embedded"]["saturation"]["cpu_us_per_message"]
            for r in rounds
        ]
        result["adapter"] = {
            "plain_cpu_us_per_message": med("embedded-plain", "saturation", "cpu_us_per_message"),
            "plain_p99_ms": med("embedded-plain", "fixed_rate", "p99_ms"),
            "plain_to_adapter": median(adapter),
            "plain_to_adapter_by_round": adapter,
        }
    if before is not None:
        # This code against the code at --before, embedded, in the same rounds.
        per_round = [
            r["embedded"]["saturation"]["cpu_us_per_message"]
            / r["embedded-before"]["saturation"]["cpu_us_per_message"]
            for r in rounds
        ]
        redis_per_round = [
            r["redis"]["saturation"]["cpu_us_per_message"]
            / r["redis-before"]["saturation"]["cpu_us_per_message"]
            for r in rounds
        ]
        result["ab"] = {
            "before": args.before,
            "before_cpu_us_per_message": med("embedded-before", "saturation", "cpu_us_per_message"),
            "after_cpu_us_per_message": summary["embedded"]["saturation_cpu_us_per_message"],
            "after_to_before": median(per_round),
            "after_to_before_by_round": per_round,
            "goal": "<= 1.10",
            "redis_before_cpu_us_per_message": med(
                "redis-before", "saturation", "cpu_us_per_message"
            ),
            "redis_after_to_before": median(redis_per_round),
            "redis_after_to_before_by_round": redis_per_round,
        }
    return {
        **result,
        "parameters": {
            "connections_fixed_rate": args.pairs * 2,
            "rate_per_connection": RATE,
            "saturation_pairs": args.sat_pairs,
            "seconds_per_phase": args.seconds,
            "rounds": args.rounds,
        },
        "goals": {
            "embedded_ratio": ">= 0.6",
            "redis_ratio": ">= 0.35",
            "embedded_p99_ratio": "<= 3",
            "redis_p99_ratio": "<= 3",
        },
        "summary": summary,
        "ratios": ratios,
        "ratios_by_round": by_round,
        "reference": reference,
        "redis_server_cpu_seconds_all_rounds": redis_cpu,
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=500, help="pairs (2 connections each)")
    parser.add_argument("--sat-pairs", type=int, default=50, help="pairs at saturation")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sides", nargs="+", default=list(SIDES), help="(for profiling)")
    parser.add_argument("--window", type=int, default=8, help="in flight per sender")
    parser.add_argument(
        "--before", default=None, help="a git ref: also run Lykta embedded as it was there (A/B)"
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="also run Lykta embedded on uvicorn's own WebSocket protocol (no adapter)",
    )
    args = parser.parse_args()
    global WINDOW
    WINDOW = args.window
    result = uvloop.run(run(args))
    # A partial run (--sides, for profiling) leaves the recorded results alone.
    write_result("relay" if result["ratios"] else "relay-partial", result)
    if "reference" in result:
        print(final_line("reference", result["reference"]))
    if "adapter" in result:
        print(final_line("adapter", {"plain_to_adapter": result["adapter"]["plain_to_adapter"]}))
    if "ab" in result:
        ab = result["ab"]
        print(
            final_line(
                "ab",
                {
                    "after_to_before": ab["after_to_before"],
                    "redis_after_to_before": ab["redis_after_to_before"],
                },
            )
        )
    print(final_line("relay", result["ratios"]))


if __name__ == "__main__":
    main()
