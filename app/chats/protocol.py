"""The Lykta chat protocol, version 1, as pure code: no sockets, no broker, no clock of its own.

Frames are JSON text objects with a `type`. Clients send the frames defined here; parsing
returns either a typed frame or a `ProtocolError` with a stable code. The connection state
machines decide which frames are allowed when, and when a connection must be closed.
See docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from app.chats.frames import (
    HELP_COOLDOWN_SECONDS,
    PROTOCOL_VERSION,
    STAFF_FRAMES,
    VISITOR_FRAMES,
    AskSupervisor,
    ClientFrame,
    DeleteContinuity,
    Ping,
    ResumeChat,
    StartChat,
    VisitorExit,
    VisitorFeedback,
    VisitorMessage,
)
from app.kit import jsonutil

# WebSocket close codes (RFC 6455 and the registry).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013
# Application codes (4000-4999).
CLOSE_UNAUTHORISED = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_SLOW_CONSUMER = 4008


class ErrorCode(StrEnum):
    """Stable error codes; clients may switch on them. Never renumber or rename."""

    malformed_json = "malformed_json"
    invalid_frame = "invalid_frame"
    unknown_type = "unknown_type"
    invalid_field = "invalid_field"
    unsupported_version = "unsupported_version"
    binary_not_supported = "binary_not_supported"
    rate_limited = "rate_limited"
    not_allowed_now = "not_allowed_now"
    message_too_long = "message_too_long"
    empty_message = "empty_message"
    unknown_line = "unknown_line"
    unknown_language = "unknown_language"
    line_closed = "line_closed"
    queue_full = "queue_full"
    invalid_resume = "invalid_resume"
    chat_ended = "chat_ended"
    not_in_chat = "not_in_chat"
    offer_not_found = "offer_not_found"
    offer_expired = "offer_expired"
    over_capacity = "over_capacity"
    invalid_state = "invalid_state"
    invalid_transfer = "invalid_transfer"
    staff_unavailable = "staff_unavailable"
    invalid_wrapup = "invalid_wrapup"
    # The database could not store it (a wrap-up): nothing changed; send it again.
    not_saved = "not_saved"
    not_on_duty = "not_on_duty"
    forbidden = "forbidden"
    # The same answer for a wrong, expired or deleted continuity code: it tells nothing.
    unknown_code = "unknown_code"
    unknown_service = "unknown_service"
    # Nobody on duty interprets the language asked for (the answer names it).
    no_interpreter = "no_interpreter"
    # Taking the next chat: the line only offers its chats; no waiting chat one may answer.
    not_taken_here = "not_taken_here"
    nothing_to_take = "nothing_to_take"
    # Booked chats (app/bookings), the same codes as their HTTP refusals.
    no_code = "no_code"
    no_times = "no_times"
    too_many_times = "too_many_times"
    time_past = "time_past"
    time_too_far = "time_too_far"
    outside_shift = "outside_shift"
    time_taken = "time_taken"
    time_not_offered = "time_not_offered"


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """An error to report in an `error` frame; nothing else changes."""

    code: ErrorCode
    message: str
    ref: str | None = None

    def frame(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "error", "code": self.code.value, "message": self.message}
        if self.ref is not None:
            out["ref"] = self.ref
        return out


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with this WebSocket close code."""

    code: int
    reason: str


# Frames (app/chats/frames.py) ----------------------------------------------------------------


def parse_frame(text: str, table: dict[str, type[ClientFrame]]) -> ClientFrame | ProtocolError:
    """Decode and validate one text frame against a table of frame types."""
    try:
        data = jsonutil.loads(text)
    except jsonutil.JSONDecodeError:
        return ProtocolError(ErrorCode.malformed_json, "the frame is not valid JSON")
    if not isinstance(data, dict):
        return ProtocolError(ErrorCode.invalid_frame, "a frame must be a JSON object")
    frame_type = data.get("type")
    if not isinstance(frame_type, str):
        return ProtocolError(ErrorCode.invalid_frame, "a frame needs a string 'type'")
    model = table.get(frame_type)
    if model is None:
        return ProtocolError(
            ErrorCode.unknown_type, f"unknown frame type {frame_type[:40]!r}", ref=frame_type[:40]
        )
    version = data.get("v", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        return ProtocolError(
            ErrorCode.unsupported_version,
            f"this server speaks protocol version {PROTOCOL_VERSION}",
            ref=frame_type,
        )
    try:
        # The model's validator itself, as model_validate calls it (one call fewer per frame).
        frame: ClientFrame = model.__pydantic_validator__.validate_python(data)
    except ValidationError as exc:
        return ProtocolError(ErrorCode.invalid_field, _describe(exc), ref=frame_type)
    return frame


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "frame"
    if first["type"] == "missing":
        return f"missing field '{where}'"
    return f"invalid field '{where}': {first['msg']}"


# Flood control ------------------------------------------------------------------------------


class TokenBucket:
    """`burst` frames at once, refilled at `rate` per second; time comes from the caller."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float) -> bool:
        # Comparisons rather than max() and min(): this runs for every frame.
        tokens = self._tokens
        if now > self._last:
            tokens += (now - self._last) * self.rate
            if tokens > self.burst:
                tokens = float(self.burst)
        self._last = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False


class Cooldown:
    """At most one action per key every `seconds`; time comes from the caller."""

    __slots__ = ("_last", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: dict[str, float] = {}

    def take(self, key: str, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.seconds:
            return False
        # Forget old keys so a long shift does not grow this without bound.
        self._last = {k: t for k, t in self._last.items() if now - t < self.seconds}
        self._last[key] = now
        return True

    def retry_after(self, key: str, now: float) -> float:
        last = self._last.get(key)
        return 0.0 if last is None else max(0.0, self.seconds - (now - last))


# Connection state machines ------------------------------------------------------------------


class Phase(StrEnum):
    waiting_start = "waiting_start"
    in_chat = "in_chat"
    closed = "closed"


VIOLATION_WINDOW_SECONDS = 60.0


class _Connection:
    """What every connection shares: frame parsing, flood control, closing."""

    table: dict[str, type[ClientFrame]]

    def __init__(
        self, *, rate: float, burst: int, tolerance: int, clock: Callable[[], float]
    ) -> None:
        self._clock = clock
        self._bucket = TokenBucket(rate, burst, clock())
        self._tolerance = tolerance
        self._violations = 0
        self._window_start = self._clock()
        self.phase = Phase.waiting_start

    def _admit(self, text: str | None = None) -> ProtocolError | Close | None:
        """None when the frame may be handled; `text` names it in a refusal's `ref`."""
        now = self._clock()
        if self._bucket.take(now):
            return None
        # Violations are counted per minute: a sustained flood closes the connection, a burst
        # now and then in a long chat does not.
        if now - self._window_start > VIOLATION_WINDOW_SECONDS:
            self._window_start = now
            self._violations = 0
        self._violations += 1
        if self._violations > self._tolerance:
            self.phase = Phase.closed
            return Close(CLOSE_POLICY_VIOLATION, "too many frames")
        return ProtocolError(
            ErrorCode.rate_limited,
            "too many frames; slow down",
            ref=None if text is None else _peek_type(text),
        )

    def receive_bytes(self, data: bytes) -> ProtocolError | Close:
        refused = self._admit()
        if refused is not None:
            return refused
        return ProtocolError(
            ErrorCode.binary_not_supported, "binary frames are not part of this protocol"
        )

    def receive_text(self, text: str) -> ClientFrame | ProtocolError | Close:
        refused = self._admit(text)
        if refused is not None:
            return refused
        frame = parse_frame(text, self.table)
        if isinstance(frame, ProtocolError):
            return frame
        return self._check_phase(frame)

    def _check_phase(self, frame: ClientFrame) -> ClientFrame | ProtocolError:
        return frame


class VisitorConnection(_Connection):
    """A visitor's connection: `start` or `resume` first, then chat frames for that one chat."""

    table = VISITOR_FRAMES

    def __init__(
        self, *, rate: float, burst: int, tolerance: int, clock: Callable[[], float]
    ) -> None:
        super().__init__(rate=rate, burst=burst, tolerance=tolerance, clock=clock)
        self.chat_id: str | None = None
        # One answer to the feedback question, after a chat ended on this connection.
        self.feedback_due = False

    def _check_phase(self, frame: ClientFrame) -> ClientFrame | ProtocolError:
        if type(frame) is VisitorMessage and self.phase is Phase.in_chat:
            return frame  # the common case, first
        if isinstance(frame, Ping | VisitorExit | DeleteContinuity):
            return frame
        if isinstance(frame, VisitorFeedback):
            if not self.feedback_due:
                return ProtocolError(
                    ErrorCode.not_allowed_now,
                    "feedback is for a chat that ended on this connection, once",
                    ref="feedback",
                )
            self.feedback_due = False
            return frame
        opening = isinstance(frame, StartChat | ResumeChat)
        if self.phase is Phase.waiting_start and not opening:
            return ProtocolError(
                ErrorCode.not_allowed_now, "start or resume a chat first", ref=_type_of(frame)
            )
        if self.phase is Phase.in_chat and opening:
            return ProtocolError(
                ErrorCode.not_allowed_now,
                "this connection already has a chat",
                ref=_type_of(frame),
            )
        if self.phase is Phase.closed:
            return ProtocolError(ErrorCode.chat_ended, "the chat has ended", ref=_type_of(frame))
        return frame

    def entered(self, chat_id: str) -> None:
        self.chat_id = chat_id
        self.phase = Phase.in_chat
        self.feedback_due = False

    def ended(self) -> None:
        """The chat is over; the same connection may start a new one (or give feedback)."""
        self.chat_id = None
        self.phase = Phase.waiting_start
        self.feedback_due = True


class StaffConnection(_Connection):
    """A signed-in staff member's connection: every frame names its chat."""

    table = STAFF_FRAMES

    def __init__(
        self, *, rate: float, burst: int, tolerance: int, clock: Callable[[], float]
    ) -> None:
        super().__init__(rate=rate, burst=burst, tolerance=tolerance, clock=clock)
        self.phase = Phase.in_chat
        self._help = Cooldown(HELP_COOLDOWN_SECONDS)

    def _check_phase(self, frame: ClientFrame) -> ClientFrame | ProtocolError:
        if isinstance(frame, AskSupervisor):
            now = self._clock()
            if not self._help.take(frame.chat_id, now):
                wait = self._help.retry_after(frame.chat_id, now)
                return ProtocolError(
                    ErrorCode.rate_limited,
                    f"you asked for help with this chat a moment ago; again in {wait:.0f} s",
                    ref="help",
                )
        return frame


def _type_of(frame: ClientFrame) -> str:
    return str(getattr(frame, "type", ""))


def _peek_type(text: str) -> str | None:
    """The type a refused frame says it has (for the error's `ref`), nothing validated."""
    try:
        data = jsonutil.loads(text)
    except jsonutil.JSONDecodeError:
        return None
    kind = data.get("type") if isinstance(data, dict) else None
    return kind[:40] if isinstance(kind, str) else None


# Checks shared by both sides ----------------------------------------------------------------


def check_text(text: str, limit: int) -> ProtocolError | None:
    """A message must have content and fit the line's limit (counted in characters)."""
    if not text.strip():
        return ProtocolError(ErrorCode.empty_message, "the message is empty", ref="message")
    if len(text) > limit:
        return ProtocolError(
            ErrorCode.message_too_long,
            f"the message has {len(text)} characters; the limit is {limit}",
            ref="message",
        )
    return None
