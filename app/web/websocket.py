"""The one place that reaches inside uvicorn's WebSocket protocol: the write path.

uvicorn writes every WebSocket frame to the socket as soon as the app sends it: one `write`
system call per frame, a third of the server's CPU time per relayed message
(docs/performance.md). Here the frames a connection sends while the event loop runs one turn
are joined and written at the start of the next turn, in order, with one call. Nothing else
changes: the same frames, the same bytes on the wire, the same flow control (the transport's
own buffer still pauses a client that does not read).

The ASGI way to send a frame goes through every middleware's `send` wrapper, Starlette and
uvicorn, and has to be awaited, so each connection would need a writer task woken for every
frame. `send_text_now` (offered to the app as the scope extension `DIRECT_SEND`) writes a
text frame (given as UTF-8 bytes, as orjson makes them) at once from whatever code is
running, when the connection is open and its client is keeping up; when it is not, it returns
False and the caller takes the ASGI way, which waits.

This depends on uvicorn's and websockets' internals (`WebSocketsSansIOProtocol`'s transport,
connection and flags), which are not public API. It was written for the versions in
`WRITTEN_FOR`; outside them (or with `LYKTA_WEBSOCKET_ADAPTER=false`) Lykta runs uvicorn's own
`websockets-sansio` protocol unchanged, and the app takes the ASGI way for every frame.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

# The versions this module was written for and tested with: (lowest, first one not).
WRITTEN_FOR: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "uvicorn": ((0, 54), (0, 55)),
    "websockets": ((17, 4), (18,)),
}

# The scope extension under which the app finds `send_text_now` (a `DirectSend`).
DIRECT_SEND = "lykta.send_text_now"
DirectSend = Callable[[bytes], bool]

_TEXT_FIN = 0x81  # FIN + opcode 1 (text); a server's frames are never masked (RFC 6455 5.1)
_HEAD_16 = struct.Struct("!BBH").pack
_HEAD_64 = struct.Struct("!BBQ").pack


def _release(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit())
        if not digits or digits != part:
            break
        parts.append(int(digits))
    return tuple(parts)


def unsupported() -> list[str]:
    """The installed packages outside `WRITTEN_FOR` (empty: the adapter may be used)."""
    out = []
    for package, (lowest, beyond) in WRITTEN_FOR.items():
        try:
            installed = _release(version(package))
        except PackageNotFoundError:
            out.append(f"{package} (not installed)")
            continue
        if not lowest <= installed < beyond:
            out.append(f"{package} {version(package)}")
    return out


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked text frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((_TEXT_FIN, size)) + payload
    if size < 1 << 16:
        return _HEAD_16(_TEXT_FIN, 126, size) + payload
    return _HEAD_64(_TEXT_FIN, 127, size) + payload


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
    """`uvicorn --ws websockets-sansio`, writing once per connection per loop turn, and
    offering the app a synchronous way to send a text frame."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's `writable` event, as a flag send_text_now reads without a call.
        self.write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)  # type: ignore[assignment]

    def pause_writing(self) -> None:
        self.write_paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        self.write_paused = False
        super().resume_writing()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # The app's task has been created but has not run yet: it sees the extension.
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][DIRECT_SEND] = self.send_text_now

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            # A handshake answered with an HTTP response (a refusal) is complete: uvicorn
            # would log an error for each one, as if the app had not answered.
            self.handshake_complete = True

    def send_text_now(self, text: bytes) -> bool:
        """Write a text frame (`text`: UTF-8) now, if the connection is open and writable;
        False otherwise (nothing was written: send it the ASGI way, which waits)."""
        # (A refused handshake sets close_sent too, so these cover every state uvicorn has.)
        # (Once disconnected, `writable` is set again but `disconnected` answers first.)
        if self.close_sent or self.disconnected or not self.handshake_complete:
            return False
        conn = self.conn
        if self.write_paused or conn.state is not State.OPEN:
            return False
        if conn.extensions:
            # A negotiated extension (compression) shapes frames: websockets frames it.
            conn.send_text(text)
            self.transport.write(b"".join(conn.data_to_send()))
        else:
            self.transport.write(text_frame(text))
        return True
