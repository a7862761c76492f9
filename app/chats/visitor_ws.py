"""The visitor WebSocket: a thin adapter between frames and the chat service.

No account; the one cookie read is a staff session, and only for a practice line (its
players' alone). Nothing else about the connection is read here but its `Origin` (checked,
never kept) and the keyed hash the abuse middleware left in its place of the address.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket

from app.abuse.ratelimit import Limit, tag_of
from app.audit.service import AuditAction, audit_service
from app.broker.base import BrokerUnavailableError
from app.broker.records import ChatState
from app.chats.background import lease_seconds
from app.chats.channels import Deadline, chat_channel, deadline_key, visitor_lease
from app.chats.connection import (
    UNAVAILABLE_CLOSE,
    ClientSocket,
    Outbound,
    refuse_while_unavailable,
)
from app.chats.entries import Audience, Entry, EntryKind
from app.chats.frames import (
    PROTOCOL_VERSION,
    AcceptContinuity,
    DeclineInterpreter,
    DeleteContinuity,
    Ping,
    ResumeChat,
    StartChat,
    VisitorDanger,
    VisitorEnd,
    VisitorExit,
    VisitorFeedback,
    VisitorMessage,
    VisitorTyping,
)
from app.chats.gathering import Gathering
from app.chats.lifecycle import LineUnavailable, Started, unknown_line
from app.chats.lost import LostChat
from app.chats.plan import MESSAGE_AFTER_END, Delivery, Frame, typing_frames
from app.chats.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_NORMAL,
    Close,
    ErrorCode,
    Phase,
    ProtocolError,
    VisitorConnection,
)
from app.continuity import codes
from app.continuity.chats import UNKNOWN_CODE, CounsellorAway, CounsellorHere
from app.kit.ids import new_token
from app.lines.public import hidden
from app.routing.positions import Shown, position_frame
from app.web.origins import origin_allowed

if TYPE_CHECKING:
    from app.runtime import Runtime

router = APIRouter()


@router.websocket("/ws/visitor")
async def visitor_socket(ws: WebSocket) -> None:
    runtime: Runtime = ws.app.state.runtime
    if not origin_allowed(ws.headers.get("origin"), runtime.settings.visitor_origins):
        await ws.accept()
        await ws.close(CLOSE_FORBIDDEN, "origin not allowed")
        return
    if await refuse_while_unavailable(ws, runtime.broker.available):
        return
    await VisitorSocket(ws, runtime).serve()


class VisitorSocket(ClientSocket):
    def __init__(self, ws: WebSocket, runtime: Runtime) -> None:
        settings = runtime.settings
        super().__init__(
            ws,
            Outbound(
                ws,
                size=settings.send_queue_size,
                transcript=runtime.transcript,
                delivery=Delivery(Audience.visitor),
                sees=self._sees,
            ),
        )
        self.out.render["typing"] = lambda e: typing_frames(
            e, self._sees(e.get("chat_id")), _SEES_TYPING
        )
        self.out.watch = _CHANGES_STATE
        self.out.on_entry = self._after_entry
        self.rt = runtime
        self.id = new_token()[:16]
        self.out.origin = self.id
        self.tag = tag_of(ws.scope)
        self.protocol = VisitorConnection(
            rate=settings.visitor_frame_rate,
            burst=settings.visitor_frame_burst,
            tolerance=settings.flood_tolerance,
            clock=time.monotonic,
        )
        self.chat_id: str | None = None
        # The chat this connection had before it ended: a quick exit still shreds it.
        self.last_chat_id: str | None = None
        self.line: str | None = None
        self.language: str | None = None
        # The highest number of the visitor's own messages acknowledged in this chat.
        self.acked = 0
        self.waiting = False
        # Messages read and not yet stored (app/chats/gathering.py).
        self._messages = Gathering(self._add)
        self._message_quota = (
            None
            if self.tag is None
            else runtime.rate_limiter.quota(
                "msg", self.tag, Limit(settings.visitor_message_rate_per_minute, 60)
            )
        )

    async def serve(self) -> None:
        await self.ws.accept()
        await super().serve()

    async def join(self) -> None:
        self.rt.connections.visitors[self.id] = self
        self.out.frame({"type": "hello", "protocol": PROTOCOL_VERSION, "role": "visitor"})

    async def leave(self) -> None:
        self.rt.connections.visitors.pop(self.id, None)
        # The messages read before the client went are stored before it counts as gone.
        with contextlib.suppress(BrokerUnavailableError):
            await self._messages.settled()
        await self._leave(disconnected=True)

    @property
    def last_seq(self) -> int:
        """The chat's last entry as far as this connection knows (a guess for appending)."""
        if self.chat_id is None:
            return 0
        return max(self.acked, self.out.delivery.last(self.chat_id))

    def _sees(self, chat_id: object) -> bool:
        return chat_id is not None and chat_id == self.chat_id

    async def on_bytes(self, data: bytes) -> bool:
        return self.answer(self.protocol.receive_bytes(data))

    async def on_text(self, text: str) -> bool:
        frame = self.protocol.receive_text(text)
        if isinstance(frame, VisitorMessage):
            self._messages.add(frame)
            return True
        # Anything else is handled after the messages read before it, as they were sent.
        await self._messages.settled()
        if isinstance(frame, ProtocolError | Close):
            return self.answer(frame)
        return await _HANDLERS[type(frame)](self, frame)

    # Frames from the visitor --------------------------------------------------------------

    async def _add(self, burst: list[VisitorMessage]) -> None:
        chat_id, line = self.chat_id, self.line
        if chat_id is None or line is None:
            for _ in burst:
                self.out.frame(MESSAGE_AFTER_END.frame())  # the chat ended as these were read
            return
        try:
            results = await self.rt.chats.messages.visitor_messages(
                chat_id,
                line,
                [(frame.text, frame.client_id) for frame in burst],
                last_seq=self.last_seq,
                origin=self.id,
                # Per client across connections (the token bucket is per connection),
                # counted by the broker with the append.
                quota=self._message_quota,
            )
        except BrokerUnavailableError:
            # As when the reader meets it (ClientSocket.serve): the client comes back later.
            self.out.close(UNAVAILABLE_CLOSE)
            raise
        for frame, result in zip(burst, results, strict=True):
            if isinstance(result, ProtocolError):
                self.out.frame(result.frame())
                continue
            seq, duplicate = result
            self.acked = max(self.acked, seq)
            ack: Frame = {"type": "message.ack", "chat_id": chat_id, "duplicate": duplicate}
            if frame.client_id is not None:
                ack["client_id"] = frame.client_id
            # Numbered as the visitor numbers what it sees (app/chats/plan.py, Delivery).
            self.out.numbered(chat_id, seq, ack)

    async def _typing_frame(self, frame: VisitorTyping) -> bool:
        assert self.chat_id is not None
        await self.rt.chats.messages.typing(self.chat_id, "visitor", frame.typing, self.id)
        return True

    async def _ping(self, frame: Ping) -> bool:
        self.out.frame({"type": "pong"})
        return True

    async def _end(self, frame: VisitorEnd) -> bool:
        assert self.chat_id is not None
        problem = await self.rt.chats.lifecycle.visitor_end(self.chat_id)
        if problem is not None:
            self.out.frame(problem.frame())
        return True

    async def _delete_continuity(self, frame: DeleteContinuity) -> bool:
        if await self._code_attempt("continuity.delete"):
            await self.rt.continuity.delete(frame.code)
            # The same answer whether there was such a code or not.
            self.out.frame({"type": "continuity.deleted"})
        return True

    async def _exit(self, frame: VisitorExit) -> bool:
        chat_id = self.chat_id or self.last_chat_id
        if chat_id is not None:
            await self.rt.chats.lifecycle.visitor_exit(chat_id)
        self.out.frame({"type": "exited"})
        return self.answer(Close(CLOSE_NORMAL, "exit"))

    async def _decline_interpreter(self, frame: DeclineInterpreter) -> bool:
        assert self.chat_id is not None
        declined = await self.rt.chats.interpreters.visitor_decline(self.chat_id)
        if isinstance(declined, ProtocolError):
            self.out.frame(declined.frame())
            return True
        record, interpreter_id = declined
        # Which interpreter left which chat, and why; no one is named for the visitor.
        entry = audit_service.entry(
            AuditAction.interpreter_left,
            actor_id=None,
            target_staff_id=interpreter_id,
            chat_id=record.id,
            line_key=record.line,
            detail={"reason": "declined"},
        )
        await self.rt.held_rows.hold(entry)
        return True

    async def _feedback(self, frame: VisitorFeedback) -> bool:
        # A count per line and answer in this process; no chat id, no time, no visitor.
        if self.line is not None:
            self.rt.chats.counters.feedback_given(self.line, frame.answer)
        self.out.frame({"type": "feedback.thanks"})
        return True

    async def _danger(self, frame: VisitorDanger) -> bool:
        """ "I am in danger right now": the line's emergency text at once, the chat ahead in
        its queue and its counsellor told, once per chat (docs/risk.md)."""
        assert self.chat_id is not None
        if self.tag is not None and not await self.rt.rate_limiter.allow(
            "danger", self.tag, DANGER_LIMIT
        ):
            self.out.frame(
                ProtocolError(
                    ErrorCode.rate_limited,
                    "pressed too often; try again in a few minutes",
                    "danger",
                ).frame()
            )
            return True
        pressed = await self.rt.chats.care.in_danger(self.chat_id)
        if isinstance(pressed, ProtocolError):
            self.out.frame(pressed.frame())
            return True
        record, _ = pressed
        self.out.frame(
            {
                "type": "danger.noted",
                "chat_id": record.id,
                "text": self.rt.chats.care.emergency_text(record.line, record.language),
            }
        )
        return True

    async def _within_rate(self, ref: str) -> bool:
        """Per-client limit across connections (the token bucket is per connection)."""
        if self.tag is None:
            return True
        limit = Limit(self.rt.settings.visitor_message_rate_per_minute, 60)
        if await self.rt.rate_limiter.allow("msg", self.tag, limit):
            return True
        self.out.frame(
            ProtocolError(ErrorCode.rate_limited, "too many messages; slow down", ref).frame()
        )
        return False

    async def _code_attempt(self, ref: str) -> bool:
        """Continuity code attempts are limited per client, like any abuse: guessing codes
        through Lykta is slow, whatever the answers."""
        if self.tag is None:
            return True
        settings = self.rt.settings
        limit = Limit(settings.continuity_attempts, settings.continuity_attempt_window_seconds)
        if await self.rt.rate_limiter.allow("code", self.tag, limit):
            return True
        self.out.frame(
            ProtocolError(
                ErrorCode.rate_limited, "too many code attempts; try again in a few minutes", ref
            ).frame()
        )
        return False

    async def _accept_continuity(self, frame: AcceptContinuity) -> bool:
        assert self.chat_id is not None
        issued = await self.rt.continuity.accept(self.chat_id)
        if isinstance(issued, ProtocolError):
            self.out.frame(issued.frame())
            return True
        # The only time the code leaves the server: this frame, to this visitor, once.
        self.out.frame(
            {
                "type": "continuity.code",
                "chat_id": self.chat_id,
                "code": issued.code,
                "words": len(issued.code.split()),
                "bits": round(codes.code_bits(self.language or "en"), 1),
                "expires_at": round(issued.expires_at.timestamp()),
            }
        )
        return True

    async def _start(self, frame: StartChat) -> bool:
        if not await self._within_rate("start"):
            return True
        # A practice line not for this visitor gets the answers a key no line has gets.
        reaches = await self._reaches(frame.line)
        result: Started | LineUnavailable | ProtocolError
        if frame.code is not None:
            if not await self._code_attempt("start"):
                return True
            returning = (
                await self.rt.continuity.start(
                    frame.code,
                    frame.line,
                    frame.language,
                    peer=frame.peer,
                    tag=self.tag,
                    connection=self.id,
                )
                if reaches
                else ProtocolError(ErrorCode.unknown_code, UNKNOWN_CODE, "start")
            )
            if isinstance(returning, CounsellorAway):
                # No chat yet: the visitor may come back then, or start one for anyone.
                self.out.frame(
                    {
                        "type": "continuity.away",
                        "name": returning.name or None,
                        "next_on_duty_at": returning.next_on_duty_at,
                    }
                )
                return True
            if isinstance(returning, CounsellorHere):
                self.out.frame(
                    {"type": "continuity.found", "name": returning.name, "booked": returning.booked}
                )
                result = returning.started
            else:
                result = returning
        elif not reaches:
            result = unknown_line(frame.line)
        else:
            result = await self.rt.chats.lifecycle.start(
                frame.line, frame.language, peer=frame.peer, tag=self.tag, connection=self.id
            )
        if isinstance(result, ProtocolError):
            self.out.frame(result.frame())
            return True
        if isinstance(result, LineUnavailable):
            self.out.frame(await self._closed_frame(result))
            return True
        record = result.record
        # Framed before subscribing: on Redis the subscription waits for its confirmation,
        # and an entry stored meanwhile by this process (an auto-accept) would be written
        # first; "started" after "joined" would take the counsellor's name off the visitor.
        self.out.frame(
            {
                "type": "chat.started",
                "chat_id": record.id,
                "token": result.token,
                "line": record.line,
                "language": record.language,
                "language_fallback": result.language_fallback,
                "peer_requested": record.peer_requested,
                "continuity": record.continuity_for is not None,
            }
        )
        # The position, too, goes before subscribing: after a counsellor's "joined" it would
        # be stale.
        shown = await self.rt.queue_watch.first_shown(record, result.position, result.staffing)
        self.out.frame(position_frame(record.id, *shown))
        await self._enter(record.id, record.line, record.language, 0)
        await self._wait_in_queue(shown)
        # Anything that happened between creating the chat and subscribing (an auto-accept).
        self.out.catch_up(record.id)
        return True

    async def _resume(self, frame: ResumeChat) -> bool:
        result = await self.rt.chats.lifecycle.resume(
            frame.chat_id, frame.token, connection=self.id, admit=self._reaches
        )
        if isinstance(result, ProtocolError | LostChat):
            if isinstance(result, LostChat):
                # As after any end: the same connection may start again, or give feedback.
                self.line, self.last_chat_id = result.line, result.chat_id
                self.protocol.ended()
            self.out.frame(result.frame())
            return True
        # What the visitor has seen of the chat so far, in its own numbering.
        seen = await self.rt.transcript.seen_by_visitor(result.id)
        # Framed before subscribing, as "started" is (see _start).
        self.out.frame(
            {
                "type": "chat.resumed",
                "chat_id": result.id,
                "line": result.line,
                "language": result.language,
                "state": _visitor_state(result.state),
                "counsellor": {"name": result.counsellor_alias}
                if result.counsellor_alias
                else None,
                "last_seq": seen,
            }
        )
        await self._enter(result.id, result.line, result.language, frame.last_seq)
        # A guess for appending: the chat's own numbering, not the visitor's.
        self.acked = result.last_seq
        self.out.catch_up(result.id)
        if result.waiting or result.state is ChatState.offered:
            await self._wait_in_queue(None)
        return True

    async def _reaches(self, line_key: str) -> bool:
        """Whether this visitor may reach the line: a practice line is its players' alone."""
        return not await hidden(self.rt, self.ws, self.rt.lines.get(line_key))

    async def _enter(self, chat_id: str, line: str, language: str, seen: int) -> None:
        """Follow the chat; the visitor has its first `seen` entries (its `last_seq`)."""
        self.chat_id, self.line, self.language = chat_id, line, language
        self.acked = 0
        self.protocol.entered(chat_id)
        # What the client has: the catch-up goes through the chat from its start, counting
        # what the visitor sees, and sends what comes after `seen`.
        self.out.delivery.resume(chat_id, seen)
        await self.rt.broker.subscribe(chat_channel(chat_id), self.out.event)
        # A lease from the start: if this process dies, another starts the grace period.
        until = self.rt.broker.now() + lease_seconds(self.rt.settings)
        await self.rt.broker.schedule(deadline_key(Deadline.visitor_lease, chat_id), until)

    async def _wait_in_queue(self, shown: Shown | None) -> None:
        if self.waiting or self.chat_id is None or self.line is None:
            return
        self.waiting = True
        await self.rt.queue_watch.add_waiting(self.line, self.chat_id, self.out.frame, shown)

    async def _stop_waiting(self) -> None:
        if self.waiting and self.chat_id is not None and self.line is not None:
            self.waiting = False
            await self.rt.queue_watch.remove_waiting(self.line, self.chat_id)

    async def _leave(self, *, disconnected: bool) -> None:
        """Stop following the chat; on a drop the chat waits out the visitor's grace period."""
        chat_id = self.chat_id
        if chat_id is None:
            return
        await self._stop_waiting()
        await self.rt.broker.unsubscribe(chat_channel(chat_id), self.out.event)
        self.chat_id = None
        if disconnected and self.protocol.phase is Phase.in_chat:
            await self.rt.chats.lifecycle.visitor_disconnected(chat_id, self.id)
        else:
            await self.rt.broker.disconnect(visitor_lease(chat_id), self.id)

    # Rendering events ---------------------------------------------------------------------

    async def _after_entry(self, chat_id: str, entry: Entry) -> list[Frame]:
        """What follows from an entry that changes the chat's state, live or caught up with;
        returns frames to go before the entry's own."""
        if chat_id != self.chat_id:
            return []
        before: list[Frame] = []
        if entry.kind is EntryKind.joined:
            await self._stop_waiting()
        elif entry.kind is EntryKind.left:
            # Back in a queue (the counsellor dropped, or a transfer): positions again.
            line = await self._current_line()
            if line is not None and line != self.line:
                await self._stop_waiting()
                self.line = line
            await self._wait_in_queue(None)
        elif entry.kind is EntryKind.ended:
            config = self.rt.lines.get(self.line) if self.line is not None else None
            if entry.reason == "line_closed" and config is not None:
                language = self.language or config.languages[0]
                closed = LineUnavailable(config, language, "closed")
                before.append(await self._closed_frame(closed))
            self.protocol.ended()
            self.last_chat_id = self.chat_id
            await self._leave(disconnected=False)
        return before

    async def _closed_frame(self, closed: LineUnavailable) -> Frame:
        """`line.closed`, with when the roster next opens the line (nothing while someone is
        on duty but nobody is free: they may be back in minutes, not at the next shift)."""
        if closed.reason != "closed" or await self.rt.router.staffed(closed.line.key):
            return closed.frame()
        return closed.frame(await self.rt.openings.next_open_at(closed.line.key))

    async def _current_line(self) -> str | None:
        if self.chat_id is None:
            return None
        record = await self.rt.broker.get_chat(self.chat_id)
        return record.line if record else None


# Frame type -> handler; each says whether to go on reading.
_HANDLERS: dict[type[Any], Callable[[VisitorSocket, Any], Awaitable[bool]]] = {
    VisitorTyping: VisitorSocket._typing_frame,
    Ping: VisitorSocket._ping,
    StartChat: VisitorSocket._start,
    ResumeChat: VisitorSocket._resume,
    VisitorEnd: VisitorSocket._end,
    AcceptContinuity: VisitorSocket._accept_continuity,
    DeleteContinuity: VisitorSocket._delete_continuity,
    VisitorExit: VisitorSocket._exit,
    VisitorFeedback: VisitorSocket._feedback,
    DeclineInterpreter: VisitorSocket._decline_interpreter,
    VisitorDanger: VisitorSocket._danger,
}

# "In danger" presses per client (keyed hash) across connections: a chat counts only its
# first, and a flood of connections is refused after these.
DANGER_LIMIT = Limit(10, 600)

# Whose typing a visitor sees.
_SEES_TYPING = "counsellor"
# Entries after which this connection changes what it follows (`_after_entry`).
_CHANGES_STATE = frozenset({EntryKind.joined, EntryKind.left, EntryKind.ended})


def _visitor_state(state: ChatState) -> str:
    """Visitors see waiting, active or ended; offers and transfers are staff business."""
    if state is ChatState.active:
        return "active"
    if state is ChatState.ended:
        return "ended"
    return "waiting"


__all__ = ["ErrorCode", "router"]
