"""Routing rules of DESIGN.md as pure functions of the current state and the time."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from app.broker.records import ChatRecord, Presence, StaffStatus
from app.lines.service import LineConfig
from app.models.enums import Qualification


@dataclass(frozen=True, slots=True)
class Candidate:
    """A counsellor as routing sees them at one moment."""

    presence: Presence
    connected: bool
    load: int

    @property
    def staff_id(self) -> str:
        return self.presence.staff_id


def on_duty(presence: Presence, line: str, now: float) -> bool:
    return presence.duty.get(line, 0.0) > now


def qualified(presence: Presence, line: LineConfig) -> bool:
    if presence.qualification is None:
        return False
    return Qualification(presence.qualification).satisfies(line.required_qualification)


def interprets(presence: Presence) -> bool:
    """An interpreter: joins others' chats when asked, answers none (never opens a line)."""
    return presence.qualification == Qualification.interpreter.value


def interpreters(
    candidates: list[Candidate], line: str, language: str, now: float, passed: Collection[str] = ()
) -> list[Candidate]:
    """Interpreters for `language` who could be asked now (on duty on the line, connected,
    available), those asked least recently first."""
    found = [
        c
        for c in candidates
        if interprets(c.presence)
        and c.connected
        and c.presence.status is StaffStatus.available
        and on_duty(c.presence, line, now)
        and language in c.presence.languages
        and c.presence.staff_id not in passed
    ]
    return sorted(found, key=lambda c: (c.presence.last_offer_at, c.presence.staff_id))


def interpreter_hint(
    candidates: list[Candidate], line: LineConfig, language: str, now: float
) -> bool:
    """Nobody answering the line speaks `language`, but an interpreter for it is on duty."""
    if any(language in c.presence.languages for c in candidates if works(c, line, now)):
        return False
    return bool(interpreters(candidates, line.key, language, now))


def works(candidate: Candidate, line: LineConfig, now: float) -> bool:
    """Answering on the line now: on duty, connected, available and qualified, full or not."""
    presence = candidate.presence
    return (
        candidate.connected
        and presence.status is StaffStatus.available
        and on_duty(presence, line.key, now)
        and qualified(presence, line)
    )


def can_take(candidate: Candidate, line: LineConfig, now: float) -> bool:
    """Rule 2 without preferences: on duty, connected, available, qualified, below capacity."""
    return (
        works(candidate, line, now)
        and candidate.load < candidate.presence.capacity
        # Pausing after an acute chat (docs/risk.md).
        and candidate.presence.paused_until <= now
    )


@dataclass(frozen=True, slots=True)
class Staffing:
    """Who answers a line at one moment, as far as visitors may be told (no names)."""

    # A connected, available counsellor is on duty: a visitor may start a chat.
    open: bool
    # Places (chats at once) of those answering on the line, and how many of them are free.
    capacity: int
    free: int
    # A peer supporter answers on the line now (busy or not): the widget offers the choice.
    peer_available: bool
    candidates: list[Candidate]


def staffing(candidates: list[Candidate], line: LineConfig, now: float) -> Staffing:
    # Open as the roster and the status buttons have it (qualification is the roster's check).
    is_open = (
        sum(
            c.presence.capacity
            for c in candidates
            if c.connected
            and c.presence.status is StaffStatus.available
            and on_duty(c.presence, line.key, now)
            and not interprets(c.presence)
        )
        > 0
    )
    working = [c for c in candidates if works(c, line, now)]
    return Staffing(
        open=is_open,
        capacity=sum(c.presence.capacity for c in working),
        free=sum(max(0, c.presence.capacity - c.load) for c in working),
        peer_available=any(c.presence.peer for c in working),
        candidates=candidates,
    )


class HoldReason(StrEnum):
    """What a waiting chat is kept for, instead of going to whoever is free."""

    # A named colleague (a transfer) or a returning visitor's counsellor.
    counsellor = "counsellor"
    language = "language"
    peer = "peer"


@dataclass(frozen=True, slots=True)
class Hold:
    reason: HoldReason
    # When the wish relaxes and anyone free may answer (epoch seconds).
    until: float
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Wishes:
    """The preferences routing honours for a chat now: each only until it relaxes, and only
    while someone answering on the line can meet it (nobody waits for a wish nobody on duty
    can meet)."""

    counsellor: str | None
    language: bool
    peer: bool


def wishes(chat: ChatRecord, line: LineConfig, candidates: list[Candidate], now: float) -> Wishes:
    working = [c for c in candidates if works(c, line, now)]
    target = chat.target_counsellor
    # A booked chat waits for its counsellor even before they are here (app/bookings).
    if target is not None and not (
        now < (chat.target_until or 0.0)
        and (chat.booked or any(c.staff_id == target for c in working))
    ):
        target = None
    speakers = [c for c in working if chat.language in c.presence.languages]
    language = now < chat.queued_at + line.language_relax_seconds and bool(speakers)
    peer = (
        chat.peer_requested
        and now < chat.queued_at + line.peer_relax_seconds
        and any(c.presence.peer for c in (speakers if language else working))
    )
    return Wishes(target, language, peer)


def choose(
    chat: ChatRecord, line: LineConfig, candidates: list[Candidate], now: float
) -> Candidate | None:
    """The counsellor to offer `chat` to now, or None to let it wait.

    Preferences (the visitor's language, a peer, a named colleague) narrow the choice while
    someone answering can meet them, and are relaxed after the line's wait; among the rest,
    fewest active chats, then longest since their last offer (rule 3).
    """
    pool = [c for c in candidates if can_take(c, line, now)]
    if not pool:
        return None
    wish = wishes(chat, line, candidates, now)
    if wish.counsellor is not None:
        targeted = [c for c in pool if c.staff_id == wish.counsellor]
        return targeted[0] if targeted else None

    fresh = [c for c in pool if c.staff_id not in chat.passed]
    if not fresh:
        # Everyone free has passed on this chat; ask again, but not faster than one offer
        # per offer timeout, so a declining counsellor is not flooded.
        since_offer = now - (chat.offer_expires_at or 0.0)
        if since_offer < line.offer_timeout_seconds:
            return None
        fresh = pool
    if wish.language:
        fresh = [c for c in fresh if chat.language in c.presence.languages]
    if wish.peer:
        fresh = [c for c in fresh if c.presence.peer]
    if not fresh:
        return None

    def rank(c: Candidate) -> tuple[bool, bool, int, float]:
        return (
            chat.language not in c.presence.languages,
            chat.peer_requested and not c.presence.peer,
            c.load,
            c.presence.last_offer_at,
        )

    return min(fresh, key=rank)


def takes(
    me: Candidate, chat: ChatRecord, line: LineConfig, candidates: list[Candidate], now: float
) -> bool:
    """Whether counsellor `me` may take `chat` from the queue now: the chat's wishes (a named
    colleague, the visitor's language, a peer) hold for taking as they do for offers."""
    wish = wishes(chat, line, candidates, now)
    if wish.counsellor is not None:
        return wish.counsellor == me.staff_id
    if wish.language and chat.language not in me.presence.languages:
        return False
    return not (wish.peer and not me.presence.peer)


def hold(
    chat: ChatRecord, line: LineConfig, candidates: list[Candidate], now: float
) -> Hold | None:
    """The wish that keeps `chat` from whoever is free now, or None (nobody is free, or
    nothing but the queue stands in its way)."""
    pool = [c for c in candidates if can_take(c, line, now)]
    if not pool:
        return None
    wish = wishes(chat, line, candidates, now)
    if wish.counsellor is not None:
        if any(c.staff_id == wish.counsellor for c in pool):
            return None
        return Hold(HoldReason.counsellor, chat.target_until or now)
    if wish.language:
        pool = [c for c in pool if chat.language in c.presence.languages]
        if not pool:
            until = chat.queued_at + line.language_relax_seconds
            return Hold(HoldReason.language, until, chat.language)
    if wish.peer and not any(c.presence.peer for c in pool):
        return Hold(HoldReason.peer, chat.queued_at + line.peer_relax_seconds)
    return None


# Fewer finished chats than this on a line, and a visitor is told no number: an estimate
# from one or two chats would be a guess dressed up as a figure.
MIN_DURATIONS = 5


@dataclass(frozen=True, slots=True)
class Wait:
    """What a waiting visitor is told about their wait."""

    # Someone who can answer them has a free place: they will be answered soon.
    soon: bool = False
    # Otherwise the estimate in seconds, or None when there is no honest number.
    seconds: int | None = None


NO_ESTIMATE = Wait()
SOON = Wait(soon=True)


def typical_length(durations: list[float]) -> float | None:
    """The mean length of the line's recent answered chats, or None with too few of them."""
    if len(durations) < MIN_DURATIONS:
        return None
    return sum(durations) / len(durations)


def estimate_wait(position: int, capacity: int, free: int, typical: float | None) -> Wait:
    """Rule 5, from what is known now: `position` (1 = next among those who wait for anyone),
    the places of those answering (`capacity`) and how many are `free`, and the `typical`
    length of a recent chat (`typical_length`; None: too little history for a number).

    Within the free places: soon. Beyond them, each place ahead frees up when one of the
    `capacity` chats under way ends, on average every typical length / capacity.
    """
    if position <= 0 or capacity <= 0:
        return NO_ESTIMATE
    if position <= free:
        return SOON
    if typical is None:
        return NO_ESTIMATE
    return Wait(seconds=round((position - free) * typical / capacity))
