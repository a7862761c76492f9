"""Demo data: two lines, a few counsellors on duty now, clearly marked demo accounts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.lines.service import line_service, read_lines_file
from app.models.enums import Qualification, StaffRole
from app.staff.passwords import hash_password
from app.staff.repository import StaffRepository
from app.staff.service import staff_service

LINES_FILE = Path(__file__).resolve().parents[1] / "config" / "lines.toml"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    username: str
    password: str
    role: StaffRole
    description: str


@dataclass(frozen=True, slots=True)
class _Person:
    username: str
    alias: str
    role: StaffRole
    qualification: Qualification | None
    languages: tuple[str, ...]
    capacity: int
    lines: tuple[str, ...]
    peer: bool = False
    supervisor: bool = False


PEOPLE = (
    _Person(
        "anna",
        "Anna",
        StaffRole.counsellor,
        Qualification.psychologist,
        ("sv", "en"),
        3,
        ("support",),
    ),
    _Person(
        "bo",
        "Bo",
        StaffRole.counsellor,
        Qualification.psychologist,
        ("sv", "en", "ar"),
        2,
        ("support",),
        supervisor=True,
    ),
    _Person(
        "cleo",
        "Cleo",
        StaffRole.counsellor,
        Qualification.volunteer,
        ("sv", "en"),
        2,
        ("youth",),
        peer=True,
    ),
    _Person(
        "david", "David", StaffRole.counsellor, Qualification.volunteer, ("sv",), 2, ("youth",)
    ),
    _Person("ella", "Ella", StaffRole.coordinator, None, ("sv", "en"), 1, ()),
)


def _password() -> str:
    # Short enough to type from the terminal, long enough not to be guessed.
    return "demo-" + secrets.token_urlsafe(9)


async def seed_demo(session: AsyncSession, lines_file: Path = LINES_FILE) -> list[DemoAccount]:
    """Create or refresh the demo lines and accounts; every run prints fresh passwords."""
    for settings in read_lines_file(lines_file):
        await line_service.upsert(session, settings)
    repository = StaffRepository(session)
    accounts = []
    for person in PEOPLE:
        password = _password()
        staff = await repository.by_username(person.username)
        if staff is None:
            staff = await staff_service.create(
                session,
                username=person.username,
                alias=person.alias,
                role=person.role,
                password=password,
                qualification=person.qualification,
                languages=list(person.languages),
                capacity=person.capacity,
                peer=person.peer,
                supervisor=person.supervisor,
                demo=True,
            )
        else:
            staff.password_hash = hash_password(password)
            staff.is_active = True
        for line in person.lines:
            await staff_service.set_membership(session, staff, line, on_duty=True)
        what = person.role.value
        if person.qualification is not None:
            what = f"{person.qualification.value} on {', '.join(person.lines)}"
            if person.peer:
                what += ", peer"
            if person.supervisor:
                what += ", supervisor"
        accounts.append(DemoAccount(person.username, password, person.role, what))
    await session.flush()
    return accounts
