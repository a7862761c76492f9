"""uvicorn's WebSocket protocol, with the frames of one event-loop turn written at once.

uvicorn writes every WebSocket frame to the socket as soon as the app sends it: one `write`
system call per frame, which was a third of the server's CPU time per relayed message
(docs/performance.md). Here the frames a connection sends while the event loop runs one turn
are joined and written at the start of the next turn, in order, with one call. Nothing else
changes: the same frames, the same bytes on the wire, the same flow control (the transport's
own buffer still pauses a client that does not read).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class CoalescingTransport:
    """Wraps a transport: `write` collects, the next loop turn flushes; `close` flushes first."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        # get_extra_info, pause_reading, resume_reading, abort, ...: the transport's own.
        return getattr(self._transport, name)


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    """`uvicorn --ws websockets-sansio`, writing once per connection per loop turn."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)  # type: ignore[assignment]
