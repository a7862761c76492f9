"""What the statistics API returns."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel


class HourDemand(BaseModel):
    """One local hour of the week over the period: 0 = Monday 00:00–01:00 … 167 = Sunday 23:00."""

    hour_of_week: int
    weekday: str
    hour: int
    # How many times this hour of the week occurs in the period (for per-week averages).
    weeks: int
    requested: int
    answered: int
    abandoned: int
    turned_away: int
    requested_per_week: float
    median_wait_seconds: float | None
    p90_wait_seconds: float | None


class DemandTotals(BaseModel):
    requested: int
    answered: int
    abandoned: int
    turned_away: int
    median_wait_seconds: float | None
    p90_wait_seconds: float | None


class DemandOut(BaseModel):
    line: str
    time_zone: str
    first_day: dt.date
    last_day: dt.date
    hours: list[HourDemand]
    totals: DemandTotals


class WrapupPeriod(BaseModel):
    """One week (from Monday) or month of a line: counts, null where fewer than
    `WrapupStatsOut.small_count` (too few to show)."""

    start: dt.date
    # The first day after the period.
    end: dt.date
    wrapups: int | None
    topics: dict[str, int | None]
    outcomes: dict[str, int | None]
    # Answered chats, and of them by risk level at the chat's end and those whose visitor
    # pressed "in danger".
    chats: int | None
    risk: dict[str, int | None]
    in_danger: int | None


class WrapupStatsOut(BaseModel):
    line: str
    time_zone: str
    period: str
    first_day: dt.date
    last_day: dt.date
    small_count: int
    topics: list[str]
    outcomes: list[str]
    risk_levels: list[str]
    periods: list[WrapupPeriod]
