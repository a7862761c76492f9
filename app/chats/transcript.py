"""Transcript entries: what a chat says and what happened in it, in sequence.

Entries live only in the broker and only as long as the chat (and its retention). Each is
sealed by a `TranscriptCodec` bound to its chat and sequence number before it is stored.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from app.broker.base import Appending, AppendStatus, Broker, Quota
from app.broker.hub import LOCAL_ENTRY
from app.broker.records import ChatState
from app.chats.crypto import MissingKeyError, TamperedError, UnknownKekError
from app.kit import jsonutil

logger = logging.getLogger(__name__)


class EntryKind(StrEnum):
    message = "message"
    joined = "joined"
    left = "left"
    note = "note"
    whisper = "whisper"  # a supervisor to the counsellor
    ended = "ended"
    # Continuity codes (app/continuity): the counsellor offers one (the visitor sees the offer,
    # not the note), the visitor took it (staff only), and a returning visitor's note for the
    # counsellor who wrote it (only them, app/chats/connection.py).
    continuity_offer = "continuity_offer"
    continuity_issued = "continuity_issued"
    handover = "handover"
    referral = "referral"  # a card from the referral directory, in the visitor's language


_KIND_OF: dict[str, EntryKind] = {kind.value: kind for kind in EntryKind}
# And back: `.value` on an enum member is two Python calls, for every message.
_VALUE_OF: dict[EntryKind, str] = {kind: kind.value for kind in EntryKind}


class Audience(StrEnum):
    visitor = "visitor"
    staff = "staff"


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


def entry_frame(
    chat_id: str, seq: int, entry: Entry, audience: Audience, viewer: str | None = None
) -> dict[str, Any] | None:
    """The frame a participant (`viewer`: a staff member's id) receives for an entry, or
    None if it is not for them."""
    base: dict[str, Any]
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
    if audience is Audience.staff and entry.staff_id is not None:
        base["staff_id"] = entry.staff_id
    return base


class TranscriptCodec(Protocol):
    """Seals an entry for storage, bound to its chat and sequence number."""

    async def begin(self, chat_id: str) -> None:
        """Prepare a new chat (its key); sealing for a chat that was never begun fails."""

    async def seal(self, chat_id: str, seq: int, plain: bytes) -> bytes: ...

    def seal_cached(self, chat_id: str, seq: int, plain: bytes) -> bytes | None:
        """`seal` without waiting for anything, or None when that is not possible."""

    async def open(self, chat_id: str, seq: int, sealed: bytes) -> bytes: ...

    def open_cached(self, chat_id: str, seq: int, sealed: bytes) -> bytes | None:
        """`open` without waiting for anything, or None when that is not possible."""

    async def has_key(self, chat_id: str) -> bool: ...

    async def retain(self, chat_id: str, seconds: float) -> None:
        """Let what the codec keeps for the chat vanish by itself after `seconds`."""

    async def forget(self, chat_id: str) -> None:
        """Drop whatever the codec keeps for the chat (its key)."""


# The event that goes out with an entry once its number and seal are known:
# (entry, seq, sealed entry) → (channel, event).
Announce = Callable[[Entry, int, bytes], tuple[str, dict[str, Any]]]

# One entry of `Transcript.add_burst`: the entry, the key that makes a resend a duplicate,
# and how its event is built. Plain tuples, as `Added`: one of each per message.
Adding = tuple[Entry, str | None, Announce | None]

# What came of adding an entry: its number, and the broker's answer.
Added = tuple[int, AppendStatus]


# The sequence number sealed texts outside the transcript are bound to (see seal_aside).
ASIDE_SEQ = 0


class Transcript:
    """Appends and reads a chat's entries through the broker."""

    def __init__(self, broker: Broker, codec: TranscriptCodec) -> None:
        self._broker = broker
        self._codec = codec

    async def begin(self, chat_id: str) -> None:
        await self._codec.begin(chat_id)

    async def add(
        self,
        chat_id: str,
        entry: Entry,
        *,
        last_seq: int,
        dedupe: str | None = None,
        counsellor: str | None = None,
        announce: Announce | None = None,
        quota: Quota | None = None,
    ) -> Added:
        """Store `entry` after `last_seq`, retrying when someone else appended first.

        `last_seq` is the caller's best guess; a wrong guess costs one retry. `announce`
        builds the event that goes out with the entry once its number and seal are known.
        """
        added = await self.add_burst(
            chat_id,
            [(entry, dedupe, announce)],
            last_seq=last_seq,
            counsellor=counsellor,
            quota=quota,
        )
        return added[0]

    async def add_burst(
        self,
        chat_id: str,
        burst: list[Adding],
        *,
        last_seq: int,
        counsellor: str | None = None,
        quota: Quota | None = None,
    ) -> list[Added]:
        """`add` for entries that go in this order, in one trip to the broker (two when
        someone else appended first): a client's messages read together. One answer each."""
        plains = [jsonutil.dumpb(entry.to_dict()) for entry, _, _ in burst]
        added: list[Added] = []
        expected = last_seq
        for _ in range(50):
            start = len(added)
            appending: list[Appending] = []
            for index in range(start, len(burst)):
                seq = expected + 1 + index - start
                plain = plains[index]
                try:
                    sealed = self._codec.seal_cached(chat_id, seq, plain) or await self._codec.seal(
                        chat_id, seq, plain
                    )
                except MissingKeyError:
                    # Shredded (or never begun): nothing may be written for this chat any more.
                    return added + [(0, "ended")] * (len(burst) - start)
                except (TamperedError, UnknownKekError):
                    # Its key cannot be unwrapped (a KEK removed too early, or tampering): the
                    # chat cannot go on safely.
                    logger.warning("chat key unusable", extra={"code": "unusable_key"})
                    return added + [(0, "ended")] * (len(burst) - start)
                entry, dedupe, announce = burst[index]
                appending.append(
                    (
                        seq,
                        sealed,
                        dedupe,
                        None if announce is None else announce(entry, seq, sealed),
                    )
                )
            answers = await self._broker.append_burst(
                chat_id, appending, counsellor=counsellor, quota=quota
            )
            for answer in answers:
                if answer[1] == "conflict":
                    expected = answer[0]
                    break
                added.append(answer)
            else:
                return added
        raise RuntimeError("could not append to the transcript under contention")

    def add_now(
        self,
        chat_id: str,
        entry: Entry,
        *,
        last_seq: int,
        dedupe: str | None = None,
        announce: Announce | None = None,
        quota: Quota | None = None,
    ) -> Added | None:
        """`add` in one step when nothing needs waiting for (the chat's key is in this process
        and the broker in-process); None when `add` must do it, and nothing was stored."""
        if self._broker.round_trips:
            return None
        seq = last_seq + 1
        sealed = self._codec.seal_cached(chat_id, seq, jsonutil.dumpb(entry.to_dict()))
        if sealed is None:
            return None
        result = self._broker.append_now(
            chat_id,
            seq,
            sealed,
            dedupe=dedupe,
            announce=None if announce is None else announce(entry, seq, sealed),
            quota=quota,
        )
        if result is None or result[1] == "conflict":
            return None
        return result

    async def read(self, chat_id: str, after: int) -> list[tuple[int, Entry]]:
        """Entries after `after`; nothing once the chat is shredded, never a forged entry."""
        out: list[tuple[int, Entry]] = []
        if not await self._codec.has_key(chat_id):
            return out
        for seq, sealed in await self._broker.read(chat_id, after):
            try:
                plain = await self._codec.open(chat_id, seq, sealed)
            except MissingKeyError:
                return out
            except UnknownKekError:
                logger.warning("transcript key unreadable", extra={"code": "unknown_kek"})
                return out
            except TamperedError:
                # Never deliver what does not authenticate; the content is not logged.
                logger.warning("transcript entry refused", extra={"code": "tampered"})
                continue
            out.append((seq, Entry.from_dict(jsonutil.loads(plain))))
        return out

    async def read_to_end(self, chat_id: str, after: int) -> list[tuple[int, Entry]]:
        """`read`, and then the chat's end if it has ended: the ended entry is never stored
        (it goes out live only, numbered after the last stored entry), so a client that
        subscribed as the chat ended learns of it here, from the chat's record, which holds
        no content. The record turns ended before the event goes out, so a connection that
        reads it once subscribed is told here or live (a late live one is then passed over)."""
        entries = await self.read(chat_id, after)
        record = await self._broker.get_chat(chat_id)
        if record is None or record.state is not ChatState.ended:
            return entries
        last = entries[-1][0] if entries else after
        if last <= record.last_seq:
            end = Entry(
                EntryKind.ended,
                record.ended_at or self._broker.now(),
                sender=record.ended_by,
                reason=record.end_reason,
            )
            entries.append((record.last_seq + 1, end))
        return entries

    async def retain(self, chat_id: str, seconds: float) -> None:
        """Keep the transcript at most `seconds` more: the broker drops the entries and the key
        by itself then, even if no process is alive (the shred deadline normally comes first)."""
        await self._broker.expire_chat(chat_id, transcript=seconds)
        await self._codec.retain(chat_id, seconds)

    async def event_entry(self, event: dict[str, Any]) -> Entry | None:
        """The entry an `entry` event carries: plain in this process, sealed from others."""
        entry = self.event_entry_now(event)
        if entry is not None:
            return entry
        try:
            chat_id, seq = str(event["chat_id"]), int(event["seq"])
            plain = await self._codec.open(chat_id, seq, _sealed(event["sealed"]))
        except MissingKeyError:
            return None  # shredded meanwhile: the chat has ended
        except (KeyError, TypeError, ValueError, binascii.Error, TamperedError, UnknownKekError):
            logger.warning("entry event refused", extra={"code": "tampered"})
            return None
        return Entry.from_dict(jsonutil.loads(plain))

    def event_entry_now(self, event: dict[str, Any]) -> Entry | None:
        """`event_entry` when it needs nothing it would wait for; None otherwise, and for
        anything unreadable (`event_entry` then decides)."""
        local = event.get(LOCAL_ENTRY)
        if isinstance(local, Entry):
            return local
        try:
            raw = event.get("entry")
            if raw is not None:
                return Entry.from_dict(raw)
            chat_id, seq = str(event["chat_id"]), int(event["seq"])
            plain = self._codec.open_cached(chat_id, seq, _sealed(event["sealed"]))
            return None if plain is None else Entry.from_dict(jsonutil.loads(plain))
        except (KeyError, TypeError, ValueError, binascii.Error, TamperedError):
            return None

    async def seal_aside(self, chat_id: str, text: str) -> str:
        """Seal a staff-only text that goes out live and is never stored (a request for help),
        so that it crosses processes sealed like the transcript. Entries start at 1: sequence
        number 0 is for these alone."""
        sealed = await self._codec.seal(chat_id, ASIDE_SEQ, text.encode())
        return base64.b64encode(sealed).decode()

    async def open_aside(self, chat_id: str, sealed: str) -> str | None:
        """The text `seal_aside` sealed, or None when it cannot be read (the chat is gone)."""
        try:
            plain = await self._codec.open(
                chat_id, ASIDE_SEQ, base64.b64decode(sealed, validate=True)
            )
        except MissingKeyError:
            return None
        except (ValueError, binascii.Error, TamperedError, UnknownKekError):
            logger.warning("aside refused", extra={"code": "tampered"})
            return None
        return plain.decode()

    async def forget(self, chat_id: str) -> None:
        """Shred: the key first (which makes every copy of the entries unreadable), then the
        entries."""
        await self._codec.forget(chat_id)
        await self._broker.delete_transcript(chat_id)


def _sealed(value: Any) -> bytes:
    """An entry event's sealed entry: raw bytes from this process or the Redis broker, base64
    text from a process of an earlier version (during a rolling upgrade)."""
    if isinstance(value, bytes):
        return value
    return base64.b64decode(value, validate=True)
