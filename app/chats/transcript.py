"""A chat's transcript in the broker: planned entries sealed and appended, and read back.

Each entry is sealed with its chat's key, bound to its chat and sequence number, before it is
stored (app/chats/crypto.py), and goes out as an event in the same atomic step
(app/chats/plan.py builds both).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence

from app.broker.base import Appending, Broker, Quota
from app.broker.records import ChatState
from app.chats.channels import chat_channel
from app.chats.crypto import (
    ChatKey,
    EncryptedCodec,
    MissingKeyError,
    TamperedError,
    UnknownKekError,
)
from app.chats.entries import Audience, Entry, EntryKind, visible_to
from app.chats.plan import Added, Planned, entry_event
from app.kit import jsonutil

logger = logging.getLogger(__name__)

# The sequence number sealed texts outside the transcript are bound to (see seal_aside).
ASIDE_SEQ = 0
# How often an append is sealed again with the next numbers when others appended first.
APPEND_ATTEMPTS = 50


class Transcript:
    """Appends and reads a chat's entries through the broker."""

    def __init__(self, broker: Broker, codec: EncryptedCodec) -> None:
        self._broker = broker
        self._codec = codec

    async def begin(self, chat_id: str) -> None:
        await self._codec.begin(chat_id)

    def cached_key(self, chat_id: str) -> ChatKey | None:
        """The chat's key if this process holds it (see EncryptedCodec)."""
        return self._codec.cached(chat_id)

    async def key(self, chat_id: str) -> ChatKey | None:
        """The chat's key, or None once it is shredded or unusable."""
        try:
            return await self._codec.load(chat_id)
        except MissingKeyError:
            return None
        except (TamperedError, UnknownKekError):
            # Its key cannot be unwrapped (a KEK removed too early, or tampering): the chat
            # cannot go on safely.
            logger.warning("chat key unusable", extra={"code": "unusable_key"})
            return None

    async def add(
        self,
        chat_id: str,
        planned: Sequence[Planned],
        *,
        last_seq: int,
        counsellor: str | None = None,
        quota: Quota | None = None,
        interpreter: str | None = None,
    ) -> list[Added]:
        """Store the entries after `last_seq`, in this order, in one step of the broker; one
        answer each (see Broker.append).

        `last_seq` is the caller's best guess: when someone appended first, what is left is
        sealed again with the next numbers, so a wrong guess costs one more step."""
        if not planned:
            return []
        key = await self.key(chat_id)
        if key is None:
            # Shredded (or never begun): nothing may be written for this chat any more.
            return [(0, "ended")] * len(planned)
        plains = [jsonutil.dumpb(plan.entry.to_dict()) for plan in planned]
        # The broker keeps a keyed hash of what makes a resend a duplicate, never the
        # client's own id.
        dedupes = [None if p.dedupe is None else key.digest(p.dedupe) for p in planned]
        channel = chat_channel(chat_id)
        added: list[Added] = []
        expected = last_seq
        for _ in range(APPEND_ATTEMPTS):
            start = len(added)
            appending: list[Appending] = []
            for index in range(start, len(planned)):
                seq = expected + 1 + index - start
                plan = planned[index]
                sealed = key.seal(seq, plains[index])
                event = entry_event(chat_id, seq, plan.entry, plan.origin, sealed)
                appending.append((seq, sealed, dedupes[index], (channel, event)))
            answers = await self._broker.append(
                chat_id, appending, counsellor=counsellor, quota=quota, interpreter=interpreter
            )
            for answer in answers:
                if answer[1] == "conflict":
                    expected = answer[0]
                    break
                added.append(answer)
            else:
                return added
        raise RuntimeError("could not append to the transcript under contention")

    async def add_one(
        self,
        chat_id: str,
        entry: Entry,
        *,
        last_seq: int,
        counsellor: str | None = None,
        dedupe: str | None = None,
    ) -> Added:
        """`add` for one entry nobody's connection wrote (a system entry, a note, a card)."""
        (added,) = await self.add(
            chat_id, [Planned(entry, dedupe)], last_seq=last_seq, counsellor=counsellor
        )
        return added

    async def read(self, chat_id: str, after: int) -> list[tuple[int, Entry]]:
        """Entries after `after`; nothing once the chat is shredded, never a forged entry."""
        out: list[tuple[int, Entry]] = []
        if not await self._codec.has_key(chat_id):
            return out
        key = await self.key(chat_id)
        if key is None:
            return out
        for seq, sealed in await self._broker.read(chat_id, after):
            try:
                plain = key.open(seq, sealed)
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

    async def seen_by_visitor(self, chat_id: str) -> int:
        """How many of the stored entries the visitor sees: the last of its own numbers (a
        visitor counts only what it is shown, see plan.Delivery)."""
        return sum(
            1 for _, entry in await self.read(chat_id, 0) if visible_to(entry, Audience.visitor)
        )

    async def retain(self, chat_id: str, seconds: float) -> None:
        """Keep the transcript at most `seconds` more: the broker drops the entries and the key
        by itself then, even if no process is alive (the shred deadline normally comes first)."""
        await self._broker.expire_chat(chat_id, transcript=seconds)
        await self._codec.retain(chat_id, seconds)

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
