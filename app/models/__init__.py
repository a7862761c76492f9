"""ORM models, one per module; importing this package registers them all on the metadata."""

from app.models.chat_statistic import ChatStatistic
from app.models.enums import ChatOutcome, Qualification, StaffRole
from app.models.line import Line
from app.models.line_membership import LineMembership
from app.models.staff import Staff
from app.models.staff_session import StaffSession
from app.models.wrapup import Wrapup

__all__ = [
    "ChatOutcome",
    "ChatStatistic",
    "Line",
    "LineMembership",
    "Qualification",
    "Staff",
    "StaffRole",
    "StaffSession",
    "Wrapup",
]
