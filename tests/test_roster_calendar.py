"""A counsellor's private iCalendar feed, read back with the icalendar library."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
import icalendar
from sqlalchemy import select

from app.kit.db import unit_of_work
from app.models import CalendarFeed, Staff, StaffRole
from tests.support.roster import STOCKHOLM, future_monday, http_as, local_now
from tests.support.seed import add_counsellor, add_line, add_staff
from tests.support.server import RunningServer


def events(body: bytes) -> list[icalendar.Component]:
    calendar = icalendar.Calendar.from_ical(body)
    return list(calendar.walk("VEVENT"))


async def test_the_feed_holds_exactly_your_own_shifts_and_can_be_revoked(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_staff(rt, "ella", StaffRole.coordinator)
    anna_id = await add_counsellor(rt, "anna", on_duty=False)
    bo_id = await add_counsellor(rt, "bo", on_duty=False)
    monday = future_monday()
    async with http_as(server, "ella") as ella:
        pattern = (
            await ella.post(
                "/api/roster/lines/support/patterns",
                json={
                    "weekdays": ["mon", "wed"],
                    "start": "22:00",
                    "end": "02:00",
                    "ends_next_day": True,
                    "valid_from": monday.isoformat(),
                    "valid_until": (monday + timedelta(days=13)).isoformat(),
                },
            )
        ).json()["id"]
        assert (
            await ella.post(
                "/api/roster/assignments", json={"staff_id": anna_id, "pattern_id": pattern}
            )
        ).status_code == 201
        holiday = (monday + timedelta(days=9)).isoformat()  # the second Wednesday
        await ella.post(
            "/api/roster/lines/support/closures", json={"first_day": holiday, "last_day": holiday}
        )
        other = await ella.post(
            "/api/roster/assignments",
            json={"staff_id": bo_id, "pattern_id": pattern, "date": monday.isoformat()},
        )
        assert other.status_code == 201
        until = (local_now() + timedelta(hours=2)).replace(microsecond=0)
        await ella.post(
            "/api/roster/lines/support/duty",
            json={"staff_id": anna_id, "until": until.isoformat()},
        )

    async with http_as(server, "anna") as anna:
        created = await anna.post("/api/roster/me/calendar")
        assert created.status_code == 201
        url = created.json()["url"]
        own = (
            await anna.get(
                "/api/roster/me/shifts",
                params={
                    "start": (local_now() - timedelta(days=1)).isoformat(),
                    "end": (local_now() + timedelta(days=60)).isoformat(),
                },
            )
        ).json()
    path = urlsplit(url).path
    token = path.removeprefix("/calendar/").removesuffix(".ics")
    assert url.startswith(server.settings.public_url) and len(token) >= 40

    async with httpx.AsyncClient(base_url=server.url) as calendar_app:
        response = await calendar_app.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/calendar")
        assert "set-cookie" not in response.headers
        found = events(response.content)
        # Three night shifts (one cancelled by the holiday) and the ad hoc duty, nothing of Bo's.
        assert len(found) == 4 == len(own)
        starts = sorted(e.decoded("dtstart") for e in found)
        assert starts == sorted(datetime.fromisoformat(s["starts_at"]) for s in own)
        nights = [e for e in found if "(ad hoc)" not in str(e["summary"])]
        assert len(nights) == 3
        for night in nights:
            start = night.decoded("dtstart").astimezone(STOCKHOLM)
            end = night.decoded("dtend").astimezone(start.tzinfo)
            assert (start.hour, end.hour) == (22, 2) and end.date() == start.date() + timedelta(1)
            assert str(night["summary"]) == "Lykta: Support"
        assert holiday not in [e.decoded("dtstart").date().isoformat() for e in nights]
        assert len({str(e["uid"]) for e in found}) == 4
        assert anna_id not in response.text and bo_id not in response.text

        # The same feed again: the same events (calendar apps update, not duplicate).
        again = events((await calendar_app.get(path)).content)
        assert sorted(str(e["uid"]) for e in again) == sorted(str(e["uid"]) for e in found)

        # Only the token's digest is stored.
        async with unit_of_work(rt.sessionmaker) as session:
            feeds = (await session.execute(select(CalendarFeed))).scalars().all()
        assert (
            len(feeds) == 1
            and feeds[0].token_digest != token
            and token not in str(feeds[0].__dict__)
        )

        # A new URL replaces the old one; revoking stops it; so does a coordinator.
        async with http_as(server, "anna") as anna:
            newer = urlsplit((await anna.post("/api/roster/me/calendar")).json()["url"]).path
            assert (await calendar_app.get(path)).status_code == 404
            assert (await calendar_app.get(newer)).status_code == 200
            assert (await anna.delete("/api/roster/me/calendar")).status_code == 204
            assert (await calendar_app.get(newer)).status_code == 404
            third = urlsplit((await anna.post("/api/roster/me/calendar")).json()["url"]).path
        async with http_as(server, "ella") as ella:
            revoked = await ella.delete(f"/api/roster/staff/{anna_id}/calendar")
            assert revoked.status_code == 204
        assert (await calendar_app.get(third)).status_code == 404

        # Deactivated staff lose their feed; guesses and junk get the same 404.
        async with http_as(server, "bo") as bo:
            bo_path = urlsplit((await bo.post("/api/roster/me/calendar")).json()["url"]).path
        assert (await calendar_app.get(bo_path)).status_code == 200
        async with unit_of_work(rt.sessionmaker) as session:
            bo_row = await session.get(Staff, uuid.UUID(bo_id))
            assert bo_row is not None
            bo_row.is_active = False
        assert (await calendar_app.get(bo_path)).status_code == 404
        for junk in (
            "/calendar/" + "x" * 43 + ".ics",
            "/calendar/.ics",
            bo_path.removesuffix(".ics"),
            "/calendar/" + "y" * 3000 + ".ics",
        ):
            refused = await calendar_app.get(junk)
            assert refused.status_code == 404, junk
            assert refused.json() == {"detail": "no such calendar"}
