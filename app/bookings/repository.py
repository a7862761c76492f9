from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete

from app.kit.repository import RepositoryBase
from app.models import Booking, BookingOffer


class BookingRepository(RepositoryBase[Booking]):
    model = Booking

    async def taken(self, staff_id: uuid.UUID, times: Collection[datetime]) -> Sequence[Booking]:
        return await self.get_all(
            self.select().where(Booking.staff_id == staff_id, Booking.starts_at.in_(times))
        )

    async def for_digest(self, digest: str) -> Sequence[Booking]:
        return await self.get_all(self.select().where(Booking.code_digest == digest))

    async def booked_digests(self, digests: Collection[str]) -> set[str]:
        if not digests:
            return set()
        rows = await self.get_all(self.select().where(Booking.code_digest.in_(digests)))
        return {b.code_digest for b in rows}

    async def between(
        self, start: datetime, end: datetime, staff_id: uuid.UUID | None = None
    ) -> Sequence[Booking]:
        query = self.select().where(Booking.starts_at >= start, Booking.starts_at <= end)
        if staff_id is not None:
            query = query.where(Booking.staff_id == staff_id)
        return await self.get_all(query.order_by(Booking.starts_at))

    async def delete_for_digest(self, digest: str) -> int:
        result = await self.session.execute(delete(Booking).where(Booking.code_digest == digest))
        return int(getattr(result, "rowcount", 0) or 0)

    async def delete_before(self, moment: datetime) -> int:
        result = await self.session.execute(delete(Booking).where(Booking.starts_at < moment))
        return int(getattr(result, "rowcount", 0) or 0)


class BookingOfferRepository(RepositoryBase[BookingOffer]):
    model = BookingOffer

    async def delete_for_digest(self, digest: str) -> int:
        result = await self.session.execute(
            delete(BookingOffer).where(BookingOffer.code_digest == digest)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def delete_expired(self, now: datetime) -> int:
        result = await self.session.execute(
            delete(BookingOffer).where(BookingOffer.expires_at <= now)
        )
        return int(getattr(result, "rowcount", 0) or 0)
