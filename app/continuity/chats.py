"""The chat side of continuity codes: offer and accept at the end of a chat, return with a
code at the start of a new one, delete. Frames reach this through the WebSocket adapters.

The plain code passes through here only as a value: returned once to the visitor's
connection, never put in the transcript, an event, the broker or a log.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.abuse.ratelimit import ClientTag
from app.broker.base import Refusal, Transition
from app.broker.records import ChatState, StaffStatus
from app.chats.entries import Entry, EntryKind
from app.chats.lifecycle import LineUnavailable, Returning, Started
from app.chats.protocol import ErrorCode, ProtocolError
from app.chats.service import ChatService
from app.continuity.codes import MAX_NOTE_CHARS
from app.continuity.service import Issued, Match, continuity_service
from app.kit.clock import utcnow
from app.kit.db import after_commit, after_rollback, unit_of_work
from app.roster.service import roster_service
from app.routing.policy import on_duty, qualified
from app.settings import Settings
from app.staff.service import StaffContext

OFFERED = "offered"
ISSUED = "issued"


@dataclass(frozen=True, slots=True)
class CounsellorAway:
    """The code's counsellor is not on duty: when they next are, if the roster says."""

    name: str
    next_on_duty_at: float | None


@dataclass(frozen=True, slots=True)
class CounsellorHere:
    name: str
    started: Started


def _err(code: ErrorCode, message: str, ref: str) -> ProtocolError:
    return ProtocolError(code, message, ref)


UNKNOWN_CODE = "no counsellor could be found for this code; check the words, or start without it"


class ContinuityChats:
    def __init__(
        self,
        chats: ChatService,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
    ) -> None:
        self.chats = chats
        self.sessionmaker = sessionmaker
        self.settings = settings

    # End of a chat --------------------------------------------------------------------------

    async def offer(self, staff: StaffContext, chat_id: str, note: str) -> int | ProtocolError:
        """The counsellor offers a code; the note goes into the (sealed) transcript."""
        ref = "continuity.offer"
        if len(note) > MAX_NOTE_CHARS:
            return _err(
                ErrorCode.message_too_long,
                f"the note has {len(note)} characters; the limit is {MAX_NOTE_CHARS}",
                ref,
            )
        record = await self.chats.messages.own_active_chat(staff, chat_id, ref)
        if isinstance(record, ProtocolError):
            return record
        if record.continuity == ISSUED:
            return _err(
                ErrorCode.invalid_state, "the visitor already has a code from this chat", ref
            )
        result = await self.chats.broker.transition(
            chat_id,
            Transition(
                expect=frozenset({ChatState.active}),
                counsellor=staff.id,
                changes={"continuity": OFFERED},
            ),
        )
        if isinstance(result, Refusal):
            return _err(ErrorCode.not_in_chat, "the chat changed meanwhile", ref)
        now = self.chats.broker.now()
        entry = Entry(
            EntryKind.continuity_offer, now, name=staff.alias, text=note.strip(), staff_id=staff.id
        )
        seq, status = await self.chats.messages.add_staff_entry(
            staff, chat_id, entry, result.last_seq
        )
        if status != "ok":
            return _err(ErrorCode.chat_ended, "the chat has ended", ref)
        return seq

    async def accept(self, chat_id: str) -> Issued | ProtocolError:
        """The visitor takes the offered code: made now, returned once, stored only hashed."""
        ref = "continuity.accept"
        record = await self.chats.broker.get_chat(chat_id)
        if record is None or record.state is not ChatState.active:
            return _err(ErrorCode.not_allowed_now, "a code can be taken only during a chat", ref)
        if record.continuity != OFFERED:
            return _err(
                ErrorCode.not_allowed_now,
                "no code was offered in this chat"
                if record.continuity is None
                else "you already have a code from this chat",
                ref,
            )
        offer: Entry | None = None
        for _, entry in await self.chats.transcript.read(chat_id, 0):
            if entry.kind is EntryKind.continuity_offer:
                offer = entry
        if offer is None or offer.staff_id is None:
            return _err(ErrorCode.not_allowed_now, "no code was offered in this chat", ref)
        # Compare-and-set on the offer: of two accepts at once (two tabs, a resend), one
        # issues the code and the other is told it has one already.
        result = await self.chats.broker.transition(
            chat_id,
            Transition(
                expect=frozenset({ChatState.active}),
                changes={"continuity": ISSUED},
                continuity=OFFERED,
            ),
        )
        if result is Refusal.mismatch:
            return _err(ErrorCode.not_allowed_now, "you already have a code from this chat", ref)
        if isinstance(result, Refusal):
            return _err(ErrorCode.not_allowed_now, "a code can be taken only during a chat", ref)
        staff_id = offer.staff_id

        async def taken() -> None:
            # Staff see that the visitor took the code, once it is stored.
            entry = Entry(EntryKind.continuity_issued, self.chats.broker.now(), staff_id=staff_id)
            await self.chats.transcript.add_one(chat_id, entry, last_seq=result.last_seq)

        async def not_taken() -> None:
            # Not stored: the offer stands, and the visitor may take it again.
            await self.chats.broker.transition(
                chat_id,
                Transition(
                    expect=frozenset({ChatState.active}),
                    changes={"continuity": OFFERED},
                    continuity=ISSUED,
                ),
            )

        async with unit_of_work(self.sessionmaker) as session:
            issued = await continuity_service.issue(
                session,
                self.settings,
                line_key=record.line,
                staff_id=uuid.UUID(staff_id),
                language=record.language,
                note=offer.text or "",
                now=utcnow(),
            )
            after_commit(session, taken)
            after_rollback(session, not_taken)
        return issued

    # A returning visitor --------------------------------------------------------------------

    async def find(self, code: str, line_key: str) -> Match | None:
        async with unit_of_work(self.sessionmaker) as session:
            return await continuity_service.find(session, self.settings, code, line_key, utcnow())

    async def counsellor_on_duty(self, match: Match) -> bool:
        """Signed in, available and on duty on the line now (busy is fine: the chat waits)."""
        line = self.chats.lines.get(match.line_key)
        if line is None:
            return False
        now = self.chats.broker.now()
        for candidate in await self.chats.router.candidates(line.key):
            presence = candidate.presence
            if presence.staff_id == str(match.staff_id):
                return (
                    candidate.connected
                    and presence.status is StaffStatus.available
                    and on_duty(presence, line.key, now)
                    and qualified(presence, line)
                )
        return False

    async def next_on_duty(self, match: Match) -> float | None:
        async with unit_of_work(self.sessionmaker) as session:
            found = await roster_service.next_shift(
                session, match.staff_id, match.line_key, utcnow()
            )
        return found.timestamp() if found is not None else None

    async def start(
        self,
        code: str,
        line_key: str,
        language: str,
        *,
        peer: bool,
        tag: ClientTag | None,
        connection: str,
    ) -> CounsellorHere | CounsellorAway | LineUnavailable | ProtocolError:
        """Start a returning visitor's chat for their counsellor, or say when they are back."""
        match = await self.find(code, line_key)
        if match is None:
            return _err(ErrorCode.unknown_code, UNKNOWN_CODE, "start")
        if not await self.counsellor_on_duty(match):
            return CounsellorAway(match.alias, await self.next_on_duty(match))
        # Only now, with the counsellor here, is the note unlocked (Argon2id: slow on purpose).
        note = await match.open_note()
        started = await self.chats.lifecycle.start(
            line_key,
            language,
            peer=peer,
            tag=tag,
            connection=connection,
            returning=Returning(
                staff_id=str(match.staff_id),
                alias=match.alias,
                note=note,
                wait_seconds=self.settings.continuity_wait_seconds,
            ),
        )
        if isinstance(started, Started):
            return CounsellorHere(match.alias, started)
        return started

    async def delete(self, code: str) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            await continuity_service.delete(session, self.settings, code)
