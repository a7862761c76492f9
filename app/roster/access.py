"""Who may do what with rosters and statistics, as named in the one permission module.

Coordinators and admins manage rosters and read statistics; counsellors see their own shifts,
sign up for open places and ask to drop a shift (app/staff/permissions.py has the rules).
"""

from __future__ import annotations

from app.staff.permissions import ManageRoster, OwnShifts, ReadStatistics

RosterManager = ManageRoster
StatisticsReader = ReadStatistics
Counsellor = OwnShifts

__all__ = ["Counsellor", "RosterManager", "StatisticsReader"]
