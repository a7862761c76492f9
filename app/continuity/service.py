"""Continuity codes: issue one at the end of a chat, find its counsellor when the visitor
returns, delete it on the visitor's word. Services flush, never commit.

The plain code exists only in the request that creates or presents it: it is returned to the
caller to show once, hashed for the lookup, and used to derive the note's key; nothing here
stores or logs it.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.repository import BookingOfferRepository, BookingRepository
from app.continuity import codes
from app.continuity.codes import KdfParams, SealedNote
from app.continuity.repository import ContinuityCodeRepository
from app.mailbox.protocol import expired as mailbox_expired
from app.mailbox.repository import MailboxRepository
from app.models import ContinuityCode, Line
from app.roster.repository import RosterLookups
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Issued:
    code: str  # shown to the visitor once, then gone
    expires_at: datetime
    digest: str


@dataclass(frozen=True, slots=True)
class Match:
    """A code that names a counsellor who still works on the line (and is active)."""

    staff_id: uuid.UUID
    alias: str
    line_key: str
    expires_at: datetime
    # None for a mailbox code: a thread has no handover note (its counsellor has the thread).
    sealed: SealedNote | None
    normalised: str
    digest: str

    async def open_note(self) -> str:
        """The handover note (Argon2id then AES-GCM, off the event loop); "" if unreadable."""
        if self.sealed is None:
            return ""
        note = await asyncio.to_thread(codes.open_note, self.sealed, self.normalised, self.digest)
        return note or ""


def _ceil_hour(moment: datetime) -> datetime:
    """Expiry is kept to the hour: it must not tell when a chat happened any finer."""
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


class ContinuityService:
    def kdf(self, settings: Settings) -> KdfParams:
        return KdfParams(
            iterations=settings.continuity_kdf_iterations,
            memory_kib=settings.continuity_kdf_memory_kib,
        )

    async def _digest(self, settings: Settings, normalised: str) -> str:
        key = codes.digest_key(settings.secret_key.get_secret_value())
        return await asyncio.to_thread(codes.digest, key, normalised)

    def expiry(self, settings: Settings, now: datetime) -> datetime:
        return _ceil_hour(now + timedelta(days=settings.continuity_code_days))

    async def issue(
        self,
        session: AsyncSession,
        settings: Settings,
        *,
        line_key: str,
        staff_id: uuid.UUID,
        language: str,
        note: str,
        now: datetime,
    ) -> Issued:
        repo = ContinuityCodeRepository(session)
        await repo.delete_expired(now)
        while True:
            code = codes.new_code(language)
            normalised = codes.normalise(code)
            assert normalised is not None
            digest = await self._digest(settings, normalised)
            # 2^55 codes: a repeat is next to impossible, but must never merge two visitors.
            if await repo.by_digest(digest) is None:
                break
        sealed = await asyncio.to_thread(
            codes.seal_note, note[: codes.MAX_NOTE_CHARS], normalised, digest, self.kdf(settings)
        )
        expires_at = self.expiry(settings, now)
        await repo.add(
            ContinuityCode(
                digest=digest,
                line_key=line_key,
                staff_id=staff_id,
                expires_at=expires_at,
                kdf_salt=sealed.salt,
                note_nonce=sealed.nonce,
                note_sealed=sealed.sealed,
            )
        )
        return Issued(code, expires_at, digest)

    async def find(
        self,
        session: AsyncSession,
        settings: Settings,
        code: str,
        line_key: str,
        now: datetime,
    ) -> Match | None:
        """The code's counsellor, renewing the code; None for every kind of miss alike
        (unknown, expired, deleted, another line), so the answer tells nothing."""
        normalised = codes.normalise(code)
        if normalised is None:
            return None
        repo = ContinuityCodeRepository(session)
        digest = await self._digest(settings, normalised)
        row = await repo.by_digest(digest)
        if row is None:
            # The same digest finds a mailbox thread: its counsellor, as a code's would be.
            return await self._thread_match(session, digest, normalised, line_key, now)
        if row.expires_at <= now:
            await repo.delete(row)
            return None
        if row.line_key != line_key:
            return None
        row.expires_at = self.expiry(settings, now)
        await session.flush()
        lookups = RosterLookups(session)
        staff = await lookups.staff(row.staff_id)
        # A counsellor who left the line or was deactivated: the code still works, but as
        # "not on duty" with no next shift (the visitor may wait for anyone).
        alias = staff.alias if staff is not None else ""
        return Match(
            staff_id=row.staff_id,
            alias=alias,
            line_key=row.line_key,
            expires_at=row.expires_at,
            sealed=SealedNote(row.kdf_salt, row.note_nonce, row.note_sealed),
            normalised=normalised,
            digest=digest,
        )

    async def _thread_match(
        self, session: AsyncSession, digest: str, normalised: str, line_key: str, now: datetime
    ) -> Match | None:
        thread = await MailboxRepository(session).by_digest(digest)
        if thread is None or thread.staff_id is None or thread.line_key != line_key:
            return None
        line = await session.get(Line, line_key)
        if line is None or mailbox_expired(thread.last_at, line.mailbox_retention_days, now):
            return None
        staff = await RosterLookups(session).staff(thread.staff_id)
        return Match(
            staff_id=thread.staff_id,
            alias=staff.alias if staff is not None else "",
            line_key=line_key,
            expires_at=thread.last_at + timedelta(days=line.mailbox_retention_days),
            sealed=None,
            normalised=normalised,
            digest=digest,
        )

    async def alive(self, session: AsyncSession, digest: str, now: datetime) -> bool:
        """Whether a continuity code, or a claimed mailbox thread, has this digest (a chat
        started with either goes to its counsellor, so times may be booked with either)."""
        row = await ContinuityCodeRepository(session).by_digest(digest)
        if row is not None:
            return row.expires_at > now
        thread = await MailboxRepository(session).by_digest(digest)
        if thread is None or thread.staff_id is None:
            return False
        line = await session.get(Line, thread.line_key)
        return line is not None and not mailbox_expired(
            thread.last_at, line.mailbox_retention_days, now
        )

    async def digest_of(self, settings: Settings, code: str) -> str | None:
        """The code's keyed digest; None when it cannot be a code (after the same work)."""
        normalised = codes.normalise(code)
        # The same Argon2id work either way, so a malformed code takes as long as a wrong one.
        digest = await self._digest(settings, normalised or code[: codes.MAX_CODE_CHARS])
        return digest if normalised is not None else None

    async def delete(self, session: AsyncSession, settings: Settings, code: str) -> bool:
        """Whether any row went: the code, or a booked chat or offered times it left."""
        digest = await self.digest_of(settings, code)
        if digest is None:
            return False
        # Its booked chats and offered times go with it (app/bookings).
        booked = await BookingRepository(session).delete_for_digest(digest)
        offered = await BookingOfferRepository(session).delete_for_digest(digest)
        code_gone = await ContinuityCodeRepository(session).delete_by_digest(digest)
        return code_gone or bool(booked or offered)

    async def purge_expired(self, session: AsyncSession, now: datetime) -> int:
        return await ContinuityCodeRepository(session).delete_expired(now)


def epoch(moment: datetime) -> int:
    return math.floor(moment.timestamp())


continuity_service = ContinuityService()
