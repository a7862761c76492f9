"""Demo data: two lines with a roster, counsellors on a shift now, clearly marked demo accounts."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.directory.schemas import ServiceInput
from app.directory.service import directory_service
from app.kit.clock import utcnow
from app.lines.service import line_service, read_lines_file
from app.models import Staff
from app.models.enums import Qualification, StaffRole
from app.roster.repository import ExtraShiftRepository
from app.roster.service import RosterError, ShiftInput, line_zone, roster_service
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
        ("sv", "en", "ro"),
        3,
        ("support",),
    ),
    _Person(
        "bo",
        "Bo",
        StaffRole.counsellor,
        Qualification.psychologist,
        ("sv", "en", "ar", "fr"),
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
            await staff_service.set_membership(session, staff, line)
        what = person.role.value
        if person.qualification is not None:
            what = f"{person.qualification.value} on {', '.join(person.lines)}"
            if person.peer:
                what += ", peer"
            if person.supervisor:
                what += ", supervisor"
        accounts.append(DemoAccount(person.username, password, person.role, what))
    await session.flush()
    await seed_roster(session)
    await seed_directory(session)
    return accounts


# Made-up services (example.org), so that the referral directory can be tried.
DEMO_SERVICES = (
    ServiceInput(
        name="Demo: Boendestöd",
        description={
            "sv": "Hjälp att hitta boende, även akut.",
            "en": "Help finding housing, also at short notice.",
        },
        needs=["housing", "shelter"],
        languages=["sv", "en", "ar"],
        phone="+46 8 000 00 00",
        web="https://example.org/boende",
        opening_hours={"sv": "Vardagar 9–16", "en": "Weekdays 9–16"},
        city="Stockholm",
    ),
    ServiceInput(
        name="Demo: Juridisk rådgivning",
        description={
            "sv": "Gratis råd om uppehållstillstånd och rättigheter.",
            "en": "Free advice on residence permits and rights.",
        },
        needs=["legal_migration"],
        languages=["sv", "en"],
        email="rad@example.org",
        opening_hours={"sv": "Tisdagar 17–19", "en": "Tuesdays 17–19"},
    ),
    ServiceInput(
        name="Demo: Vägen ut",
        description={
            "sv": "Stöd för dig som vill lämna prostitution.",
            "en": "Support if you want to leave prostitution.",
        },
        needs=["exit_programmes", "work_education", "health"],
        languages=["sv", "en"],
        phone="020-00 00 00",
        opening_hours={"sv": "Dygnet runt", "en": "Around the clock"},
    ),
)


async def seed_directory(session: AsyncSession) -> None:
    """A few made-up referral services, once (a demo directory that is empty)."""
    if await directory_service.all(session):
        return
    for service in DEMO_SERVICES:
        await directory_service.create(session, service)


@dataclass(frozen=True, slots=True)
class _DemoPattern:
    line: str
    name: str
    weekdays: tuple[int, ...]
    start: int
    end: int
    needed: int
    # Everyone on every occurrence, and who is on the first two occurrences of each week.
    weekly: tuple[str, ...]
    some: tuple[str, ...] = ()


PATTERNS = (
    # The lines' published opening hours (config/lines.toml), with deliberate gaps to show.
    _DemoPattern("support", "Evening", (0, 1, 2, 3), 18 * 60, 21 * 60, 2, ("anna",), ("bo",)),
    _DemoPattern("youth", "Evening", (0, 2, 6), 19 * 60, 22 * 60, 2, ("cleo",)),
)
DEMO_SHIFT = "Demo shift"
DEMO_SHIFT_MINUTES = 4 * 60


async def seed_roster(session: AsyncSession) -> None:
    """Weekly shifts for the demo lines, and a shift covering now for every demo counsellor.

    Runs on every start of the demo: what is already there is kept, and a counsellor whose
    roster does not cover now (the demo may start at any hour) gets a shift that does.
    """
    now = utcnow()
    staff = {p.username: await StaffRepository(session).by_username(p.username) for p in PEOPLE}
    coordinator = staff["ella"]
    for spec in PATTERNS:
        existing = [
            p for p in await roster_service.patterns(session, spec.line) if p.name == spec.name
        ]
        pattern = (
            existing[0]
            if existing
            else await roster_service.create_pattern(
                session,
                spec.line,
                name=spec.name,
                weekdays=spec.weekdays,
                shift=ShiftInput(spec.start, spec.end),
                needed=spec.needed,
                valid_from=None,
                valid_until=None,
                now=now,
            )
        )
        tz = line_zone(await roster_service.line(session, spec.line))
        # From the day after tomorrow, so today's demo shift never collides with them.
        starts_on = now.astimezone(tz).date() + timedelta(days=2)
        for username in spec.weekly:
            member = staff[username]
            if member is not None:
                with contextlib.suppress(RosterError):
                    await roster_service.assign(
                        session,
                        staff_id=member.id,
                        pattern_id=pattern.id,
                        starts_on=starts_on,
                        now=now,
                    )
        for username in spec.some:
            member = staff[username]
            if member is None:
                continue
            for offset in range(2, 16):
                day = starts_on + timedelta(days=offset - 2)
                if day.weekday() in spec.weekdays[:2]:
                    with contextlib.suppress(RosterError):
                        await roster_service.assign(
                            session, staff_id=member.id, pattern_id=pattern.id, day=day, now=now
                        )
    for person in PEOPLE:
        member = staff[person.username]
        if member is None or person.role is not StaffRole.counsellor:
            continue
        for line_key in person.lines:
            await _cover_now(session, member, line_key, coordinator, now)


async def _cover_now(
    session: AsyncSession, member: Staff, line_key: str, coordinator: Staff | None, now: datetime
) -> None:
    duty = await roster_service.duty(session, member.id, now)
    if duty.until.get(line_key, 0.0) > now.timestamp():
        return
    line = await roster_service.line(session, line_key)
    tz = line_zone(line)
    local = now.astimezone(tz)
    start = local.hour * 60
    end = start + DEMO_SHIFT_MINUTES
    shift = ShiftInput(start, end - 1440 if end > 1440 else end, ends_next_day=end > 1440)
    extras = await ExtraShiftRepository(session).for_line(line_key, local.date(), local.date())
    extra = next(
        (e for e in extras if e.name == DEMO_SHIFT and e.start_minute == start), None
    ) or await roster_service.create_extra(
        session, line_key, name=DEMO_SHIFT, day=local.date(), shift=shift, needed=2, now=now
    )
    try:
        await roster_service.assign(session, staff_id=member.id, extra_shift_id=extra.id, now=now)
    except RosterError:
        # Their weekly shift overlaps the demo shift: put them on duty until it ends instead.
        _, ends_at = shift.times().window(local.date(), tz)
        await roster_service.add_duty(
            session, staff_id=member.id, line_key=line_key, until=ends_at, by=coordinator, now=now
        )
