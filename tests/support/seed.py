"""Lines and staff for tests, written through the same services the product uses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyotp

from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.lines.schemas import LineSettings
from app.lines.service import line_service
from app.models import Staff
from app.models.enums import Qualification, StaffRole
from app.roster.service import roster_service
from app.runtime import Runtime
from app.staff import totp
from app.staff.repository import RecoveryCodeRepository
from app.staff.service import staff_service

PASSWORD = "correct horse battery staple"

# TOTP secrets of the accounts seeded in this test, by username (tests/support/clients.py
# computes codes from them, as an authenticator app would).
TOTP_SECRETS: dict[str, str] = {}
RECOVERY_CODES: dict[str, list[str]] = {}


def line_settings(key: str = "support", **overrides: Any) -> LineSettings:
    values: dict[str, Any] = {
        "key": key,
        "name": key.title(),
        "languages": ["sv", "en"],
        "required_qualification": "psychologist",
        "max_queue_length": 20,
        "offer_timeout_seconds": 30,
        "visitor_grace_seconds": 60,
        "counsellor_grace_seconds": 60,
        "language_relax_seconds": 0,
        "closed_message": {"sv": "Stängt just nu.", "en": "Closed right now."},
        "alternatives": {"sv": "Ring 112 vid fara.", "en": "Call 112 in an emergency."},
        "opening_hours": {"en": "Mon-Thu 18-21"},
        "wrapup_topics": ["violence", "health", "housing", "other"],
        "wrapup_outcomes": ["support given", "referred"],
    }
    values.update(overrides)
    return LineSettings.model_validate(values)


async def add_line(runtime: Runtime, key: str = "support", **overrides: Any) -> None:
    async with unit_of_work(runtime.sessionmaker) as session:
        await line_service.upsert(session, line_settings(key, **overrides))
    await runtime.lines.reload()


async def add_counsellor(
    runtime: Runtime,
    username: str,
    *,
    lines: tuple[str, ...] = ("support",),
    qualification: Qualification = Qualification.psychologist,
    languages: tuple[str, ...] = ("sv", "en"),
    capacity: int = 2,
    on_duty: bool = True,
    peer: bool = False,
    supervisor: bool = False,
    alias: str | None = None,
) -> str:
    async with unit_of_work(runtime.sessionmaker) as session:
        staff = await staff_service.create(
            session,
            username=username,
            alias=alias or username.title(),
            role=StaffRole.counsellor,
            password=PASSWORD,
            qualification=qualification,
            languages=list(languages),
            capacity=capacity,
            peer=peer,
            supervisor=supervisor,
        )
        for line in lines:
            await staff_service.set_membership(session, staff, line)
            if on_duty:
                # As a coordinator would: on duty from now, for longer than any test runs.
                await roster_service.add_duty(
                    session,
                    staff_id=staff.id,
                    line_key=line,
                    until=utcnow() + timedelta(hours=12),
                    by=None,
                    now=utcnow(),
                )
        await enrol_totp(runtime, session, staff)
        return str(staff.id)


async def add_staff(runtime: Runtime, username: str, role: StaffRole) -> str:
    """A coordinator or admin with password and TOTP."""
    async with unit_of_work(runtime.sessionmaker) as session:
        staff = await staff_service.create(
            session, username=username, alias=username.title(), role=role, password=PASSWORD
        )
        await enrol_totp(runtime, session, staff)
        return str(staff.id)


async def enrol_totp(runtime: Runtime, session: Any, staff: Staff) -> None:
    """What completing enrolment stores: a sealed TOTP secret and hashed recovery codes."""
    secret = pyotp.random_base32()
    staff.totp_secret = totp.seal(
        runtime.settings.secret_key.get_secret_value(), secret, bound_to=str(staff.id)
    )
    recovery = totp.new_recovery_codes()
    await RecoveryCodeRepository(session).replace(staff.id, recovery.digests)
    TOTP_SECRETS[staff.username] = secret
    RECOVERY_CODES[staff.username] = list(recovery.codes)
