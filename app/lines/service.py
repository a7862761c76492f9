"""Lines: stored settings, loaded from a configuration file or edited by coordinators."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.lines.repository import LineRepository
from app.lines.schemas import LineSettings
from app.models import Line
from app.models.enums import Qualification


@dataclass(frozen=True, slots=True)
class LineConfig:
    """An immutable snapshot of a line's settings, as the chat and routing code use it."""

    key: str
    name: str
    languages: tuple[str, ...]
    required_qualification: Qualification
    max_queue_length: int
    offer_timeout_seconds: int
    visitor_grace_seconds: int
    counsellor_grace_seconds: int
    language_relax_seconds: int
    max_message_length: int
    auto_accept: bool
    closed_message: dict[str, str]
    alternatives: dict[str, str]
    opening_hours: dict[str, str]
    wrapup_topics: tuple[str, ...]
    wrapup_outcomes: tuple[str, ...]
    time_zone: str = "Europe/Stockholm"
    roster_signup: bool = False
    # Seconds an ended chat's transcript is kept; 0: shredded when the chat ends.
    transcript_retention_seconds: int = 0
    privacy_note: dict[str, str] = field(default_factory=dict)
    # ({"language", "title", "text"}, ...)
    canned_responses: tuple[dict[str, str], ...] = ()
    peer_relax_seconds: int = 120
    mailbox: str = "closed"
    mailbox_answer_time: dict[str, str] = field(default_factory=dict)
    mailbox_retention_days: int = 14

    @classmethod
    def from_model(cls, line: Line) -> LineConfig:
        return cls(
            key=line.key,
            name=line.name,
            languages=tuple(line.languages),
            required_qualification=line.required_qualification,
            max_queue_length=line.max_queue_length,
            offer_timeout_seconds=line.offer_timeout_seconds,
            visitor_grace_seconds=line.visitor_grace_seconds,
            counsellor_grace_seconds=line.counsellor_grace_seconds,
            language_relax_seconds=line.language_relax_seconds,
            max_message_length=line.max_message_length,
            auto_accept=line.auto_accept,
            transcript_retention_seconds=line.transcript_retention_seconds,
            closed_message=dict(line.closed_message),
            alternatives=dict(line.alternatives),
            opening_hours=dict(line.opening_hours),
            wrapup_topics=tuple(line.wrapup_topics),
            wrapup_outcomes=tuple(line.wrapup_outcomes),
            time_zone=line.time_zone,
            roster_signup=line.roster_signup,
            privacy_note=dict(line.privacy_note or {}),
            canned_responses=tuple(dict(c) for c in line.canned_responses or ()),
            peer_relax_seconds=line.peer_relax_seconds,
            mailbox=line.mailbox,
            mailbox_answer_time=dict(line.mailbox_answer_time or {}),
            mailbox_retention_days=line.mailbox_retention_days,
        )

    def text(self, texts: dict[str, str], language: str) -> str:
        """A text in the asked language, else the line's first language, else any."""
        if language in texts:
            return texts[language]
        for fallback in self.languages:
            if fallback in texts:
                return texts[fallback]
        return next(iter(texts.values()), "")


class LineConfigError(ValueError):
    """A line configuration file that cannot be used; the message says where and why."""


def read_lines_file(path: Path) -> list[LineSettings]:
    """Parse and validate a TOML file of `[[line]]` tables."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LineConfigError(f"{path}: {exc}") from exc
    raw_lines = data.get("line")
    if not isinstance(raw_lines, list) or not raw_lines:
        raise LineConfigError(f"{path}: expected one or more [[line]] tables")
    out: list[LineSettings] = []
    for index, raw in enumerate(raw_lines, start=1):
        try:
            out.append(LineSettings.model_validate(raw))
        except ValidationError as exc:
            raise LineConfigError(f"{path}: line {index}: {exc}") from exc
    keys = [line.key for line in out]
    if len(set(keys)) != len(keys):
        raise LineConfigError(f"{path}: line keys repeat: {keys}")
    return out


class LineService:
    async def list_active(self, session: AsyncSession) -> list[Line]:
        return list(await LineRepository(session).list_active())

    async def get(self, session: AsyncSession, key: str) -> Line | None:
        return await LineRepository(session).get(key)

    def settings_of(self, line: Line) -> LineSettings:
        return LineSettings.model_validate(
            {name: getattr(line, name) for name in LineSettings.model_fields}
        )

    def changed_fields(self, line: Line, settings: LineSettings) -> list[str]:
        current = self.settings_of(line).model_dump()
        return sorted(
            name for name, value in settings.model_dump().items() if current[name] != value
        )

    async def upsert(self, session: AsyncSession, settings: LineSettings) -> Line:
        """Create the line or replace its settings."""
        repository = LineRepository(session)
        line = await repository.get(settings.key)
        values = settings.model_dump()
        if line is None:
            return await repository.add(Line(**values, is_active=True))
        for name, value in values.items():
            setattr(line, name, value)
        line.is_active = True
        await session.flush()
        return line


line_service = LineService()
