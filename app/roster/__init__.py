"""Rosters: shift patterns, extra shifts, closures, assignments, duty, coverage, calendars."""
