"""The ephemeral records kept in the broker, with a flat string encoding for Redis hashes."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from app.kit import jsonutil


class ChatState(StrEnum):
    queued = "queued"
    offered = "offered"
    active = "active"
    transferring = "transferring"
    ended = "ended"


WAITING_STATES = frozenset({ChatState.queued, ChatState.transferring})
LIVE_STATES = frozenset(
    {ChatState.queued, ChatState.offered, ChatState.active, ChatState.transferring}
)


class StaffStatus(StrEnum):
    available = "available"
    away = "away"
    on_break = "break"


# Queue priorities (DESIGN.md routing rule 1): higher is served first.
PRIORITY_NORMAL = 0
PRIORITY_CONTINUITY = 1
PRIORITY_TRANSFER = 2
PRIORITY_RETURNED = 3
# The visitor pressed "I am in danger right now": ahead of every other waiting chat.
PRIORITY_IN_DANGER = 4
_MAX_PRIORITY = 9


_PRIORITY_STEP = 1e10


def queue_score(priority: int, queued_at: float) -> float:
    """Sorted-set score: priority first, then time waited (earlier is smaller)."""
    return (_MAX_PRIORITY - priority) * _PRIORITY_STEP + queued_at


def queued_at_of(score: float) -> float:
    """The enqueue time folded into a queue score."""
    return score % _PRIORITY_STEP


def queue_band(priority: int) -> tuple[float, float]:
    """The scores of a priority's chats: from the first (inclusive) to the second (exclusive)."""
    base = queue_score(priority, 0.0)
    return base, base + _PRIORITY_STEP


# At the scores of a queue (about 1e11), a double tells apart only some 15 microseconds: a chat
# queued that close behind another at its priority is put this much after it instead (seconds).
QUEUE_TIE_STEP = 0.0001


@dataclass(slots=True)
class ChatRecord:
    """One chat, as long as it lives. No network identity, no content."""

    id: str
    line: str
    language: str
    state: ChatState
    resume_digest: str
    created_at: float
    queued_at: float
    priority: int = PRIORITY_NORMAL
    offered_to: str | None = None
    offer_expires_at: float | None = None
    counsellor_id: str | None = None
    counsellor_alias: str | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    ended_by: str | None = None
    peer_requested: bool = False
    # A named colleague (transfer) the chat is offered to alone until `target_until`.
    target_counsellor: str | None = None
    target_until: float | None = None
    # Waiting after a transfer: the chat goes back to `transferring`, not `queued`.
    transferred: bool = False
    # Counsellors who declined or let the offer lapse; skipped while others are free.
    passed: list[str] = field(default_factory=list)
    visitor_connected: bool = True
    visitor_grace_until: float | None = None
    counsellor_grace_until: float | None = None
    # The counsellor who answered last, who owes a wrap-up once the chat ends.
    wrapup_by: str | None = None
    last_seq: int = 0
    # The visitor's keyed address hash (app/abuse), so a counsellor can block them; never
    # sent to staff, gone with the record.
    visitor_tag: str | None = None
    # When an ended chat's transcript is shredded (its line's retention); None: already gone.
    shred_at: float | None = None
    # A returning visitor's counsellor (their continuity code named them): their handover
    # note is in the transcript for them alone.
    continuity_for: str | None = None
    # The end-of-chat continuity code: "offered" by the counsellor, "issued" to the visitor.
    continuity: str | None = None
    # When its counsellor last asked a supervisor for help (shown in supervisors' live list).
    help_requested_at: float | None = None
    # An interpreter (docs/staff.md, "Interpreters"): "asked:<staff id>" while one is offered
    # the chat, "in:<staff id>" while one is in it, absent otherwise; the language asked for,
    # when the pending request lapses, and the interpreter's alias once they joined. An
    # interpreter asked or in the chat counts it against their places (`load:<staff>`).
    interpreter: str | None = None
    interpreter_language: str | None = None
    interpreter_expires_at: float | None = None
    interpreter_alias: str | None = None
    # Interpreters who declined or let this chat's request lapse (tried once per request).
    interpreter_passed: list[str] = field(default_factory=list)

    # The keyed digest of the chat's continuity code (started with it, or taken in the chat),
    # so the counsellor can offer times to book; the code itself is never here.
    code_digest: str | None = None
    # A booked chat: it waits for `target_counsellor` until `target_until` even while they
    # are not there yet (app/bookings).
    booked: bool = False

    @property
    def interpreter_id(self) -> str | None:
        """The staff id of the interpreter in the chat, if one is."""
        if self.interpreter is not None and self.interpreter.startswith("in:"):
            return self.interpreter[3:]
        return None

    @property
    def interpreter_asked(self) -> str | None:
        """The staff id of the interpreter the chat is offered to, if one is."""
        if self.interpreter is not None and self.interpreter.startswith("asked:"):
            return self.interpreter[6:]
        return None

    # The counsellor's risk level (`none`, `concern`, `acute`; None: not set, as none).
    risk: str | None = None
    # The visitor pressed "I am in danger right now" (once per chat).
    in_danger: bool = False

    def to_fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool):
                out[f.name] = "1" if value else "0"
            elif isinstance(value, list):
                out[f.name] = jsonutil.dumps(value)
            else:
                out[f.name] = str(value)
        return out

    @classmethod
    def from_fields(cls, raw: dict[str, str]) -> ChatRecord:
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in raw:
                continue
            kwargs[f.name] = _decode(f.name, raw[f.name])
        return cls(**kwargs)

    def copy(self, **changes: Any) -> ChatRecord:
        return replace(self, **changes)

    @property
    def waiting(self) -> bool:
        return self.state in WAITING_STATES

    @property
    def waiting_state(self) -> ChatState:
        """The state the chat returns to when an offer is declined or lapses."""
        return ChatState.transferring if self.transferred else ChatState.queued


_FLOATS = {
    "created_at",
    "queued_at",
    "offer_expires_at",
    "answered_at",
    "ended_at",
    "visitor_grace_until",
    "counsellor_grace_until",
    "target_until",
    "shred_at",
    "help_requested_at",
    "interpreter_expires_at",
}
_INTS = {"priority", "last_seq"}
_BOOLS = {"peer_requested", "visitor_connected", "transferred", "in_danger", "booked"}


def _decode(name: str, value: str) -> Any:
    if name in _FLOATS:
        return float(value)
    if name in _INTS:
        return int(value)
    if name in _BOOLS:
        return value == "1"
    if name == "passed" or name == "interpreter_passed":
        return list(jsonutil.loads(value))
    if name == "state":
        return ChatState(value)
    return value


def encode_change(name: str, value: Any) -> str | None:
    """How one changed field is written to a flat store; None deletes the field."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return jsonutil.dumps(value)
    return str(value)


@dataclass(slots=True)
class Presence:
    """A signed-in counsellor as routing sees them. Rebuilt from SQL when they connect."""

    staff_id: str
    alias: str
    status: StaffStatus
    capacity: int
    qualification: str | None
    languages: list[str]
    peer: bool
    supervisor: bool
    # Lines the counsellor works on, and until when they are on duty on each (epoch, 0 = not).
    duty: dict[str, float]
    last_offer_at: float = 0.0
    missed_offers: int = 0
    # After an acute chat: no offers until then (epoch seconds), unless they press "Ready".
    paused_until: float = 0.0

    def to_json(self) -> bytes:
        return jsonutil.dumpb(
            {
                "staff_id": self.staff_id,
                "alias": self.alias,
                "status": self.status.value,
                "capacity": self.capacity,
                "qualification": self.qualification,
                "languages": self.languages,
                "peer": self.peer,
                "supervisor": self.supervisor,
                "duty": self.duty,
                "last_offer_at": self.last_offer_at,
                "missed_offers": self.missed_offers,
                "paused_until": self.paused_until,
            }
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Presence:
        raw = jsonutil.loads(data)
        return cls(
            staff_id=raw["staff_id"],
            alias=raw["alias"],
            status=StaffStatus(raw["status"]),
            capacity=int(raw["capacity"]),
            qualification=raw["qualification"],
            languages=list(raw["languages"]),
            peer=bool(raw["peer"]),
            supervisor=bool(raw["supervisor"]),
            duty={k: float(v) for k, v in raw["duty"].items()},
            last_offer_at=float(raw["last_offer_at"]),
            missed_offers=int(raw["missed_offers"]),
            paused_until=float(raw.get("paused_until", 0.0)),
        )
