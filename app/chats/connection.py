"""What both WebSocket adapters share: the outgoing side of one client connection.

Every frame to a client goes through one bounded queue and one writer task, so frames keep
their order and a slow client cannot slow anyone else: when its queue is full it is dropped
(and reconnects). Transcript entries are delivered strictly in sequence per chat: a gap is
filled from the broker before the next entry goes out, and anything already delivered is
skipped, which is what makes resume lose and duplicate nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from app.broker.hub import Event
from app.chats.protocol import CLOSE_SLOW_CONSUMER, Close
from app.chats.transcript import Audience, Entry, Transcript, entry_frame
from app.kit import jsonutil

logger = logging.getLogger(__name__)

Frame = dict[str, Any]

_FRAME = 0
_EVENT = 1
_SYNC = 2
_CLOSE = 3


class SlowConsumer(Exception):
    """The client fell too far behind."""


class Outbound:
    """A client's outgoing frames."""

    def __init__(
        self,
        ws: WebSocket,
        *,
        size: int,
        render: Callable[[Event], Awaitable[list[Frame]]],
        transcript: Transcript,
        audience: Audience,
    ) -> None:
        self._ws = ws
        self._queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue(size)
        self._render = render
        self._transcript = transcript
        self._audience = audience
        # Per chat: the highest sequence number delivered (or deliberately skipped).
        self.delivered: dict[str, int] = {}
        self.overflowed = False
        self._on_overflow: Callable[[], None] | None = None

    def on_overflow(self, callback: Callable[[], None]) -> None:
        self._on_overflow = callback

    def _put(self, item: tuple[int, Any]) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            if self._on_overflow is not None:
                self._on_overflow()

    def frame(self, frame: Frame) -> None:
        self._put((_FRAME, frame))

    def event(self, event: Event) -> None:
        """A hub listener: never blocks."""
        self._put((_EVENT, event))

    def sync(self, chat_id: str, after: int) -> None:
        """Deliver every entry of the chat after `after`, then continue live."""
        self._put((_SYNC, (chat_id, after)))

    def close(self, close: Close) -> None:
        self._put((_CLOSE, close))

    async def run(self) -> None:
        ws = self._ws
        while True:
            kind, payload = await self._queue.get()
            if kind == _FRAME:
                frames: list[Frame] = [payload]
            elif kind == _EVENT:
                frames = await self._render(payload)
            elif kind == _SYNC:
                chat_id, after = payload
                self.delivered[chat_id] = after
                frames = await self.fill(chat_id, None)
            else:
                await self._close(payload)
                return
            for frame in frames:
                await ws.send_text(jsonutil.dumps(frame))

    async def _close(self, close: Close) -> None:
        if ws_open(self._ws):
            with contextlib.suppress(Exception):
                await self._ws.close(close.code, close.reason)

    async def fill(self, chat_id: str, upto: int | None) -> list[Frame]:
        """Frames for the entries after the last delivered one, up to `upto` (exclusive)."""
        after = self.delivered.get(chat_id, 0)
        if upto is not None and upto <= after + 1:
            return []
        frames: list[Frame] = []
        for seq, entry in await self._transcript.read(chat_id, after):
            if upto is not None and seq >= upto:
                break
            self.delivered[chat_id] = seq
            frame = entry_frame(chat_id, seq, entry, self._audience)
            if frame is not None:
                frames.append(frame)
        return frames

    async def entry(
        self, chat_id: str, seq: int, entry: Entry, *, skip: bool = False
    ) -> list[Frame]:
        """Frames for one live entry, in order: any missed ones first, nothing twice."""
        delivered = self.delivered.get(chat_id, 0)
        if seq <= delivered:
            return []
        frames = await self.fill(chat_id, seq) if seq > delivered + 1 else []
        self.delivered[chat_id] = seq
        if not skip:
            frame = entry_frame(chat_id, seq, entry, self._audience)
            if frame is not None:
                frames.append(frame)
        return frames


def ws_open(ws: WebSocket) -> bool:
    return (
        ws.application_state is WebSocketState.CONNECTED
        and ws.client_state is WebSocketState.CONNECTED
    )


async def read_frames(
    ws: WebSocket,
    handle_text: Callable[[str], Awaitable[bool]],
    handle_bytes: Callable[[bytes], Awaitable[bool]],
) -> None:
    """Read until the client goes (or a handler returns False)."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            keep = await handle_text(text)
        else:
            keep = await handle_bytes(message.get("bytes") or b"")
        if not keep:
            return


SLOW_CONSUMER_CLOSE = Close(CLOSE_SLOW_CONSUMER, "too far behind; reconnect")
