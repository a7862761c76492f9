"""Idle connections: memory per connected visitor, and how fast 5,000 dropped visitors are back.

Each round starts fresh server processes (the bare relay of bench/relay_app.py and one
embedded Lykta) and, in turn, connects 2,000 then 10,000 idle clients to each, reading the
server's resident memory (RSS, from /proc) before and after. Then 5,000 visitors with a chat
each lose their connections at once and come back after a random delay of up to JITTER
seconds, resuming their chat; the time until the last one has resumed is reported.
Prints, last: `connections: rss_per_conn_ratio=… reconnect_5000_s=…`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
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
    raise_fd_limit,
    relay_server,
    seed,
    write_result,
)

JITTER = 5.0  # seconds: clients reconnect after a random delay up to this


async def settle(server: Server) -> int:
    """RSS once it stops moving (the allocator and the event loop catch up)."""
    await asyncio.sleep(1.0)
    return server.rss()


async def quiesce(server: Server) -> None:
    """Wait until the server has finished with what came before (its CPU time stops rising)."""
    for _ in range(60):
        before = server.cpu()
        await asyncio.sleep(0.5)
        if server.cpu() - before < 0.05:
            return


async def open_many(url: str, count: int, hello: bool) -> list[ClientConnection]:
    out: list[ClientConnection] = []

    async def one(index: int) -> None:
        ws = await connect(url.replace("{i}", str(index)), compression=None, open_timeout=60)
        if hello:
            await ws.recv()
        out.append(ws)

    base = random.randrange(1 << 30)
    for start in range(0, count, 200):
        await asyncio.gather(*(one(base + i) for i in range(start, min(count, start + 200))))
    return out


async def memory_round(relay: Server, lykta: Server) -> dict[str, Any]:
    result: dict[str, Any] = {}
    sides = {
        "baseline": (relay, f"{relay.ws_url}/ws/{{i}}/a", False),
        "lykta": (lykta, f"{lykta.ws_url}/ws/visitor", True),
    }
    for name, (server, url, hello) in sides.items():  # in turn; the client holds one side
        before = await settle(server)
        held: list[ClientConnection] = []
        for total in (2000, 10_000):
            held += await open_many(url, total - len(held), hello)
            rss = await settle(server)
            result[f"{name}_{total}"] = {
                "rss_mib": rss / 2**20,
                "rss_per_connection_kib": (rss - before) / total / 1024,
            }
        for ws in held:
            ws.transport.abort()
        await asyncio.sleep(1.0)
    return result


async def reconnect_round(lykta: Server, count: int) -> dict[str, Any]:
    """`count` visitors in a chat each drop at once and come back after a random delay."""
    chats: list[tuple[str, str]] = []
    dropped: list[ClientConnection] = []

    async def start() -> None:
        ws = await connect(f"{lykta.ws_url}/ws/visitor", compression=None, open_timeout=60)
        await ws.recv()
        await ws.send('{"type":"start","line":"bench","language":"sv"}')
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("type") == "chat.started":
                chats.append((frame["chat_id"], frame["token"]))
                dropped.append(ws)
                return

    for begin in range(0, count, 200):
        await asyncio.gather(*(start() for _ in range(min(200, count - begin))))
    await quiesce(lykta)
    cpu0 = lykta.cpu()
    gone = time.perf_counter()
    for ws in dropped:
        ws.transport.abort()  # the network drops: no closing handshake
    back: list[ClientConnection] = []
    resumed_at: list[float] = []

    async def come_back(chat_id: str, token: str) -> None:
        await asyncio.sleep(random.random() * JITTER)
        while True:
            try:
                ws = await connect(f"{lykta.ws_url}/ws/visitor", compression=None, open_timeout=60)
                await ws.recv()
                resume = {"type": "resume", "chat_id": chat_id, "token": token, "last_seq": 0}
                await ws.send(orjson.dumps(resume).decode())
                while orjson.loads(await ws.recv()).get("type") != "chat.resumed":
                    pass
            except (TimeoutError, OSError) as exc:
                print(f"retrying after {type(exc).__name__}", flush=True)
                await asyncio.sleep(random.random())
                continue
            resumed_at.append(time.perf_counter())
            back.append(ws)
            return

    await asyncio.gather(*(come_back(chat_id, token) for chat_id, token in chats))
    result = {
        "visitors": len(chats),
        "all_back_s": max(resumed_at) - gone,
        "jitter_s": JITTER,
        "cpu_seconds": lykta.cpu() - cpu0,
    }
    for ws in back:
        with contextlib.suppress(Exception):
            await ws.send('{"type":"end"}')
        ws.transport.abort()
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="lykta-bench-"))
    log = workdir / "servers.log"
    rounds = []
    for index in range(args.rounds):
        database = f"sqlite+aiosqlite:///{workdir / f'round{index}.db'}"
        tokens = await seed(database, counsellors=1, capacity=1, max_queue_length=10_000)
        relay = relay_server()
        lykta = lykta_server("embedded", {"LYKTA_DATABASE_URL": database})
        servers = [relay, lykta]
        try:
            for server in servers:
                server.spawn(log)
            for server in servers:
                await server.ready()
            measured = {} if args.reconnect_only else await memory_round(relay, lykta)
            # One counsellor on duty (at capacity with the first chat) keeps the line open.
            keeper = await connect(
                f"{lykta.ws_url}/ws/staff",
                additional_headers={"Cookie": f"lykta_session={tokens[0]}"},
                compression=None,
            )
            await keeper.recv()
            await keeper.send('{"type":"status","status":"available"}')
            await quiesce(lykta)
            measured["reconnect"] = await reconnect_round(lykta, args.reconnect)
            await keeper.close()
        finally:
            for server in servers:
                server.stop()
        rounds.append(measured)
        print(f"round {index + 1}: " + orjson.dumps(measured).decode(), flush=True)
    if args.reconnect_only:
        return {"rounds": rounds, "final": {}}

    def med(key: str, field: str) -> float:
        return median(r[key][field] for r in rounds)

    summary = {
        key: {
            "rss_per_connection_kib": med(key, "rss_per_connection_kib"),
            "rss_mib": med(key, "rss_mib"),
        }
        for key in ("baseline_2000", "lykta_2000", "baseline_10000", "lykta_10000")
    }
    ratio_10k = (
        summary["lykta_10000"]["rss_per_connection_kib"]
        / summary["baseline_10000"]["rss_per_connection_kib"]
    )
    ratio_2k = (
        summary["lykta_2000"]["rss_per_connection_kib"]
        / summary["baseline_2000"]["rss_per_connection_kib"]
    )
    reconnect = median(r["reconnect"]["all_back_s"] for r in rounds)
    return {
        "parameters": {"rounds": args.rounds, "reconnecting": args.reconnect, "jitter_s": JITTER},
        "goals": {
            "rss_per_conn_ratio": "<= 1.5",
            "lykta_10000 rss_mib": "< 1024",
            "reconnect_5000_s": "<= 15",
        },
        "summary": summary,
        "rss_per_conn_ratio_2000": ratio_2k,
        "final": {
            "rss_per_conn_ratio": ratio_10k,
            "lykta_10000_rss_mib": summary["lykta_10000"]["rss_mib"],
            "reconnect_5000_s": reconnect,
        },
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reconnect", type=int, default=5000)
    parser.add_argument("--reconnect-only", action="store_true", help="(for profiling)")
    args = parser.parse_args()
    result = uvloop.run(run(args))
    write_result("connections", result)
    print(final_line("connections", result["final"]))


if __name__ == "__main__":
    main()
