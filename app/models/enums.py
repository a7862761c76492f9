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
    # Interprets in other counsellors' chats and answers none: never a line's requirement.
    interpreter = "interpreter"

    def satisfies(self, required: Qualification) -> bool:
        """A psychologist may answer a line that asks for volunteers, not the other way round;
        an interpreter answers no line."""
        if self is Qualification.interpreter:
            return False
        return QUALIFICATION_RANK[self] >= QUALIFICATION_RANK[required]

    def may_work_on(self, required: Qualification) -> bool:
        """Whether a shift of a line needing `required` may have this staff member on it."""
        return self is Qualification.interpreter or self.satisfies(required)


QUALIFICATION_RANK = {Qualification.volunteer: 0, Qualification.psychologist: 1}
# What a line may require of those who answer it.
LINE_QUALIFICATIONS = frozenset({Qualification.psychologist, Qualification.volunteer})


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
