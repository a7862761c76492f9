"""ORM models, one per module; importing this package registers them all on the metadata."""

from app.models.audit_entry import AuditEntry
from app.models.chat_statistic import ChatStatistic
from app.models.enrolment import Enrolment
from app.models.enums import ChatOutcome, Qualification, StaffRole
from app.models.line import Line
from app.models.line_membership import LineMembership
from app.models.recovery_code import RecoveryCode
from app.models.staff import Staff
from app.models.staff_session import StaffSession
from app.models.wrapup import Wrapup

__all__ = [
    "AuditEntry",
    "ChatOutcome",
    "ChatStatistic",
    "Enrolment",
    "Line",
    "LineMembership",
    "Qualification",
    "RecoveryCode",
    "Staff",
    "StaffRole",
    "StaffSession",
    "Wrapup",
]
