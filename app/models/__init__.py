"""ORM models, one per module; importing this package registers them all on the metadata."""

from app.models.audit_entry import AuditEntry
from app.models.booking import Booking, BookingOffer
from app.models.calendar_feed import CalendarFeed
from app.models.chat_statistic import ChatStatistic
from app.models.continuity_code import ContinuityCode
from app.models.debrief import Debrief
from app.models.drop_request import DropRequest
from app.models.duty_addition import DutyAddition
from app.models.enrolment import Enrolment
from app.models.enums import (
    AssignmentSource,
    ChatOutcome,
    DropState,
    Qualification,
    StaffRole,
)
from app.models.extra_shift import ExtraShift
from app.models.line import Line
from app.models.line_membership import LineMembership
from app.models.mailbox_message import MailboxMessage
from app.models.mailbox_statistic import MailboxStatistic
from app.models.mailbox_thread import MailboxThread
from app.models.recovery_code import RecoveryCode
from app.models.referral_service import ReferralService
from app.models.roster_closure import RosterClosure
from app.models.shift_assignment import ShiftAssignment
from app.models.shift_pattern import ShiftPattern
from app.models.staff import Staff
from app.models.staff_session import StaffSession
from app.models.wrapup import Wrapup

__all__ = [
    "AssignmentSource",
    "AuditEntry",
    "Booking",
    "BookingOffer",
    "CalendarFeed",
    "ChatOutcome",
    "ChatStatistic",
    "ContinuityCode",
    "Debrief",
    "DropRequest",
    "DropState",
    "DutyAddition",
    "Enrolment",
    "ExtraShift",
    "Line",
    "LineMembership",
    "MailboxMessage",
    "MailboxStatistic",
    "MailboxThread",
    "Qualification",
    "RecoveryCode",
    "ReferralService",
    "RosterClosure",
    "ShiftAssignment",
    "ShiftPattern",
    "Staff",
    "StaffRole",
    "StaffSession",
    "Wrapup",
]
