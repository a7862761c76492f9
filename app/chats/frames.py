"""The frames clients send in the Lykta chat protocol, version 1: their fields and limits.

Each is a pydantic model, validated when a frame is parsed (app/chats/protocol.py); a table
per side maps a frame's `type` to its model. See docs/protocol.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

from app.kit.fields import CleanText, Moment

PROTOCOL_VERSION = 1

# Every text field refuses a NUL or a lone surrogate (CleanText) with `invalid_field`.
ChatId = Annotated[
    str,
    StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    CleanText(),
]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64), CleanText()]
LineKey = Annotated[str, StringConstraints(min_length=1, max_length=32), CleanText()]
LanguageCode = Annotated[
    str,
    StringConstraints(min_length=2, max_length=12, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$"),
    CleanText(),
]
# The line's own limit (default 4,000) is checked by the chat service; this bounds parsing.
Text = Annotated[str, StringConstraints(max_length=20_000), CleanText()]
HELP_TEXT_LIMIT = 500
# One request for help per chat and connection this often (seconds): supervisors are few.
HELP_COOLDOWN_SECONDS = 30.0


class ClientFrame(BaseModel):
    # Unknown fields are ignored so that newer clients keep working with this server.
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)


class Ping(ClientFrame):
    type: Literal["ping"]


# A continuity code as typed: words, any case or spacing (app/continuity/codes.py).
ContinuityCode = Annotated[str, StringConstraints(min_length=1, max_length=200), CleanText()]
ServiceId = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
    ),
    CleanText(),
]
ResumeToken = Annotated[str, StringConstraints(min_length=16, max_length=128), CleanText()]
StaffRef = Annotated[str, StringConstraints(min_length=1, max_length=64), CleanText()]


class StartChat(ClientFrame):
    type: Literal["start"]
    v: int = PROTOCOL_VERSION
    line: LineKey
    language: LanguageCode
    peer: bool = False
    # A returning visitor's continuity code: their counsellor is asked first.
    code: ContinuityCode | None = None


class AcceptContinuity(ClientFrame):
    """The visitor takes the continuity code their counsellor offered (shown once)."""

    type: Literal["continuity.accept"]


class DeleteContinuity(ClientFrame):
    """The visitor deletes their continuity code; allowed at any time, like exit."""

    type: Literal["continuity.delete"]
    code: ContinuityCode


class ResumeChat(ClientFrame):
    type: Literal["resume"]
    v: int = PROTOCOL_VERSION
    chat_id: ChatId
    token: ResumeToken
    last_seq: int = Field(default=0, ge=0)


class VisitorMessage(ClientFrame):
    type: Literal["message"]
    text: Text
    client_id: ClientId | None = None


class VisitorTyping(ClientFrame):
    type: Literal["typing"]
    typing: bool


class VisitorEnd(ClientFrame):
    type: Literal["end"]


class VisitorExit(ClientFrame):
    """Quick exit: end the chat and shred its transcript now; allowed at any time."""

    type: Literal["exit"]


class VisitorFeedback(ClientFrame):
    """The one anonymous question after a chat: did it help? Counted per line, nothing else."""

    type: Literal["feedback"]
    answer: Literal["helped", "partly", "not_helped"]


class VisitorDanger(ClientFrame):
    """ "I am in danger right now": one optional tap while waiting or in the chat."""

    type: Literal["danger"]


class SetStatus(ClientFrame):
    type: Literal["status"]
    status: Literal["available", "away", "break"]


class AcceptOffer(ClientFrame):
    type: Literal["accept"]
    chat_id: ChatId


class DeclineOffer(ClientFrame):
    type: Literal["decline"]
    chat_id: ChatId


class StaffMessage(ClientFrame):
    type: Literal["message"]
    chat_id: ChatId
    text: Text
    client_id: ClientId | None = None


class StaffTyping(ClientFrame):
    type: Literal["typing"]
    chat_id: ChatId
    typing: bool


class StaffNote(ClientFrame):
    type: Literal["note"]
    chat_id: ChatId
    text: Text


class SyncChat(ClientFrame):
    type: Literal["sync"]
    chat_id: ChatId
    last_seq: int = Field(default=0, ge=0)


class TransferChat(ClientFrame):
    type: Literal["transfer"]
    chat_id: ChatId
    line: LineKey | None = None
    staff_id: StaffRef | None = None
    note: Annotated[str, StringConstraints(max_length=2000), CleanText()] = ""


class StaffEnd(ClientFrame):
    type: Literal["end"]
    chat_id: ChatId


class BlockVisitor(ClientFrame):
    type: Literal["block"]
    chat_id: ChatId


class Wrapup(ClientFrame):
    type: Literal["wrapup"]
    chat_id: ChatId
    topics: Annotated[
        list[Annotated[str, StringConstraints(max_length=64), CleanText()]], Field(max_length=20)
    ]
    outcome: Annotated[str, StringConstraints(min_length=1, max_length=64), CleanText()]


class ListLive(ClientFrame):
    type: Literal["live"]


class Observe(ClientFrame):
    type: Literal["observe"]
    chat_id: ChatId


class Unobserve(ClientFrame):
    type: Literal["unobserve"]
    chat_id: ChatId


class Whisper(ClientFrame):
    type: Literal["whisper"]
    chat_id: ChatId
    text: Text


class TakeOver(ClientFrame):
    type: Literal["takeover"]
    chat_id: ChatId


class OfferContinuity(ClientFrame):
    """At the end of a chat: offer the visitor a continuity code, with a handover note that
    only a returning visitor's code can unlock."""

    type: Literal["continuity.offer"]
    chat_id: ChatId
    note: Annotated[str, StringConstraints(max_length=4000), CleanText()] = ""


class OfferTimes(ClientFrame):
    """Offer the visitor, who has a continuity code, up to three times to book a chat with
    this counsellor (each inside the counsellor's own shifts on the line, in the future)."""

    type: Literal["booking.offer"]
    # "chat" as in the mailbox contract; "chat_id" as every other frame.
    chat_id: ChatId = Field(validation_alias=AliasChoices("chat_id", "chat"))
    # More than three are refused with their own error (too_many_times), not as malformed.
    times: Annotated[list[Moment], Field(max_length=10)]


class SendReferral(ClientFrame):
    """Send a referral directory entry into the chat, as a card in the visitor's language."""

    type: Literal["referral"]
    chat_id: ChatId
    service_id: ServiceId


class AskSupervisor(ClientFrame):
    """A counsellor asks the on-duty supervisors of the chat's line to look at it."""

    type: Literal["help"]
    chat_id: ChatId
    # A short word on why; delivered live to supervisors, never stored or audited.
    text: Annotated[str, StringConstraints(max_length=HELP_TEXT_LIMIT), CleanText()] = ""


class TransferOptions(ClientFrame):
    """Where this chat could go now: lines with someone on duty, colleagues free to take it."""

    type: Literal["transfer.options"]
    chat_id: ChatId


class TakeNext(ClientFrame):
    """A counsellor with a free place takes the line's next chat they may answer."""

    type: Literal["take"]
    line: LineKey


class ListTeam(ClientFrame):
    """Supervisors: who is on duty on their lines, with their status and load."""

    type: Literal["team"]


class DeclineInterpreter(ClientFrame):
    """The visitor does not want the interpreter in the chat: they leave at once."""

    type: Literal["interpreter.decline"]


class RequestInterpreter(ClientFrame):
    """A counsellor asks for an interpreter in their chat (the visitor's language if none)."""

    type: Literal["interpreter.request"]
    chat_id: ChatId
    # Checked by the service, so a malformed tag gets its own clear answer.
    language: Annotated[str, StringConstraints(max_length=35), CleanText()] | None = None


class RemoveInterpreter(ClientFrame):
    type: Literal["interpreter.remove"]
    chat_id: ChatId


class AcceptInterpreting(ClientFrame):
    """An interpreter accepts a request: they join the chat."""

    type: Literal["interpreter.accept"]
    chat_id: ChatId


class DeclineInterpreting(ClientFrame):
    type: Literal["interpreter.decline"]
    chat_id: ChatId


class LeaveInterpreting(ClientFrame):
    type: Literal["interpreter.leave"]
    chat_id: ChatId


class SetRisk(ClientFrame):
    """The counsellor's risk level on their own active chat (docs/risk.md)."""

    type: Literal["risk"]
    chat_id: ChatId
    level: Literal["none", "concern", "acute"]


class CareReady(ClientFrame):
    """The counsellor ends their pause after an acute chat: offers reach them again."""

    type: Literal["ready"]


class AskDebrief(ClientFrame):
    """The counsellor asks a supervisor for a debrief about one of their own chats."""

    type: Literal["debrief"]
    chat_id: ChatId


class ShiftSoFar(ClientFrame):
    """The counsellor's shift so far: chats, acute ones, debriefs asked."""

    type: Literal["shift"]


class ListDebriefs(ClientFrame):
    """Supervisors: the debriefs asked on their lines."""

    type: Literal["debriefs"]


class OpenDebrief(ClientFrame):
    """Supervisors: a debrief's transcript, while its line's retention still keeps it."""

    type: Literal["debrief.open"]
    debrief_id: ServiceId  # a UUID, as a service id is


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
    | DeclineInterpreter
    | VisitorDanger
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
    | OfferTimes
    | AskSupervisor
    | TransferOptions
    | ListTeam
    | RequestInterpreter
    | RemoveInterpreter
    | AcceptInterpreting
    | DeclineInterpreting
    | LeaveInterpreting
    | SetRisk
    | CareReady
    | AskDebrief
    | ShiftSoFar
    | ListDebriefs
    | OpenDebrief
    | TakeNext
)

VISITOR_FRAMES: dict[str, type[ClientFrame]] = {
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
    "interpreter.decline": DeclineInterpreter,
    "danger": VisitorDanger,
}

STAFF_FRAMES: dict[str, type[ClientFrame]] = {
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
    "take": TakeNext,
    # Supervisors only (app/staff/permissions.py).
    "live": ListLive,
    "observe": Observe,
    "unobserve": Unobserve,
    "whisper": Whisper,
    "takeover": TakeOver,
    "continuity.offer": OfferContinuity,
    "booking.offer": OfferTimes,
    "referral": SendReferral,
    "team": ListTeam,
    "interpreter.request": RequestInterpreter,
    "interpreter.remove": RemoveInterpreter,
    "interpreter.accept": AcceptInterpreting,
    "interpreter.decline": DeclineInterpreting,
    "interpreter.leave": LeaveInterpreting,
    "risk": SetRisk,
    "ready": CareReady,
    "debrief": AskDebrief,
    "shift": ShiftSoFar,
    "debriefs": ListDebriefs,
    "debrief.open": OpenDebrief,
}
