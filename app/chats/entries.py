"""Transcript entries: what a chat says and what happened in it, and who may see which.

Entries live only in the broker, sealed, and only as long as the chat (and its retention).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EntryKind(StrEnum):
    message = "message"
    joined = "joined"
    left = "left"
    note = "note"
    whisper = "whisper"  # a supervisor to the counsellor
    ended = "ended"
    # Continuity codes (app/continuity): the counsellor offers one (the visitor sees the offer,
    # not the note), the visitor took it (staff only), and a returning visitor's note for the
    # counsellor who wrote it (only them).
    continuity_offer = "continuity_offer"
    continuity_issued = "continuity_issued"
    handover = "handover"
    referral = "referral"  # a card from the referral directory, in the visitor's language
    # An interpreter joined or left (reason: left, removed, declined); `text` unused, the
    # language asked for in `reason` of a join. Visitor and staff see both.
    interpreter_joined = "interpreter_joined"
    interpreter_left = "interpreter_left"
    # Booked chats (app/bookings): times the counsellor offers (in `card`: {"times": [...]}),
    # and a booked chat's counsellor who did not come in time (anyone may answer now).
    booking_offer = "booking_offer"
    booking_missed = "booking_missed"


_KIND_OF: dict[str, EntryKind] = {kind.value: kind for kind in EntryKind}
# And back: `.value` on an enum member is two Python calls, for every message.
_VALUE_OF: dict[EntryKind, str] = {kind: kind.value for kind in EntryKind}


class Audience(StrEnum):
    visitor = "visitor"
    staff = "staff"
    # An interpreter in a chat: what the visitor sees (never notes, whispers, handovers or a
    # continuity offer's note), with staff numbering.
    interpreter = "interpreter"


# Entries the visitor never sees, in any code path (live, resume, replay).
STAFF_ONLY = frozenset(
    {EntryKind.note, EntryKind.whisper, EntryKind.continuity_issued, EntryKind.handover}
)
# Staff-only entries that only their author sees (not colleagues, not observing supervisors).
AUTHOR_ONLY = frozenset({EntryKind.handover})


# Not frozen: a frozen dataclass sets each of these fields through object.__setattr__, which
# was a visible part of every message's cost. Entries are never changed once made.
@dataclass(slots=True)
class Entry:
    kind: EntryKind
    at: float
    sender: str | None = None  # "visitor" or "counsellor" for messages
    name: str | None = None  # the counsellor's alias, never an account id
    text: str | None = None
    reason: str | None = None
    client_id: str | None = None
    staff_id: str | None = None  # author of a staff entry, shown to staff only
    card: dict[str, Any] | None = None  # a referral card
    peer: bool | None = None  # joined: whether the counsellor is a peer (when one was asked)

    @property
    def content(self) -> bool:
        """Whether the entry carries what someone wrote or sent (it crosses processes sealed)."""
        return self.text is not None or self.card is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": _VALUE_OF[self.kind], "at": self.at}
        # Spelled out rather than a loop over the names: this runs for every message.
        if self.sender is not None:
            out["sender"] = self.sender
        if self.name is not None:
            out["name"] = self.name
        if self.text is not None:
            out["text"] = self.text
        if self.reason is not None:
            out["reason"] = self.reason
        if self.client_id is not None:
            out["client_id"] = self.client_id
        if self.staff_id is not None:
            out["staff_id"] = self.staff_id
        if self.card is not None:
            out["card"] = self.card
        if self.peer is not None:
            out["peer"] = self.peer
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Entry:
        # Positional, in the fields' order, and the kind by a dict lookup rather than
        # EntryKind(...): this runs for every message a process delivers.
        return cls(
            _KIND_OF[raw["k"]],
            float(raw["at"]),
            raw.get("sender"),
            raw.get("name"),
            raw.get("text"),
            raw.get("reason"),
            raw.get("client_id"),
            raw.get("staff_id"),
            raw.get("card"),
            raw.get("peer"),
        )


def visible_to(entry: Entry, audience: Audience, viewer: str | None = None) -> bool:
    if entry.kind in AUTHOR_ONLY:
        return audience is Audience.staff and viewer is not None and viewer == entry.staff_id
    return audience is Audience.staff or entry.kind not in STAFF_ONLY
