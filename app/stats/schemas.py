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
