"""Roster helpers for tests: signed-in HTTP clients and shifts placed around the real time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.support.clients import sign_in_session
from tests.support.seed import PASSWORD
from tests.support.server import RunningServer

STOCKHOLM = ZoneInfo("Europe/Stockholm")


@asynccontextmanager
async def http_as(server: RunningServer, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client signed in as `username` (password and TOTP), sending its CSRF token."""
    signed_in = await sign_in_session(server, username, PASSWORD)
    async with httpx.AsyncClient(
        base_url=server.url, cookies=signed_in.cookies, headers=signed_in.headers, timeout=30
    ) as http:
        yield http


def local_now(tz: ZoneInfo = STOCKHOLM) -> datetime:
    return datetime.now(tz)


def shift_fields(start: datetime, end: datetime) -> dict[str, Any]:
    """The API fields of a shift from local `start` to local `end` (whole minutes, ≤ 24 h)."""
    start = start.replace(second=0, microsecond=0)
    day = start.date()
    end_day = end.date()
    end_text = end.strftime("%H:%M")
    if end_day > day and end.hour == 0 and end.minute == 0:
        end_text, end_day = "24:00", day
    return {
        "date": day.isoformat(),
        "start": start.strftime("%H:%M"),
        "end": end_text,
        "ends_next_day": end_day > day,
    }


def around_now(minutes_before: int, minutes_after: int) -> dict[str, Any]:
    """An extra shift covering the real time now, from `minutes_before` ago."""
    now = local_now()
    start = (now - timedelta(minutes=minutes_before)).replace(second=0, microsecond=0)
    end = (now + timedelta(minutes=minutes_after)).replace(second=0, microsecond=0)
    return shift_fields(start, end)


def future_monday(weeks_ahead: int = 2) -> date:
    today = local_now().date()
    return today - timedelta(days=today.weekday()) + timedelta(weeks=weeks_ahead)


def problem(response: httpx.Response, status: int, code: str) -> str:
    """Assert a refused request: its status and stable code; return the message."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    return str(body["detail"])
