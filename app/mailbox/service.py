"""The mailbox's domain logic: threads made, found, written, claimed, answered, closed, handed
over and shredded. Services flush, never commit: the caller's unit of work decides.

The plain code exists only in the request that makes or presents it: returned once to show,
and hashed (Argon2id, then HMAC) to find the thread; nothing here stores or logs it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.bookings.service import Cancelled, booking_service, iso
from app.chats.crypto import KeyRing
from app.continuity import codes
from app.kit.clock import hour_bucket
from app.kit.errors import ApiError
from app.lines.service import LineConfig
from app.mailbox import protocol
from app.mailbox.protocol import Author, Opened, Status
from app.mailbox.repository import MailboxRepository
from app.models import MailboxMessage, MailboxStatistic, MailboxThread, Staff
from app.settings import Settings

# Hashed when a presented code cannot be a code at all, so that it costs the same.
_NOT_A_CODE = "not a code"


@dataclass(frozen=True, slots=True)
class Created:
    code: str  # shown to the visitor once, then gone
    thread: MailboxThread


def not_found() -> ApiError:
    return ApiError("no_thread", "no thread was found for this code", 404)


class MailboxService:
    async def digest(self, settings: Settings, code: str) -> str | None:
        """The code's digest (off the event loop); None if it cannot be a code, after the
        same work, so that a miss of either kind takes as long as a wrong code."""
        normalised = codes.normalise(code)
        key = codes.digest_key(settings.secret_key.get_secret_value())
        found = await asyncio.to_thread(codes.digest, key, normalised or _NOT_A_CODE)
        return found if normalised is not None else None

    async def create(
        self,
        session: AsyncSession,
        settings: Settings,
        keyring: KeyRing,
        *,
        line: LineConfig,
        language: str,
        text: str,
        now: datetime,
    ) -> Created:
        repo = MailboxRepository(session)
        key = codes.digest_key(settings.secret_key.get_secret_value())
        while True:
            code = codes.new_code(language)
            normalised = codes.normalise(code)
            assert normalised is not None
            digest = await asyncio.to_thread(codes.digest, key, normalised)
            # A repeat among 2^55 codes is next to impossible, but must never merge two
            # visitors (nor a thread with a continuity code: one lookup serves both).
            if not await repo.digest_taken(digest):
                break
        minute = protocol.to_minute(now)
        thread = MailboxThread(
            id=uuid.uuid4(),
            line_key=line.key,
            digest=digest,
            staff_id=None,
            wrapped_key=keyring.wrap(protocol.new_key(), protocol.KEY_PURPOSE),
            status=Status.waiting.value,
            language=language,
            next_seq=1,
            created_at=minute,
            last_at=minute,
            waiting_since=minute,
            counted=False,
        )
        await repo.add(thread)
        await self._add(
            session, keyring, thread, Author.visitor, {"kind": "text", "text": text}, None, now
        )
        return Created(code, thread)

    async def find(
        self,
        session: AsyncSession,
        settings: Settings,
        code: str,
        line_of: Any,
        now: datetime,
    ) -> MailboxThread | None:
        """The code's thread; None for every kind of miss alike (unknown, deleted, expired).
        `line_of(key)` gives a line's settings (for its retention)."""
        digest = await self.digest(settings, code)
        if digest is None:
            return None
        repo = MailboxRepository(session)
        thread = await repo.by_digest(digest)
        if thread is None:
            return None
        line: LineConfig | None = line_of(thread.line_key)
        days = protocol.retention_days(line.mailbox_retention_days if line else None)
        if protocol.expired(thread.last_at, days, now):
            return None  # the sweep shreds it; until then it is as good as gone
        return thread

    async def by_digest(self, session: AsyncSession, digest: str) -> MailboxThread | None:
        return await MailboxRepository(session).by_digest(digest)

    async def locked(self, session: AsyncSession, thread_id: uuid.UUID) -> MailboxThread:
        thread = await MailboxRepository(session).by_id_for_update(thread_id)
        if thread is None:
            raise ApiError("not_found", "there is no such thread (it may have been deleted)", 404)
        return thread

    async def _add(
        self,
        session: AsyncSession,
        keyring: KeyRing,
        thread: MailboxThread,
        author: Author,
        content: dict[str, Any],
        staff_id: uuid.UUID | None,
        now: datetime,
    ) -> None:
        key = keyring.unwrap(thread.wrapped_key, protocol.KEY_PURPOSE)
        seq = thread.next_seq
        nonce, sealed = protocol.seal(key, thread.id, seq, content)
        thread.next_seq = seq + 1
        minute = protocol.to_minute(now)
        await MailboxRepository(session).add_message(
            MailboxMessage(
                id=uuid.uuid4(),
                thread_id=thread.id,
                seq=seq,
                author=author.value,
                staff_id=staff_id,
                at=minute,
                nonce=nonce,
                sealed=sealed,
            )
        )
        if author is not Author.note:
            thread.last_at = minute

    async def opened(
        self, session: AsyncSession, keyring: KeyRing, thread: MailboxThread
    ) -> list[Opened]:
        key = keyring.unwrap(thread.wrapped_key, protocol.KEY_PURPOSE)
        return [
            Opened(
                id=m.id,
                seq=m.seq,
                author=Author(m.author),
                at=m.at,
                content=protocol.open_sealed(key, thread.id, m.seq, m.nonce, m.sealed),
            )
            for m in await MailboxRepository(session).messages(thread.id)
        ]

    async def write(
        self,
        session: AsyncSession,
        keyring: KeyRing,
        thread: MailboxThread,
        text: str,
        now: datetime,
    ) -> None:
        """The visitor writes: the thread waits again (a closed one reopens to the same
        counsellor)."""
        await self._add(
            session, keyring, thread, Author.visitor, {"kind": "text", "text": text}, None, now
        )
        if thread.status != Status.waiting:
            thread.status = Status.waiting.value
            thread.waiting_since = protocol.to_minute(now)
        await session.flush()

    async def answer(
        self,
        session: AsyncSession,
        keyring: KeyRing,
        thread: MailboxThread,
        staff: Staff,
        content: dict[str, Any],
        now: datetime,
    ) -> MailboxStatistic | None:
        """The counsellor answers; the thread's statistics row on its first answer."""
        await self._add(
            session,
            keyring,
            thread,
            Author.counsellor,
            {**content, "alias": staff.alias},
            staff.id,
            now,
        )
        thread.status = Status.answered.value
        thread.waiting_since = None
        await session.flush()
        return await self.count(session, thread, answered_at=now)

    async def note(
        self,
        session: AsyncSession,
        keyring: KeyRing,
        thread: MailboxThread,
        staff: Staff,
        text: str,
        now: datetime,
    ) -> None:
        await self._add(
            session,
            keyring,
            thread,
            Author.note,
            {"kind": "text", "text": text, "alias": staff.alias},
            staff.id,
            now,
        )
        await session.flush()

    async def close(self, session: AsyncSession, thread: MailboxThread) -> None:
        thread.status = Status.closed.value
        thread.waiting_since = None
        await session.flush()

    async def count(
        self, session: AsyncSession, thread: MailboxThread, *, answered_at: datetime | None
    ) -> MailboxStatistic | None:
        """The thread's anonymous statistics row, once per thread (to be held by the caller
        after its commit): at its first answer, or when it goes unanswered."""
        if thread.counted or not await MailboxRepository(session).mark_counted(thread.id):
            return None
        thread.counted = True
        return MailboxStatistic(
            id=uuid.uuid4(),
            line_key=thread.line_key,
            hour=hour_bucket(thread.created_at.timestamp()),
            first_answer_hours=None
            if answered_at is None
            else protocol.answer_hours(thread.created_at, answered_at),
        )

    async def shred(
        self, session: AsyncSession, threads: Sequence[MailboxThread]
    ) -> list[MailboxStatistic]:
        """Delete the threads, their messages and keys; rows for those never counted."""
        rows = []
        for thread in threads:
            row = await self.count(session, thread, answered_at=None)
            if row is not None:
                rows.append(row)
        await MailboxRepository(session).shred([t.id for t in threads])
        # Booked chats and offered times go with their thread (app/bookings).
        for thread in threads:
            await booking_service.forget_code(session, thread.digest)
        return rows

    async def expired(
        self, session: AsyncSession, lines: Sequence[LineConfig], now: datetime
    ) -> list[MailboxThread]:
        repo = MailboxRepository(session)
        found: list[MailboxThread] = []
        for line in lines:
            cutoff = now - timedelta(days=line.mailbox_retention_days)
            found.extend(await repo.last_before(line.key, cutoff))
        # Lines no longer active: the longest retention any line may have.
        cutoff = now - timedelta(days=protocol.retention_days(None))
        found.extend(await repo.last_before_elsewhere([line.key for line in lines], cutoff))
        return found

    async def claim(self, session: AsyncSession, thread: MailboxThread, staff: Staff) -> bool:
        """Compare-and-set: true if the thread was unclaimed and is now `staff`'s."""
        if not await MailboxRepository(session).claim(thread.id, staff.id):
            await session.refresh(thread)
            return False
        await session.refresh(thread)
        return True

    async def hand_over(
        self,
        session: AsyncSession,
        keyring: KeyRing,
        thread: MailboxThread,
        target: Staff,
        now: datetime,
    ) -> Cancelled:
        """The thread becomes `target`'s. Its booked chat (not started) and offered times lie
        in the first counsellor's shifts, when the new one may not be on duty: they are
        cancelled, and the visitor reads which in the thread (a "times_cancelled" message,
        from no one by name)."""
        thread.staff_id = target.id
        cancelled = await booking_service.cancel(session, thread.digest, now)
        if cancelled.times:
            content = {"kind": "times_cancelled", "times": [iso(t) for t in cancelled.times]}
            await self._add(session, keyring, thread, Author.counsellor, content, None, now)
        await session.flush()
        return cancelled

    async def waiting_counts(self, session: AsyncSession) -> dict[str, int]:
        return await MailboxRepository(session).waiting_counts()

    async def has_threads(self, session: AsyncSession, line_key: str) -> bool:
        return await MailboxRepository(session).has_threads(line_key)


mailbox_service = MailboxService()
