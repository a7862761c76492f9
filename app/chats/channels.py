"""Event channel names and deadline keys, in one place."""

from __future__ import annotations

from enum import StrEnum


def chat_channel(chat_id: str) -> str:
    return f"chat:{chat_id}"


def staff_channel(staff_id: str) -> str:
    return f"staff:{staff_id}"


def line_channel(line: str) -> str:
    return f"line:{line}"


class Deadline(StrEnum):
    offer = "offer"  # an offer lapses: offer|chat|staff
    visitor_grace = "vgrace"  # a dropped visitor did not return: vgrace|chat
    counsellor_grace = "cgrace"  # a dropped counsellor did not return: cgrace|chat|staff
    forget = "forget"  # an ended chat's record is removed: forget|chat
    shred = "shred"  # an ended chat's retention ran out, its transcript goes: shred|chat
    # A booked chat's counsellor did not come within the wait: anyone may answer: booked|chat
    booking_wait = "booked"
    # Connection leases, pushed forward by the heartbeat of the process holding the client.
    # They fall due only when that process died without running its disconnect handlers.
    visitor_lease = "vlease"  # vlease|chat
    counsellor_lease = "clease"  # clease|staff
    interpreter_offer = "ioffer"  # a request to an interpreter lapses: ioffer|chat|staff
    # A counsellor's pause after an acute chat is over (docs/risk.md): pause|staff
    care_pause = "pause"


VISITOR_LEASE_PREFIX = "visitor:"


def visitor_lease(chat_id: str) -> str:
    """The broker connection lease of a chat's visitor (one per visitor connection)."""
    return VISITOR_LEASE_PREFIX + chat_id


def deadline_key(kind: Deadline, *parts: str) -> str:
    return "|".join((kind.value, *parts))


def parse_deadline(key: str) -> tuple[Deadline, list[str]] | None:
    kind, *parts = key.split("|")
    try:
        return Deadline(kind), parts
    except ValueError:
        return None
