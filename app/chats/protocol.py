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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from app.kit import jsonutil

PROTOCOL_VERSION = 1

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
    not_on_duty = "not_on_duty"
    forbidden = "forbidden"
    # The same answer for a wrong, expired or deleted continuity code: it tells nothing.
    unknown_code = "unknown_code"
    unknown_service = "unknown_service"


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


# Frames -------------------------------------------------------------------------------------

ChatId = Annotated[str, StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
LineKey = Annotated[str, StringConstraints(min_length=1, max_length=32)]
LanguageCode = Annotated[
    str,
    StringConstraints(min_length=2, max_length=12, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$"),
]
# The line's own limit (default 4,000) is checked by the chat service; this bounds parsing.
Text = Annotated[str, StringConstraints(max_length=20_000)]
HELP_TEXT_LIMIT = 500
# One request for help per chat and connection this often (seconds): supervisors are few.
HELP_COOLDOWN_SECONDS = 30.0


class _Frame(BaseModel):
    # Unknown fields are ignored so that newer clients keep working with this server.
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)


class Ping(_Frame):
    type: Literal["ping"]


# A continuity code as typed: words, any case or spacing (app/continuity/codes.py).
ContinuityCode = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ServiceId = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
    ),
]


class StartChat(_Frame):
    type: Literal["start"]
    v: int = PROTOCOL_VERSION
    line: LineKey
    language: LanguageCode
    peer: bool = False
    # A returning visitor's continuity code: their counsellor is asked first.
    code: ContinuityCode | None = None


class AcceptContinuity(_Frame):
    """The visitor takes the continuity code their counsellor offered (shown once)."""

    type: Literal["continuity.accept"]


class DeleteContinuity(_Frame):
    """The visitor deletes their continuity code; allowed at any time, like exit."""

    type: Literal["continuity.delete"]
    code: ContinuityCode


class ResumeChat(_Frame):
    type: Literal["resume"]
    v: int = PROTOCOL_VERSION
    chat_id: ChatId
    token: Annotated[str, StringConstraints(min_length=16, max_length=128)]
    last_seq: int = Field(default=0, ge=0)


class VisitorMessage(_Frame):
    type: Literal["message"]
    text: Text
    client_id: ClientId | None = None


class VisitorTyping(_Frame):
    type: Literal["typing"]
    typing: bool


class VisitorEnd(_Frame):
    type: Literal["end"]


class VisitorExit(_Frame):
    """Quick exit: end the chat and shred its transcript now; allowed at any time."""

    type: Literal["exit"]


class VisitorFeedback(_Frame):
    """The one anonymous question after a chat: did it help? Counted per line, nothing else."""

    type: Literal["feedback"]
    answer: Literal["helped", "partly", "not_helped"]


class SetStatus(_Frame):
    type: Literal["status"]
    status: Literal["available", "away", "break"]


class AcceptOffer(_Frame):
    type: Literal["accept"]
    chat_id: ChatId


class DeclineOffer(_Frame):
    type: Literal["decline"]
    chat_id: ChatId


class StaffMessage(_Frame):
    type: Literal["message"]
    chat_id: ChatId
    text: Text
    client_id: ClientId | None = None


class StaffTyping(_Frame):
    type: Literal["typing"]
    chat_id: ChatId
    typing: bool


class StaffNote(_Frame):
    type: Literal["note"]
    chat_id: ChatId
    text: Text


class SyncChat(_Frame):
    type: Literal["sync"]
    chat_id: ChatId
    last_seq: int = Field(default=0, ge=0)


class TransferChat(_Frame):
    type: Literal["transfer"]
    chat_id: ChatId
    line: LineKey | None = None
    staff_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class StaffEnd(_Frame):
    type: Literal["end"]
    chat_id: ChatId


class BlockVisitor(_Frame):
    type: Literal["block"]
    chat_id: ChatId


class Wrapup(_Frame):
    type: Literal["wrapup"]
    chat_id: ChatId
    topics: Annotated[list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=20)]
    outcome: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ListLive(_Frame):
    type: Literal["live"]


class Observe(_Frame):
    type: Literal["observe"]
    chat_id: ChatId


class Unobserve(_Frame):
    type: Literal["unobserve"]
    chat_id: ChatId


class Whisper(_Frame):
    type: Literal["whisper"]
    chat_id: ChatId
    text: Text


class TakeOver(_Frame):
    type: Literal["takeover"]
    chat_id: ChatId


class OfferContinuity(_Frame):
    """At the end of a chat: offer the visitor a continuity code, with a handover note that
    only a returning visitor's code can unlock."""

    type: Literal["continuity.offer"]
    chat_id: ChatId
    note: Annotated[str, StringConstraints(max_length=4000)] = ""


class SendReferral(_Frame):
    """Send a referral directory entry into the chat, as a card in the visitor's language."""

    type: Literal["referral"]
    chat_id: ChatId
    service_id: ServiceId


class AskSupervisor(_Frame):
    """A counsellor asks the on-duty supervisors of the chat's line to look at it."""

    type: Literal["help"]
    chat_id: ChatId
    # A short word on why; delivered live to supervisors, never stored or audited.
    text: Annotated[str, StringConstraints(max_length=HELP_TEXT_LIMIT)] = ""


class TransferOptions(_Frame):
    """Where this chat could go now: lines with someone on duty, colleagues free to take it."""

    type: Literal["transfer.options"]
    chat_id: ChatId


class ListTeam(_Frame):
    """Supervisors: who is on duty on their lines, with their status and load."""

    type: Literal["team"]


VisitorFrame = (
    Ping
    | StartChat
    | ResumeChat
    | VisitorMessage
    | VisitorTyping
    | VisitorEnd
    | VisitorExit
    | AcceptContinuity
    | DeleteContinuity
    | VisitorFeedback
)
StaffFrame = (
    Ping
    | SetStatus
    | AcceptOffer
    | DeclineOffer
    | StaffMessage
    | StaffTyping
    | StaffNote
    | SyncChat
    | TransferChat
    | StaffEnd
    | BlockVisitor
    | Wrapup
    | ListLive
    | Observe
    | Unobserve
    | Whisper
    | TakeOver
    | OfferContinuity
    | SendReferral
    | AskSupervisor
    | TransferOptions
    | ListTeam
)

VISITOR_FRAMES: dict[str, type[_Frame]] = {
    "ping": Ping,
    "start": StartChat,
    "resume": ResumeChat,
    "message": VisitorMessage,
    "typing": VisitorTyping,
    "end": VisitorEnd,
    "exit": VisitorExit,
    "continuity.accept": AcceptContinuity,
    "continuity.delete": DeleteContinuity,
    "feedback": VisitorFeedback,
}

STAFF_FRAMES: dict[str, type[_Frame]] = {
    "ping": Ping,
    "status": SetStatus,
    "accept": AcceptOffer,
    "decline": DeclineOffer,
    "message": StaffMessage,
    "typing": StaffTyping,
    "note": StaffNote,
    "sync": SyncChat,
    "transfer": TransferChat,
    "end": StaffEnd,
    "block": BlockVisitor,
    "wrapup": Wrapup,
    "help": AskSupervisor,
    "transfer.options": TransferOptions,
    # Supervisors only (app/staff/permissions.py).
    "live": ListLive,
    "observe": Observe,
    "unobserve": Unobserve,
    "whisper": Whisper,
    "takeover": TakeOver,
    "continuity.offer": OfferContinuity,
    "referral": SendReferral,
    "team": ListTeam,
}


def parse_frame(text: str, table: dict[str, type[_Frame]]) -> _Frame | ProtocolError:
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
        frame: _Frame = model.__pydantic_validator__.validate_python(data)
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

    table: dict[str, type[_Frame]]

    def __init__(
        self, *, rate: float, burst: int, tolerance: int, clock: Callable[[], float]
    ) -> None:
        self._clock = clock
        self._bucket = TokenBucket(rate, burst, clock())
        self._tolerance = tolerance
        self._violations = 0
        self._window_start = self._clock()
        self.phase = Phase.waiting_start

    def _admit(self) -> ProtocolError | Close | None:
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
        return ProtocolError(ErrorCode.rate_limited, "too many frames; slow down")

    def receive_bytes(self, data: bytes) -> ProtocolError | Close:
        refused = self._admit()
        if refused is not None:
            return refused
        return ProtocolError(
            ErrorCode.binary_not_supported, "binary frames are not part of this protocol"
        )

    def receive_text(self, text: str) -> _Frame | ProtocolError | Close:
        refused = self._admit()
        if refused is not None:
            return refused
        frame = parse_frame(text, self.table)
        if isinstance(frame, ProtocolError):
            return frame
        return self._check_phase(frame)

    def _check_phase(self, frame: _Frame) -> _Frame | ProtocolError:
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

    def _check_phase(self, frame: _Frame) -> _Frame | ProtocolError:
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

    def _check_phase(self, frame: _Frame) -> _Frame | ProtocolError:
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


def _type_of(frame: _Frame) -> str:
    return str(getattr(frame, "type", ""))


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
