"""The chat side of continuity codes: offer and accept at the end of a chat, return with a
code at the start of a new one, delete. Frames reach this through the WebSocket adapters.

The plain code passes through here only as a value: returned once to the visitor's
connection, never put in the transcript, an event, the broker or a log.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.abuse.ratelimit import ClientTag
from app.bookings.holds import BookingHolds
from app.bookings.service import BookingError, booking_service, iso
from app.broker.base import Refusal, Transition
from app.broker.records import LIVE_STATES, ChatState, StaffStatus
from app.chats.entries import Entry, EntryKind
from app.chats.lifecycle import LineUnavailable, Returning, Started
from app.chats.protocol import ErrorCode, ProtocolError
from app.chats.service import ChatService
from app.continuity.codes import MAX_NOTE_CHARS
from app.continuity.service import Issued, Match, continuity_service
from app.kit.clock import utcnow
from app.kit.db import after_commit, after_rollback, unit_of_work
from app.models import Booking
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
    # A booked chat: it waits for the counsellor even if they are not here yet.
    booked: bool = False


def _err(code: ErrorCode, message: str, ref: str) -> ProtocolError:
    return ProtocolError(code, message, ref)


UNKNOWN_CODE = "no counsellor could be found for this code; check the words, or start without it"


class ContinuityChats:
    def __init__(
        self,
        chats: ChatService,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        holds: BookingHolds | None = None,
        shredded: Callable[[AsyncSession], None] | None = None,
    ) -> None:
        self.chats = chats
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.holds = holds or BookingHolds(sessionmaker, settings)
        # Once a deletion commits, its rows leave the database's files too (app/mailbox/live.py).
        self.shredded = shredded

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
            # Staff see that the visitor took the code, once it is stored; its digest is kept
            # on the chat so the counsellor can offer times to book.
            entry = Entry(EntryKind.continuity_issued, self.chats.broker.now(), staff_id=staff_id)
            await self.chats.transcript.add_one(chat_id, entry, last_seq=result.last_seq)
            await self.chats.broker.transition(
                chat_id,
                Transition(expect=LIVE_STATES, changes={"code_digest": issued.digest}),
            )

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
        booking = await self.booked_now(match)
        here = await self.counsellor_on_duty(match)
        if not here and booking is None:
            return CounsellorAway(match.alias, await self.next_on_duty(match))
        # Only now, with the counsellor here or booked, is the note unlocked (Argon2id: slow
        # on purpose).
        note = await match.open_note()
        wait = float(self.settings.continuity_wait_seconds)
        if booking is not None:
            # The booked chat waits for its counsellor until the wait after the booked time
            # (or after now, for a visitor who comes late), then anyone answers.
            now = utcnow().timestamp()
            wait = max(booking.timestamp(), now) + wait - now
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
                wait_seconds=wait,
                digest=match.digest,
                booked=booking is not None,
            ),
        )
        if isinstance(started, Started):
            if booking is not None:
                await self.booking_arrived(match)
            return CounsellorHere(match.alias, started, booked=booking is not None)
        return started

    # Booked chats ---------------------------------------------------------------------------

    def _booking_window(self) -> tuple[timedelta, timedelta]:
        return (
            timedelta(minutes=self.settings.booking_early_minutes),
            timedelta(seconds=self.settings.continuity_wait_seconds),
        )

    async def _due(self, session: AsyncSession, match: Match) -> Booking | None:
        """The code's booking if a chat started now is it (on its line, in its window)."""
        early, wait = self._booking_window()
        return await booking_service.due(
            session,
            digest=match.digest,
            line_key=match.line_key,
            now=utcnow(),
            early=early,
            wait=wait,
        )

    async def booked_now(self, match: Match) -> datetime | None:
        """The booked time of the code's booking if a chat started now is it."""
        async with unit_of_work(self.sessionmaker) as session:
            booking = await self._due(session, match)
            if booking is None or str(booking.staff_id) != str(match.staff_id):
                return None
            return booking.starts_at

    async def booking_arrived(self, match: Match) -> None:
        """The booked chat is here: its counsellor's place is no longer kept for it."""
        async with unit_of_work(self.sessionmaker) as session:
            booking = await self._due(session, match)
            if booking is not None:
                await booking_service.arrived(session, booking)
        self.holds.invalidate()

    async def offer_times(
        self, staff: StaffContext, chat_id: str, times: list[datetime]
    ) -> str | ProtocolError:
        """The counsellor offers times in their shifts to a visitor with a code; the visitor
        sees them in the chat and picks one with the code (app/bookings/endpoints.py). The
        chat's line, for the audit log."""
        ref = "booking.offer"
        record = await self.chats.messages.own_active_chat(staff, chat_id, ref)
        if isinstance(record, ProtocolError):
            return record
        if record.code_digest is None:
            return _err(
                ErrorCode.no_code,
                "the visitor has no continuity code from this chat; offer one first",
                ref,
            )
        try:
            async with unit_of_work(self.sessionmaker) as session:
                chosen = await booking_service.offer(
                    session,
                    staff_id=uuid.UUID(staff.id),
                    line_key=record.line,
                    digest=record.code_digest,
                    times=times,
                    now=utcnow(),
                )
        except BookingError as exc:
            return _err(ErrorCode(exc.code), exc.message, ref)
        entry = Entry(
            EntryKind.booking_offer,
            self.chats.broker.now(),
            name=staff.alias,
            card={"times": [iso(t) for t in chosen]},
            staff_id=staff.id,
        )
        _, status = await self.chats.messages.add_staff_entry(
            staff, chat_id, entry, record.last_seq
        )
        if status != "ok":
            return _err(ErrorCode.chat_ended, "the chat has ended", ref)
        return record.line

    async def pick(self, code: str, time: datetime) -> bool:
        """The visitor books an offered time with their code; False for every kind of
        unknown code alike. Raises BookingError for a time that cannot be booked."""
        digest = await continuity_service.digest_of(self.settings, code)
        now = utcnow()
        async with unit_of_work(self.sessionmaker) as session:
            alive = digest is not None and await continuity_service.alive(session, digest, now)
            booking = (
                await booking_service.pick(session, digest=digest, time=time, now=now)
                if alive and digest is not None
                else None
            )
        if booking is not None:
            self.holds.invalidate()
        return booking is not None

    async def delete(self, code: str) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            if await continuity_service.delete(session, self.settings, code) and self.shredded:
                self.shredded(session)
