"""What both WebSocket adapters share: one client connection's reading and outgoing side.

Every frame to a client goes through one bounded queue and one writer task, so frames keep
their order and a slow client cannot slow anyone else: when its queue is full it is dropped
(and reconnects). An event that needs nothing waited for (most messages, typing, offers) is
turned into frames as it arrives, and written at once while nothing is queued before it and
the client keeps up (app/web/websocket.py, `DIRECT_SEND`); anything else (a chat's key to
fetch, entries missing before this one, a step with I/O) waits its turn in the writer.
Whether a frame goes now or later is decided here and nowhere else. Transcript entries are
delivered strictly in sequence per chat (app/chats/plan.py, `Delivery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from app.broker.base import BrokerUnavailableError
from app.broker.hub import LOCAL_ENTRY, Event
from app.chats.entries import Entry, EntryKind
from app.chats.plan import Delivery, Frame, entry_of
from app.chats.protocol import CLOSE_SLOW_CONSUMER, CLOSE_TRY_AGAIN_LATER, Close, ProtocolError
from app.chats.transcript import Transcript
from app.kit import jsonutil
from app.web.websocket import DIRECT_SEND, DirectSend

logger = logging.getLogger(__name__)

# Events turned into frames without waiting for anything, and those that need a step with I/O.
Render = Callable[[Event], list[Frame]]
Handle = Callable[[Event], Awaitable[list[Frame]]]
# A socket's part in entries of the kinds it watches: frames to go before the entry's own.
OnEntry = Callable[[str, Entry], Awaitable[list[Frame]]]

_FRAME = 0
_EVENT = 1
_SYNC = 2
_CLOSE = 3
_NUMBERED = 4


class Outbound:
    """A client's outgoing frames.

    The socket says which chats it sees (`sees`), how events become frames (`render`: no
    I/O; `handle`: with I/O, in the writer), and which entry kinds change what it follows
    (`watch`, with `on_entry` called however such an entry arrives: live, filling a gap or
    catching up).
    """

    def __init__(
        self,
        ws: WebSocket,
        *,
        size: int,
        transcript: Transcript,
        delivery: Delivery,
        sees: Callable[[Any], bool],
    ) -> None:
        self._ws = ws
        # A deque and one waiter rather than an asyncio.Queue: this is on every frame's path,
        # and the writer drains whatever is queued with one wake-up.
        self._items: deque[tuple[int, Any]] = deque()
        self._size = size
        self._waiter: asyncio.Future[None] | None = None
        # Writes a frame at once (None where the server offers no such thing: uvicorn's own
        # WebSocket protocol); only while nothing is queued or being written.
        extensions = ws.scope.get("extensions") or {}
        self._direct: DirectSend | None = extensions.get(DIRECT_SEND)
        self._busy = False
        self._transcript = transcript
        self.delivery = delivery
        self._sees = sees
        self.render: dict[str, Render] = {}
        self.handle: dict[str, Handle] = {}
        self.watch: frozenset[EntryKind] = frozenset()
        self.on_entry: OnEntry | None = None
        # The id this connection's own entries and typing carry as their origin (set by the
        # socket): it sees nothing of them, so they are passed over cheaply.
        self.origin: str | None = None
        self.overflowed = False
        self._on_overflow: Callable[[], None] | None = None

    def on_overflow(self, callback: Callable[[], None]) -> None:
        self._on_overflow = callback

    def _put(self, item: tuple[int, Any]) -> None:
        if self.overflowed:
            return
        if len(self._items) >= self._size:
            self.overflowed = True
            if self._on_overflow is not None:
                self._on_overflow()
            return
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _idle(self) -> bool:
        """Nothing queued or being written: a frame may go out at once."""
        return (
            self._direct is not None and not self._items and not self._busy and not self.overflowed
        )

    def _write_direct(self, frames: list[Frame]) -> None:
        """Write now what can be; queue the rest, in order, once the client is not keeping up."""
        direct = self._direct
        assert direct is not None
        for index, frame in enumerate(frames):
            if not direct(jsonutil.dumpb(frame)):
                for rest in frames[index:]:
                    self._put((_FRAME, rest))
                return

    def frame(self, frame: Frame) -> None:
        if self._idle():
            self._write_direct([frame])
            return
        self._put((_FRAME, frame))

    def event(self, event: Event) -> None:
        """A hub listener: never blocks."""
        if self.origin is not None and event.get("origin") == self.origin and self._own(event):
            return
        if self._idle():
            frames = self._at_hand(event)
            if frames is not None:
                if frames:
                    self._write_direct(frames)
                return
        self._put((_EVENT, event))

    def _own(self, event: Event) -> bool:
        """Pass over this connection's own typing, or its own message when it is next in
        sequence (it is not shown back to its author); False: handle it as any other."""
        kind = event.get("type")
        if kind == "typing":
            return True
        entry = event.get(LOCAL_ENTRY)
        if kind != "entry" or not isinstance(entry, Entry) or entry.kind is not EntryKind.message:
            return False
        return self.delivery.pass_over(event["chat_id"], event["seq"])

    def _at_hand(self, event: Event) -> list[Frame] | None:
        """The frames for an event when nothing needs waiting for; None: the writer's turn."""
        kind = event.get("type")
        if kind == "entry":
            chat_id = event.get("chat_id")
            if not isinstance(chat_id, str) or not self._sees(chat_id):
                return []
            entry = entry_of(event, self._transcript.cached_key(chat_id))
            if not isinstance(entry, Entry) or entry.kind in self.watch:
                return None
            skip = self.origin is not None and event.get("origin") == self.origin
            return self.delivery.take(chat_id, int(event["seq"]), entry, skip=skip)
        render = self.render.get(str(kind))
        if render is not None:
            return render(event)
        return None if kind in self.handle else []

    async def _handled(self, event: Event) -> list[Frame]:
        """In the writer: the frames for an event, with whatever it needs fetched first."""
        frames = self._at_hand(event)
        if frames is not None:
            return frames
        kind = str(event.get("type"))
        if kind != "entry":
            return await self.handle[kind](event)
        chat_id, seq = str(event["chat_id"]), int(event["seq"])
        entry = entry_of(event, await self._transcript.key(chat_id))
        if not isinstance(entry, Entry):
            # Unreadable here (shredded meanwhile, or refused): the transcript decides.
            return await self.fill(chat_id, seq + 1)
        skip = self.origin is not None and event.get("origin") == self.origin
        return await self.deliver(chat_id, seq, entry, skip=skip)

    def numbered(self, chat_id: str, seq: int, frame: Frame) -> None:
        """A frame that names the client's own entry `seq` (an acknowledgement), in the
        client's numbering: at once when it is known, else once the entries before it are
        delivered (a visitor counts only what it sees)."""
        number = self.delivery.number(chat_id, seq)
        if number is None:
            self._put((_NUMBERED, (chat_id, seq, frame)))
            return
        frame["seq"] = number
        self.frame(frame)

    def sync(self, chat_id: str, after: int) -> None:
        """Deliver every entry of the chat after `after` (again, if asked for), then continue
        live."""
        self._put((_SYNC, (chat_id, after)))

    def catch_up(self, chat_id: str) -> None:
        """Deliver every entry of the chat after the last delivered one, then continue live:
        what was stored before a subscription took effect, none of it twice."""
        self._put((_SYNC, (chat_id, None)))

    def close(self, close: Close) -> None:
        self._put((_CLOSE, close))

    async def run(self) -> None:
        try:
            await self._run()
        except BrokerUnavailableError:
            await self._close(UNAVAILABLE_CLOSE)
        except WebSocketDisconnect:
            # The client went while its frames were on their way: not an error (the reader
            # sees it go and the connection ends as any other).
            pass

    async def _run(self) -> None:
        ws = self._ws
        items = self._items
        loop = asyncio.get_running_loop()
        while True:
            if not items:
                self._waiter = loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            kind, payload = items.popleft()
            # Until its frames are out, nothing may be written past this item.
            self._busy = True
            if kind == _FRAME:
                frames: list[Frame] = [payload]
            elif kind == _EVENT:
                frames = await self._handled(payload)
            elif kind == _SYNC:
                chat_id, after = payload
                upto = None if after is None else self.delivery.sync(chat_id, after)
                if upto is None:
                    frames = await self.fill(chat_id, None)
                else:
                    frames = await self._again(chat_id, after, upto)
            elif kind == _NUMBERED:
                frames = await self._numbered(*payload)
            else:
                await self._close(payload)
                return
            for frame in frames:
                await ws.send_text(jsonutil.dumps(frame))
            self._busy = False

    async def _close(self, close: Close) -> None:
        if ws_open(self._ws):
            with contextlib.suppress(Exception):
                await self._ws.close(close.code, close.reason)

    async def _again(self, chat_id: str, after: int, upto: int) -> list[Frame]:
        """Frames for the entries after `after` up to `upto` that the client asked for again,
        wherever delivery is (staff: see Delivery.sync)."""
        frames: list[Frame] = []
        for seq, entry in await self._transcript.read(chat_id, after):
            if seq > upto:
                break
            if self.on_entry is not None and entry.kind in self.watch:
                frames += await self.on_entry(chat_id, entry)
            frames += self.delivery.again(chat_id, seq, entry)
        return frames

    async def _numbered(self, chat_id: str, seq: int, frame: Frame) -> list[Frame]:
        frames = await self.fill(chat_id, seq)
        delivery = self.delivery
        number = delivery.number(chat_id, seq)
        if number is None and seq > delivery.last(chat_id):
            # What came before it could not be read (shredded meanwhile): go on past it.
            delivery.skip_to(chat_id, seq - 1)
            number = delivery.number(chat_id, seq)
        return [*frames, {**frame, "seq": number if number is not None else seq}]

    async def fill(self, chat_id: str, upto: int | None) -> list[Frame]:
        """Frames for the entries after the last delivered one, up to `upto` (exclusive; None:
        all of them, and the chat's end even if it was shredded)."""
        delivery = self.delivery
        if upto is not None and upto <= delivery.last(chat_id) + 1:
            return []
        transcript = self._transcript
        read = transcript.read if upto is not None else transcript.read_to_end
        frames: list[Frame] = []
        for seq, entry in await read(chat_id, delivery.last(chat_id)):
            if upto is not None and seq >= upto:
                break
            if seq <= delivery.last(chat_id):
                continue  # passed over meanwhile: this connection's own message (see _own)
            # An entry refused as tampered leaves a gap in what is read: go on past it.
            delivery.skip_to(chat_id, seq - 1)
            frames += await self._one(chat_id, seq, entry, skip=False)
        return frames

    async def deliver(
        self, chat_id: str, seq: int, entry: Entry, *, skip: bool = False
    ) -> list[Frame]:
        """Frames for one live entry, in order: any missed ones first, nothing twice."""
        delivery = self.delivery
        if seq <= delivery.last(chat_id):
            return []
        frames = await self.fill(chat_id, seq) if seq > delivery.last(chat_id) + 1 else []
        # Whatever could not be read before it (shredded, refused) is passed over.
        delivery.skip_to(chat_id, seq - 1)
        return frames + await self._one(chat_id, seq, entry, skip=skip)

    async def _one(self, chat_id: str, seq: int, entry: Entry, *, skip: bool) -> list[Frame]:
        # An entry a resuming visitor had already was acted on then (see Delivery.resume).
        replayed = self.delivery.replaying(chat_id)
        frames = self.delivery.take(chat_id, seq, entry, skip=skip) or []
        if self.on_entry is not None and entry.kind in self.watch and not replayed:
            return await self.on_entry(chat_id, entry) + frames
        return frames


def ws_open(ws: WebSocket) -> bool:
    return (
        ws.application_state is WebSocketState.CONNECTED
        and ws.client_state is WebSocketState.CONNECTED
    )


SLOW_CONSUMER_CLOSE = Close(CLOSE_SLOW_CONSUMER, "too far behind; reconnect")
# The broker (Redis) is unreachable: the client shows "reconnecting" and tries again shortly.
UNAVAILABLE_CLOSE = Close(CLOSE_TRY_AGAIN_LATER, "service unavailable; reconnect shortly")
# How long the writer may take to flush its last frames and the close frame.
DRAIN_SECONDS = 2.0


class ClientSocket:
    """The life of one client connection: a reader (this task) and a writer task.

    Subclasses handle frames (`on_text`, `on_bytes`), say how events become frames (on
    `out`), and set themselves up and tear down (`join`, `leave`).
    """

    def __init__(self, ws: WebSocket, outbound: Outbound) -> None:
        self.ws = ws
        self.out = outbound
        self._task: asyncio.Task[Any] | None = None
        self._dropped = False

    async def join(self) -> None:
        """Called once the writer runs, before the first frame is read."""

    async def leave(self) -> None:
        """Called once when the connection is over, whatever ended it."""

    async def on_text(self, text: str) -> bool:
        """Handle one text frame; False closes the connection."""
        raise NotImplementedError

    async def on_bytes(self, data: bytes) -> bool:
        raise NotImplementedError

    async def serve(self) -> None:
        self._task = asyncio.current_task()
        self.out.on_overflow(self._drop)
        writer = asyncio.create_task(self.out.run())
        client_gone = True
        try:
            await self.join()
            client_gone = await self._read()
        except BrokerUnavailableError:
            # Nothing can be done without the broker; the client resumes once it is back.
            self.out.close(UNAVAILABLE_CLOSE)
            client_gone = False
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._dropped or task is None:
                raise
            task.uncancel()
        finally:
            try:
                # Without the broker the disconnect cannot be recorded; the connection's
                # lease lapses instead and starts the grace period.
                with contextlib.suppress(BrokerUnavailableError):
                    await self.leave()
            finally:
                await self._stop_writer(writer, client_gone=client_gone)

    async def _read(self) -> bool:
        """Read until the client goes (True) or we decide to close (False)."""
        ws = self.ws
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return True
            text = message.get("text")
            if text is not None:
                keep = await self.on_text(text)
            else:
                keep = await self.on_bytes(message.get("bytes") or b"")
            if not keep:
                return False

    def _drop(self) -> None:
        """The client fell behind: stop reading and close (see _stop_writer)."""
        self._dropped = True
        if self._task is not None:
            self._task.cancel()

    async def _stop_writer(self, writer: asyncio.Task[None], *, client_gone: bool) -> None:
        if self._dropped:
            writer.cancel()
            if ws_open(self.ws):
                with contextlib.suppress(TimeoutError, RuntimeError, OSError):
                    await asyncio.wait_for(
                        self.ws.close(SLOW_CONSUMER_CLOSE.code, SLOW_CONSUMER_CLOSE.reason),
                        DRAIN_SECONDS,
                    )
        elif not client_gone:
            # We chose to close: let the writer send what is queued, then the close frame.
            with contextlib.suppress(TimeoutError, RuntimeError, OSError):
                await asyncio.wait_for(asyncio.shield(writer), DRAIN_SECONDS)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, RuntimeError, OSError):
            await writer

    def answer(self, result: ProtocolError | Close) -> bool:
        """Report a protocol error, or queue the close; False means stop reading."""
        if isinstance(result, Close):
            self.out.close(result)
            return False
        self.out.frame(result.frame())
        return True


async def refuse_while_unavailable(ws: WebSocket, available: bool) -> bool:
    """Turn a new client away (to come back shortly) while the broker is unreachable."""
    if available:
        return False
    await ws.accept()
    await ws.close(UNAVAILABLE_CLOSE.code, UNAVAILABLE_CLOSE.reason)
    return True
