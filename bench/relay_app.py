"""The baseline: a bare FastAPI WebSocket relay, each text frame forwarded to the peer as is.

No parsing, no storage, no queue: the least a chat server can do per message on this stack
(FastAPI, uvicorn, uvloop, websockets-sansio), to measure Lykta against.
"""

from __future__ import annotations

import gc

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
# The same garbage-collector settings as `lykta serve` (app/cli.py, tune_gc).
gc.collect()
gc.freeze()
gc.set_threshold(50_000, 50, 100)
peers: dict[str, WebSocket] = {}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.websocket("/ws/{pair}/{side}")
async def relay(ws: WebSocket, pair: str, side: str) -> None:
    await ws.accept()
    me = f"{pair}:{side}"
    other = f"{pair}:{'b' if side == 'a' else 'a'}"
    peers[me] = ws
    try:
        while True:
            text = await ws.receive_text()
            peer = peers.get(other)
            if peer is not None:
                await peer.send_text(text)
    except WebSocketDisconnect:
        pass
    finally:
        peers.pop(me, None)
