"""A reference, not a baseline: the bare relay with each frame crossing Redis.

Run as two processes on one Redis (`BENCH_REDIS_URL`), each side of a pair on a different
process: each text frame is published, as is, on the peer's channel, and the peer's process
forwards it from its pub/sub subscription. Publishes of one event-loop turn go out in one
pipeline (what the issue calls a pipelined Redis hop). No parsing, storage, encryption or
acknowledgement: what crossing Redis alone costs on this stack, so that Lykta's Redis figures
can be read against it (bench/relay.py reports it beside the ratios, not in them).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator

import redis.asyncio as redis
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

# The same garbage-collector settings as `lykta serve` and bench/relay_app.py.
gc.collect()
gc.freeze()
gc.set_threshold(50_000, 50, 100)


class Hop:
    """One Redis client for publishing (a pipeline per loop turn) and one subscription."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, protocol=2)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.peers: dict[str, WebSocket] = {}
        self.pending: list[tuple[str, str]] = []
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        # A channel nobody uses, so the subscription's connection exists before any pair.
        await self.pubsub.subscribe("relay:-")
        self.tasks = [asyncio.create_task(self._publish()), asyncio.create_task(self._deliver())]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.client.aclose()

    def publish(self, channel: str, text: str) -> None:
        self.pending.append((channel, text))
        self.wake.set()

    async def _publish(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            pipe = self.client.pipeline(transaction=False)
            for channel, text in batch:
                pipe.publish(channel, text)
            await pipe.execute()

    async def _deliver(self) -> None:
        async for message in self.pubsub.listen():
            if message["type"] != "message":
                continue
            peer = self.peers.get(message["channel"].decode())
            if peer is not None:
                await peer.send_text(message["data"].decode())


hop = Hop(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))


@contextlib.asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    await hop.start()
    yield
    await hop.stop()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.websocket("/ws/{pair}/{side}")
async def relay(ws: WebSocket, pair: str, side: str) -> None:
    await ws.accept()
    mine = f"relay:{pair}:{side}"
    other = f"relay:{pair}:{'b' if side == 'a' else 'a'}"
    hop.peers[mine] = ws
    await hop.pubsub.subscribe(mine)
    try:
        while True:
            hop.publish(other, await ws.receive_text())
    except WebSocketDisconnect:
        pass
    finally:
        hop.peers.pop(mine, None)
        with contextlib.suppress(Exception):
            await hop.pubsub.unsubscribe(mine)
