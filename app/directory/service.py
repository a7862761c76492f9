"""The referral directory: coordinators keep it, counsellors search it and send cards.

A directory is small (tens to a few hundred services), so search filters in memory: the same
on SQLite and PostgreSQL, with case and accents folded for the text search.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.directory import csvio
from app.directory.repository import ReferralServiceRepository
from app.directory.schemas import ServiceInput, ServiceOut
from app.kit.clock import utcnow
from app.kit.errors import ApiError
from app.models import ReferralService


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def to_out(service: ReferralService) -> ServiceOut:
    return ServiceOut(
        id=service.id,
        updated_at=service.updated_at,
        name=service.name,
        description=dict(service.description),
        needs=list(service.needs),
        languages=list(service.languages),
        phone=service.phone,
        email=service.email,
        web=service.web,
        opening_hours=dict(service.opening_hours),
        city=service.city,
        notes=dict(service.notes),
    )


def _apply(service: ReferralService, data: ServiceInput) -> None:
    service.name = data.name
    service.description = dict(data.description)
    service.needs = list(data.needs)
    service.languages = list(data.languages)
    service.phone = data.phone
    service.email = data.email
    service.web = data.web
    service.opening_hours = dict(data.opening_hours)
    service.city = data.city
    service.notes = dict(data.notes)
    service.updated_at = utcnow()


@dataclass(frozen=True, slots=True)
class Search:
    need: str | None = None
    language: str | None = None
    city: str | None = None
    text: str | None = None


def _pick(texts: dict[str, str], language: str, fallbacks: Sequence[str]) -> tuple[str, str]:
    """(text, its language): the asked language, else the line's languages, else any."""
    for candidate in (language, *fallbacks):
        if texts.get(candidate):
            return texts[candidate], candidate
    for candidate, text in sorted(texts.items()):
        if text:
            return text, candidate
    return "", language


def card(service: ReferralService, language: str, fallbacks: Sequence[str]) -> dict[str, Any]:
    """A snapshot of the entry in the visitor's language, sent into the chat's transcript."""
    description, shown_in = _pick(service.description, language, fallbacks)
    hours, _ = _pick(service.opening_hours, language, fallbacks)
    notes, _ = _pick(service.notes, language, fallbacks)
    return {
        "id": str(service.id),
        "name": service.name,
        "description": description,
        "needs": list(service.needs),
        "languages": list(service.languages),
        "phone": service.phone,
        "email": service.email,
        "web": service.web,
        "opening_hours": hours,
        "city": service.city,
        "national": not service.city,
        "notes": notes,
        "language": shown_in,
    }


class DirectoryService:
    async def get(self, session: AsyncSession, service_id: uuid.UUID) -> ReferralService:
        found = await ReferralServiceRepository(session).get(service_id)
        if found is None:
            raise ApiError("not_found", "there is no such service in the directory", 404)
        return found

    async def find(self, session: AsyncSession, service_id: uuid.UUID) -> ReferralService | None:
        return await ReferralServiceRepository(session).get(service_id)

    async def create(
        self, session: AsyncSession, data: ServiceInput, service_id: uuid.UUID | None = None
    ) -> ReferralService:
        service = ReferralService(id=service_id or uuid.uuid4())
        _apply(service, data)
        return await ReferralServiceRepository(session).add(service)

    async def update(
        self, session: AsyncSession, service_id: uuid.UUID, data: ServiceInput
    ) -> ReferralService:
        service = await self.get(session, service_id)
        _apply(service, data)
        await session.flush()
        return service

    async def delete(self, session: AsyncSession, service_id: uuid.UUID) -> None:
        await ReferralServiceRepository(session).delete(await self.get(session, service_id))

    async def all(self, session: AsyncSession) -> Sequence[ReferralService]:
        return await ReferralServiceRepository(session).all()

    async def search(self, session: AsyncSession, query: Search) -> list[ReferralService]:
        """Matching services; with a city, that city's services first, then national ones."""
        words = _fold(query.text).split() if query.text else []
        city = _fold(query.city.strip()) if query.city and query.city.strip() else None
        out: list[ReferralService] = []
        for service in await self.all(session):
            if query.need and query.need not in service.needs:
                continue
            if query.language and query.language not in service.languages:
                continue
            if city is not None and service.city and _fold(service.city) != city:
                continue
            if words:
                haystack = _fold(
                    " ".join(
                        [
                            service.name,
                            service.city,
                            *service.description.values(),
                            *service.notes.values(),
                        ]
                    )
                )
                if not all(w in haystack for w in words):
                    continue
            out.append(service)
        if city is not None:
            out.sort(key=lambda s: not s.city)
        return out

    async def import_csv(self, session: AsyncSession, text: str) -> tuple[int, int]:
        """All rows or none: (created, updated), or ApiError listing every broken row."""
        parsed = csvio.parse(text)
        errors = [p for p in parsed if isinstance(p, csvio.RowError)]
        if errors:
            raise ImportRefusedError(errors)
        rows = [p for p in parsed if isinstance(p, csvio.Row)]
        existing = await ReferralServiceRepository(session).by_ids(
            {r.id for r in rows if r.id is not None}
        )
        created = updated = 0
        for row in rows:
            found = existing.get(row.id) if row.id is not None else None
            if found is not None:
                _apply(found, row.service)
                updated += 1
            else:
                service = ReferralService(id=row.id or uuid.uuid4())
                _apply(service, row.service)
                session.add(service)
                created += 1
        await session.flush()
        return created, updated

    async def export_csv(self, session: AsyncSession) -> str:
        return csvio.export(to_out(s) for s in await self.all(session))


class ImportRefusedError(ApiError):
    def __init__(self, errors: list[csvio.RowError]) -> None:
        super().__init__("import_refused", f"{len(errors)} problem(s); nothing was imported", 422)
        self.errors = errors


directory_service = DirectoryService()
