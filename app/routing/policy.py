"""Routing rules of DESIGN.md as pure functions of the current state and the time."""

from __future__ import annotations

from dataclasses import dataclass

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


def can_take(candidate: Candidate, line: LineConfig, now: float) -> bool:
    """Rule 2 without preferences: on duty, connected, available, qualified, below capacity."""
    presence = candidate.presence
    return (
        candidate.connected
        and presence.status is StaffStatus.available
        and on_duty(presence, line.key, now)
        and qualified(presence, line)
        and candidate.load < presence.capacity
    )


def choose(
    chat: ChatRecord, line: LineConfig, candidates: list[Candidate], now: float
) -> Candidate | None:
    """The counsellor to offer `chat` to now, or None to let it wait.

    Preferences (the visitor's language, a peer, a named colleague) narrow the choice and are
    relaxed after the line's wait; among the rest, fewest active chats, then longest since
    their last offer (rule 3).
    """
    pool = [c for c in candidates if can_take(c, line, now)]
    if not pool:
        return None
    waited = now - chat.queued_at
    relaxed = waited >= line.language_relax_seconds
    # A visitor who asked for a peer waits for one only this long, then takes anyone.
    peer_relaxed = waited >= line.peer_relax_seconds

    if chat.target_counsellor is not None and now < (chat.target_until or 0.0):
        targeted = [c for c in pool if c.staff_id == chat.target_counsellor]
        return targeted[0] if targeted else None

    fresh = [c for c in pool if c.staff_id not in chat.passed]
    if not fresh:
        # Everyone free has passed on this chat; ask again, but not faster than one offer
        # per offer timeout, so a declining counsellor is not flooded.
        since_offer = now - (chat.offer_expires_at or 0.0)
        if since_offer < line.offer_timeout_seconds:
            return None
        fresh = pool
    if not relaxed:
        fresh = [c for c in fresh if chat.language in c.presence.languages]
    if chat.peer_requested and not peer_relaxed:
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


def estimate_wait(position: int, capacity: int, mean_duration: float) -> int | None:
    """Rule 5: ((position − 1) / on-duty capacity + 1) × recent mean chat duration, in seconds.

    None when nobody is available to take chats (the estimate would be meaningless).
    """
    if capacity <= 0 or position <= 0:
        return None
    return round(((position - 1) / capacity + 1) * mean_duration)


def mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default
