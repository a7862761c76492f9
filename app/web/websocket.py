"""uvicorn's WebSocket protocol, with the frames of one event-loop turn written at once, and a
synchronous way to send a text frame.

uvicorn writes every WebSocket frame to the socket as soon as the app sends it: one `write`
system call per frame, which was a third of the server's CPU time per relayed message
(docs/performance.md). Here the frames a connection sends while the event loop runs one turn
are joined and written at the start of the next turn, in order, with one call. Nothing else
changes: the same frames, the same bytes on the wire, the same flow control (the transport's
own buffer still pauses a client that does not read).

Reading, the common frame (a whole, masked text frame of an open connection) is taken apart
here rather than by websockets' general parser, a chain of generators that cost more per
frame than everything else on the way in; anything else (control frames, fragments, frames
too big, bad masking or bad UTF-8, a closing connection) is handed to websockets whole, so its
parser always starts at a frame boundary and keeps every rule and every close code.

The ASGI way to receive a message awaits Starlette, uvicorn and an asyncio.Queue for every
frame, even when the message is already queued; `receive_text_now` (scope extension
`DIRECT_RECEIVE`) takes a queued text message at once, and the app awaits the ASGI way only
when nothing is queued (or what is queued is not text, e.g. the disconnect).

The ASGI way to send a frame goes through every middleware's `send` wrapper, Starlette and
uvicorn, and has to be awaited, so each connection needs a writer task woken for every frame.
`send_text_now` (offered to the app as the scope extension `DIRECT_SEND`) writes a text frame
(given as UTF-8 bytes, as orjson makes them) at once from whatever code is running, when the
connection is open and its client is keeping up; when it is not, it returns False and the
caller takes the ASGI way, which waits.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets without its C extension
    from websockets.utils import apply_mask

# The scope extensions under which the app finds `send_text_now` (a `DirectSend`) and
# `receive_text_now` (a `DirectReceive`).
DIRECT_SEND = "lykta.send_text_now"
DirectSend = Callable[[bytes], bool]
DIRECT_RECEIVE = "lykta.receive_text_now"
DirectReceive = Callable[[], str | None]

_TEXT_FIN = 0x81  # FIN + opcode 1 (text); a server's frames are never masked (RFC 6455 5.1)


_HEAD_16 = struct.Struct("!BBH").pack
_HEAD_64 = struct.Struct("!BBQ").pack


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


class Inbox(asyncio.Queue[Any]):
    """uvicorn's queue of ASGI receive events, with a way to take a queued text message
    without awaiting (asyncio.Queue's own storage hooks, as its subclasses use them). Text
    messages read here are queued as plain strings and become ASGI events only if they are
    taken the ASGI way."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._bound = loop

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        # asyncio's own asks for the running loop on every wait for a message: on Python 3.11
        # a getpid() system call each time. A connection's queue lives on its loop.
        return self._bound

    def _init(self, maxsize: int) -> None:
        self._items: deque[Any] = deque()
        self._queue = self._items

    def _put(self, item: Any) -> None:
        self._items.append(item)

    def _get(self) -> Any:
        item = self._items.popleft()
        if type(item) is str:
            return {"type": "websocket.receive", "text": item}
        return item

    def put_text(self, text: str) -> None:
        """`put_nowait` for a text message read here, without its bookkeeping: this queue is
        unbounded and never joined, so only a reader waiting for a message needs waking."""
        self._items.append(text)
        getters = self._getters  # type: ignore[attr-defined]
        if getters:
            self._wakeup_next(getters)  # type: ignore[attr-defined]

    def pending(self) -> bool:
        """`not empty()`, without its call to qsize() (for every frame read)."""
        return bool(self._items)

    def take_text(self) -> str | None:
        items = self._items
        if items:
            first = items[0]
            if type(first) is str:
                return items.popleft()  # type: ignore[no-any-return]
            text = first.get("text")
            if text is not None and first["type"] == "websocket.receive":
                items.popleft()
                return str(text)
        return None


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    """`uvicorn --ws websockets-sansio`, writing once per connection per loop turn, reading
    whole text frames itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = self.inbox = Inbox(self.loop)
        # uvicorn's `writable` event, as a flag send_text_now reads without a call.
        self.write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)  # type: ignore[assignment]
        # Bytes received after the handshake that do not make a whole frame yet.
        self._unparsed = bytearray()
        # None until the handshake is done; then whether frames are read here (see above).
        self._framing: bool | None = None

    def data_received(self, data: bytes) -> None:
        framing = self._framing
        if framing is None and self.handshake_complete:
            # Only if websockets holds no bytes of a frame yet (a client may not send any
            # before the handshake's answer; one that did is left to websockets throughout).
            framing = self._framing = not self.conn.reader.buffer
        if not framing:
            super().data_received(data)
            return
        buf = self._unparsed
        buf += data
        start, size = 0, len(buf)
        conn = self.conn
        limit = conn.max_message_size
        # Whether a text frame may be taken apart here; it changes only in websockets' hands.
        plain = conn.state is State.OPEN and conn.current_size is None and not conn.extensions
        while size - start >= 2:
            head1, head2 = buf[start], buf[start + 1]
            length = head2 & 0x7F
            at = start + 2
            if length == 126:
                if size - at < 2:
                    break
                length = int.from_bytes(buf[at : at + 2], "big")
                at += 2
            elif length == 127:
                if size - at < 8:
                    break
                length = int.from_bytes(buf[at : at + 8], "big")
                at += 8
            if not head2 & 0x80 or (limit is not None and length > limit):
                # Unmasked or too big: websockets closes with the right code, without
                # waiting for a payload that may never end.
                self._hand_over(bytes(buf[start:]))
                return
            end = at + 4 + length
            if end > size:
                break
            if head1 == _TEXT_FIN and plain:
                payload = apply_mask(bytes(buf[at + 4 : end]), bytes(buf[at : at + 4]))
                try:
                    text = payload.decode()
                except UnicodeDecodeError:
                    text = None
                if text is not None:
                    self.inbox.put_text(text)
                    if not self.read_paused:
                        self.read_paused = True
                        self.transport.pause_reading()
                    start = end
                    continue
            # Anything else, whole: websockets' parser, as uvicorn does it.
            if not self._feed(bytes(buf[start:end])):
                return
            start = end
            if conn.state is not State.OPEN:
                # Closing: the rest is websockets' business.
                self._hand_over(bytes(buf[start:]))
                return
            plain = conn.current_size is None and not conn.extensions
        del buf[:start]

    def _feed(self, frame: bytes) -> bool:
        """One whole frame through websockets; False once the connection failed."""
        self.conn.receive_data(frame)
        if self.conn.parser_exc is not None:
            self.handle_parser_exception()
            return False
        self.handle_events()
        return True

    def _hand_over(self, rest: bytes) -> None:
        """From here on websockets parses everything (its parser is at a frame boundary)."""
        self._framing = False
        self._unparsed = bytearray()
        if rest:
            super().data_received(rest)

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
            scope["extensions"][DIRECT_RECEIVE] = self.receive_text_now

    def receive_text_now(self) -> str | None:
        """The next message if it is text and already here (else None: await the ASGI way)."""
        inbox = self.inbox
        text = inbox.take_text()
        if text is not None and self.read_paused and not inbox.pending():
            # As uvicorn's receive does: read again once the app has caught up.
            self.read_paused = False
            self.transport.resume_reading()
        return text

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
