"""A reference, not a baseline: the bare relay with each frame crossing Redis.

Run as two processes on one Redis (`BENCH_REDIS_URL`), each side of a pair on a different
process: each text frame is published, as is, on the peer's channel, and the peer's process
forwards it from its pub/sub subscription. No parsing, storage, encryption or acknowledgement,
and as little client machinery as Redis allows: commands packed by hiredis and written
together once per event-loop turn (a pipelined hop whose replies nobody waits for), replies
and pub/sub messages read by hiredis straight from the socket. What crossing Redis alone
costs on this stack, so that Lykta's Redis figures can be read against it (bench/relay.py
reports it beside the ratios, not in them).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import hiredis
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

# The same garbage-collector settings as `lykta serve` and bench/relay_app.py.
gc.collect()
gc.freeze()
gc.set_threshold(50_000, 50, 100)


def _command(*args: Any) -> bytes:
    packed: bytes = hiredis.pack_command(args)
    return packed


class Hop:
    """Two Redis connections: one publishing, one subscribed."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.peers: dict[str, WebSocket] = {}
        self.pending: list[bytes] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        replies, self.commands = await asyncio.open_connection(*self.address)
        messages, self.subscriptions = await asyncio.open_connection(*self.address)
        self.tasks = [
            asyncio.create_task(self._discard(replies)),
            asyncio.create_task(self._deliver(messages)),
        ]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.commands.close()
        self.subscriptions.close()

    def publish(self, channel: str, text: str) -> None:
        if not self.pending:
            self.loop.call_soon(self._flush)
        self.pending.append(_command("PUBLISH", channel, text))

    def subscribe(self, channel: str) -> None:
        self.subscriptions.write(_command("SUBSCRIBE", channel))

    def unsubscribe(self, channel: str) -> None:
        self.subscriptions.write(_command("UNSUBSCRIBE", channel))

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        self.commands.write(b"".join(batch))

    async def _discard(self, replies: asyncio.StreamReader) -> None:
        # PUBLISH answers with a count of receivers, which nobody needs.
        reader = hiredis.Reader()
        while data := await replies.read(65536):
            reader.feed(data)
            while reader.gets() is not False:
                pass

    async def _deliver(self, messages: asyncio.StreamReader) -> None:
        reader = hiredis.Reader()
        while data := await messages.read(65536):
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                if reply[0] != b"message":
                    continue
                peer = self.peers.get(reply[1].decode())
                if peer is not None:
                    await peer.send_text(reply[2].decode())


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
    hop.subscribe(mine)
    try:
        while True:
            hop.publish(other, await ws.receive_text())
    except WebSocketDisconnect:
        pass
    finally:
        hop.peers.pop(mine, None)
        hop.unsubscribe(mine)
