"""Who may do what with rosters and statistics: every role check of these endpoints is here.

Coordinators and admins manage rosters and read statistics; counsellors see their own shifts,
sign up for open places and ask to drop a shift. Nothing else in app/roster or app/stats
checks a role, so this module is the one place to map onto a permission system.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status

from app.deps import CurrentStaff
from app.models import Staff, StaffRole

ROSTER_MANAGERS = frozenset({StaffRole.coordinator, StaffRole.admin})


async def require_roster_manager(staff: CurrentStaff) -> Staff:
    """Plan shifts, assign staff, approve drops, add ad hoc duty, read coverage and demand."""
    if staff.role not in ROSTER_MANAGERS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only coordinators and admins may do this")
    return staff


async def require_counsellor(staff: CurrentStaff) -> Staff:
    """Own shifts, sign-ups, drop requests and the own calendar feed."""
    if staff.role is not StaffRole.counsellor:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only counsellors have shifts")
    return staff


RosterManager = Annotated[Staff, Depends(require_roster_manager)]
StatisticsReader = Annotated[Staff, Depends(require_roster_manager)]
Counsellor = Annotated[Staff, Depends(require_counsellor)]
