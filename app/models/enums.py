"""Enumerations shared by the ORM models and the domains."""

from __future__ import annotations

from enum import StrEnum


class StaffRole(StrEnum):
    admin = "admin"
    coordinator = "coordinator"
    counsellor = "counsellor"


class Qualification(StrEnum):
    psychologist = "psychologist"
    volunteer = "volunteer"

    def satisfies(self, required: Qualification) -> bool:
        """A psychologist may answer a line that asks for volunteers, not the other way round."""
        return QUALIFICATION_RANK[self] >= QUALIFICATION_RANK[required]


QUALIFICATION_RANK = {Qualification.volunteer: 0, Qualification.psychologist: 1}


class ChatOutcome(StrEnum):
    """How a chat ended, as recorded in the anonymous statistics."""

    answered = "answered"
    abandoned = "abandoned"
    closed = "closed"
    full = "full"


class AssignmentSource(StrEnum):
    """Who put a staff member on a shift."""

    coordinator = "coordinator"
    signup = "signup"


class DropState(StrEnum):
    requested = "requested"
    approved = "approved"
    rejected = "rejected"
