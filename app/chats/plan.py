"""The message path without I/O: what an append is, and what an entry becomes for each reader.

A message read from a client becomes a `Planned` append (validated, its entry, the key that
makes a resend a duplicate); `Transcript.add` seals and stores it. Every stored entry goes out
as an event (`entry_event`); each connection turns it into frames for its audience
(`entry_frame`), strictly in sequence per chat (`Delivery`). Nothing here waits for anything:
when a step needs what is not at hand (a chat's key, entries missing before this one), it
says so, and the caller fetches it and asks again.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Final, Literal

from app.broker.base import AppendStatus
from app.broker.hub import LOCAL_ENTRY, Event
from app.chats.crypto import ChatKey, TamperedError
from app.chats.entries import Audience, Entry, EntryKind, visible_to
from app.chats.protocol import ErrorCode, ProtocolError, check_text
from app.kit import jsonutil

Frame = dict[str, Any]

# A line's message limit when the line is gone (a chat outliving a deleted line).
DEFAULT_MESSAGE_LIMIT = 4000


@dataclass(slots=True)
class Planned:
    """One entry to append: the entry, the key that makes a resend of it a duplicate, and the
    connection that wrote it (which is not shown its own entry back)."""

    entry: Entry
    dedupe: str | None = None
    origin: str | None = None


# What came of appending an entry: its number, and the broker's answer.
Added = tuple[int, AppendStatus]


def typing_frames(event: Event, seen: bool, sender: str) -> list[Frame]:
    """A typing event for a connection that follows its chat (`seen`) and sees `sender`'s
    typing (the other side's): never its own side's."""
    if not seen or event.get("sender") != sender:
        return []
    chat_id, typing = event.get("chat_id"), bool(event["typing"])
    return [{"type": "typing", "chat_id": chat_id, "sender": sender, "typing": typing}]


def visitor_message(
    limit: int, text: str, client_id: str | None, now: float, origin: str
) -> Planned | ProtocolError:
    """A visitor's message, or why it is refused."""
    problem = check_text(text, limit)
    if problem is not None:
        return problem
    entry = Entry(EntryKind.message, now, sender="visitor", text=text, client_id=client_id)
    return Planned(entry, f"v:{client_id}" if client_id else None, origin)


def staff_message(
    limit: int,
    staff_id: str,
    alias: str,
    text: str,
    client_id: str | None,
    now: float,
    origin: str,
    *,
    sender: Literal["counsellor", "interpreter"] = "counsellor",
) -> Planned | ProtocolError:
    """A counsellor's or an interpreter's message (labelled as theirs for everyone), or why it
    is refused."""
    problem = check_text(text, limit)
    if problem is not None:
        return problem
    entry = Entry(
        EntryKind.message,
        now,
        sender=sender,
        name=alias,
        text=text,
        client_id=client_id,
        staff_id=staff_id,
    )
    return Planned(entry, f"s:{staff_id}:{client_id}" if client_id else None, origin)


def message_added(added: Added) -> tuple[int, bool] | ProtocolError:
    """What a message came to: (its number, whether it was a resend), or why not."""
    seq, status = added
    if status == "ok" or status == "duplicate":
        return seq, status == "duplicate"
    if status == "limited":
        return ProtocolError(ErrorCode.rate_limited, "too many messages; slow down", "message")
    if status == "forbidden":
        return ProtocolError(ErrorCode.not_in_chat, "you are not in this chat", "message")
    return MESSAGE_AFTER_END


# The answer to a message once the chat has ended.
MESSAGE_AFTER_END: Final = ProtocolError(ErrorCode.chat_ended, "the chat has ended", "message")


def entry_event(chat_id: str, seq: int, entry: Entry, origin: str | None, sealed: bytes) -> Event:
    """The event a stored entry goes out as. Listeners in this process get the entry itself
    ("_" fields stay in the process); what someone wrote crosses to other processes only
    sealed, as it is stored."""
    event: Event = {
        "type": "entry",
        "chat_id": chat_id,
        "seq": seq,
        "origin": origin,
        LOCAL_ENTRY: entry,
    }
    if entry.content:
        event["sealed"] = sealed
    else:
        event["entry"] = entry.to_dict()
    return event


class NeedsKey:
    """`entry_of`'s answer when the event's entry is sealed and its chat's key is not at hand."""


NEEDS_KEY: Final = NeedsKey()


def entry_of(event: Event, key: ChatKey | None) -> Entry | NeedsKey | None:
    """The entry an `entry` event carries: as it is in this process, opened with `key` when it
    came sealed from another; None when it cannot be read (tampered, malformed)."""
    local = event.get(LOCAL_ENTRY)
    if isinstance(local, Entry):
        return local
    try:
        raw = event.get("entry")
        if raw is not None:
            return Entry.from_dict(raw)
        sealed = event["sealed"]
        if key is None:
            return NEEDS_KEY
        plain = key.open(int(event["seq"]), _sealed(sealed))
        return Entry.from_dict(jsonutil.loads(plain))
    except (KeyError, TypeError, ValueError, binascii.Error, TamperedError):
        return None


def _sealed(value: Any) -> bytes:
    """An entry event's sealed entry: raw bytes from this process or the Redis broker, base64
    text from a process of an earlier version (during a rolling upgrade)."""
    if isinstance(value, bytes):
        return value
    return base64.b64decode(value, validate=True)


def entry_frame(
    chat_id: str, seq: int, entry: Entry, audience: Audience, viewer: str | None = None
) -> Frame | None:
    """The frame a participant (`viewer`: a staff member's id) receives for an entry, or None
    if it is not for them."""
    base: Frame
    if entry.kind is EntryKind.message:
        # The common case first, in one literal: a message is for everyone in the chat.
        base = {
            "chat_id": chat_id,
            "seq": seq,
            "at": entry.at,
            "type": "message",
            "sender": entry.sender,
            "text": entry.text,
        }
        if entry.name is not None:
            base["name"] = entry.name
        if entry.client_id is not None:
            base["client_id"] = entry.client_id
        if audience is Audience.staff and entry.staff_id is not None:
            base["staff_id"] = entry.staff_id
        return base
    if not visible_to(entry, audience, viewer):
        return None
    base = {"chat_id": chat_id, "seq": seq, "at": entry.at}
    if entry.kind is EntryKind.joined:
        base.update(type="counsellor.joined", name=entry.name)
        if entry.peer is not None:
            base["peer"] = entry.peer
    elif entry.kind is EntryKind.left:
        base.update(type="counsellor.left", reason=entry.reason)
    elif entry.kind is EntryKind.ended:
        base.update(type="chat.ended", by=entry.sender, reason=entry.reason)
    elif entry.kind is EntryKind.note:
        base.update(type="note", name=entry.name, text=entry.text)
    elif entry.kind is EntryKind.whisper:
        base.update(type="whisper", name=entry.name, text=entry.text)
    elif entry.kind is EntryKind.continuity_offer:
        base.update(type="continuity.offered", name=entry.name)
        if audience is Audience.staff:
            base["note"] = entry.text
    elif entry.kind is EntryKind.continuity_issued:
        base.update(type="continuity.accepted")
    elif entry.kind is EntryKind.handover:
        base.update(type="handover", name=entry.name, text=entry.text)
    elif entry.kind is EntryKind.referral:
        base.update(type="referral", name=entry.name, card=entry.card)
    elif entry.kind is EntryKind.interpreter_joined:
        base.update(type="interpreter.joined", name=entry.name, language=entry.reason)
    elif entry.kind is EntryKind.interpreter_left:
        base.update(type="interpreter.left", name=entry.name, reason=entry.reason)
    elif entry.kind is EntryKind.booking_offer:
        base.update(type="booking.offered", name=entry.name, times=(entry.card or {}).get("times"))
    elif entry.kind is EntryKind.booking_missed:
        base.update(type="booking.missed")
    if audience is Audience.staff and entry.staff_id is not None:
        base["staff_id"] = entry.staff_id
    return base


class _Shown:
    """A visitor's numbering of one chat: only what the visitor sees counts, so a staff-only
    entry (a note, a whisper) leaves no gap that tells it was written."""

    __slots__ = ("count", "hidden", "mine")

    def __init__(self, hidden: int = 0) -> None:
        # How many entries the visitor has been numbered so far.
        self.count = 0
        # The client has these already (its `last_seq` on resume): counted, not sent again.
        self.hidden = hidden
        # The visitor's own messages: sequence number -> the visitor's number (for its acks).
        self.mine: dict[int, int] = {}


class Delivery:
    """What one connection has delivered of each chat's transcript: entries go out strictly in
    sequence per chat, none twice (which is what makes a resume lose and double nothing).

    Staff see each entry under its sequence number. A visitor sees its own numbering (1, 2,
    3, ... over what it is shown), counted as the entries go by in sequence: a resume goes
    through the chat from its first entry and sends what comes after the visitor's number.
    """

    __slots__ = ("audience", "delivered", "hello", "interpreting", "shown", "viewer")

    def __init__(self, audience: Audience, viewer: str | None = None) -> None:
        self.audience = audience
        # Staff: chats the viewer is in as an interpreter, who sees what the visitor sees.
        self.interpreting: set[str] = set()
        # The staff member the connection belongs to (some entries are for their author only).
        self.viewer = viewer
        # Per chat: the highest sequence number delivered (or deliberately passed over).
        self.delivered: dict[str, int] = {}
        # Visitors: per chat, the visitor's numbering.
        self.shown: dict[str, _Shown] = {}
        # Staff: chats listed in the connection's `hello` whose client has not yet said what
        # it has (`sync`) -> the last sequence number the `hello` showed.
        self.hello: dict[str, int] = {}

    def take(
        self, chat_id: str, seq: int, entry: Entry, *, skip: bool = False
    ) -> list[Frame] | None:
        """The frames for an entry next in sequence (none for one delivered already, or one
        passed over: `skip`); None when entries are missing before it (fill the gap first)."""
        delivered = self.delivered.get(chat_id, 0)
        if seq <= delivered:
            return []
        if seq > delivered + 1:
            return None
        self.delivered[chat_id] = seq
        if self.audience is Audience.staff:
            if skip:
                return []
            frame = entry_frame(chat_id, seq, entry, self._staff_audience(chat_id), self.viewer)
            return [] if frame is None else [frame]
        # Messages, the common case, are for everyone.
        message = entry.kind is EntryKind.message
        if not message and not visible_to(entry, Audience.visitor):
            return []
        shown = self.shown.get(chat_id) or self._shown(chat_id)
        shown.count += 1
        number = shown.count
        if message and entry.sender == "visitor":
            shown.mine[seq] = number
        if skip or number <= shown.hidden:
            return []
        frame = entry_frame(chat_id, number, entry, Audience.visitor)
        return [] if frame is None else [frame]

    def pass_over(self, chat_id: str, seq: int) -> bool:
        """Count an entry as delivered without a frame, if it is next in sequence (a client's
        own message, which it is not shown back); False: handle it as any other."""
        if self.delivered.get(chat_id, 0) != seq - 1:
            return False
        self.delivered[chat_id] = seq
        if self.audience is Audience.visitor:
            shown = self._shown(chat_id)
            shown.count += 1
            shown.mine[seq] = shown.count
        return True

    def number(self, chat_id: str, seq: int) -> int | None:
        """How this client numbers its own message stored as `seq` (for its acknowledgement);
        None until the entries before it have been delivered."""
        if self.audience is Audience.staff:
            return seq
        shown = self.shown.get(chat_id)
        if shown is not None and seq in shown.mine:
            return shown.mine[seq]
        if self.pass_over(chat_id, seq):
            return self._shown(chat_id).count
        return None

    def replaying(self, chat_id: str) -> bool:
        """Whether the next entries the visitor sees are ones it has already (on resume)."""
        shown = self.shown.get(chat_id)
        return shown is not None and shown.count < shown.hidden

    def _shown(self, chat_id: str) -> _Shown:
        shown = self.shown.get(chat_id)
        if shown is None:
            shown = self.shown[chat_id] = _Shown()
        return shown

    def last(self, chat_id: str) -> int:
        return self.delivered.get(chat_id, 0)

    def from_hello(self, chat_id: str, last_seq: int) -> None:
        """A chat listed in `hello` with `last_seq`: entries after it go out live, and the
        client's `sync` brings what it lacks before them (see `sync`)."""
        self.delivered[chat_id] = last_seq
        self.hello[chat_id] = last_seq

    def sync(self, chat_id: str, after: int) -> int | None:
        """The client has everything up to `after`. None: deliver from there. Otherwise the
        chat was listed in `hello` and entries after it went out live since: the entries
        after `after` up to the returned number are to be sent once more, out of sequence,
        and delivery goes on from where it is, so that none is sent twice."""
        shown = self.hello.pop(chat_id, None)
        delivered = self.delivered.get(chat_id, 0)
        if shown is None or after >= delivered or delivered == shown:
            self.start(chat_id, after)
            return None
        return shown

    def again(self, chat_id: str, seq: int, entry: Entry) -> list[Frame]:
        """An entry's frames for a staff client, wherever delivery is (`sync`)."""
        audience = self.audience
        if audience is Audience.staff:
            audience = self._staff_audience(chat_id)
        frame = entry_frame(chat_id, seq, entry, audience, self.viewer)
        return [] if frame is None else [frame]

    def _staff_audience(self, chat_id: str) -> Audience:
        return Audience.interpreter if chat_id in self.interpreting else Audience.staff

    def start(self, chat_id: str, after: int) -> None:
        """The client has everything up to `after` (staff), or nothing yet (a visitor's new
        chat): deliver from there."""
        self.hello.pop(chat_id, None)
        self.delivered[chat_id] = after
        self.shown.pop(chat_id, None)

    def resume(self, chat_id: str, seen: int) -> None:
        """A visitor has its first `seen` entries: go through the chat from its start, counting
        them again, and deliver what follows."""
        self.delivered[chat_id] = 0
        self.shown[chat_id] = _Shown(seen)

    def skip_to(self, chat_id: str, seq: int) -> None:
        """Entries up to `seq` could not be read (shredded, refused): go on past them."""
        self.delivered[chat_id] = seq

    def forget(self, chat_id: str) -> None:
        self.interpreting.discard(chat_id)
        self.delivered.pop(chat_id, None)
        self.shown.pop(chat_id, None)
        self.hello.pop(chat_id, None)
