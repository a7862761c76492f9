"""The roster API as coordinators and counsellors use it, and every bad input it refuses."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.kit.db import unit_of_work
from app.kit.migrate import upgrade
from app.models import (
    DropRequest,
    DutyAddition,
    ExtraShift,
    Line,
    RosterClosure,
    ShiftAssignment,
    ShiftPattern,
    Staff,
    StaffRole,
)
from app.models.enums import Qualification
from app.runtime import Runtime
from app.settings import Settings
from tests.conftest import ServerFactory
from tests.support.postgres import fresh_database
from tests.support.roster import (
    around_now,
    future_monday,
    http_as,
    problem,
)
from tests.support.seed import add_counsellor, add_line, add_staff
from tests.support.server import RunningServer, run_server

EVENING = {"weekdays": ["mon", "tue", "wed", "thu"], "start": "18:00", "end": "21:00"}


async def setup_lines(server: RunningServer) -> dict[str, str]:
    """Two lines, a coordinator and counsellors (not on duty); their ids by username."""
    rt = server.runtime
    await add_line(rt)
    await add_line(rt, "youth", required_qualification="volunteer")
    return {
        "ella": await add_staff(rt, "ella", StaffRole.coordinator),
        "anna": await add_counsellor(rt, "anna", on_duty=False),
        "bo": await add_counsellor(rt, "bo", on_duty=False),
        "cleo": await add_counsellor(
            rt, "cleo", lines=("youth",), qualification=Qualification.volunteer, on_duty=False
        ),
    }


async def row_counts(rt: Runtime) -> dict[str, int]:
    async with unit_of_work(rt.sessionmaker) as session:
        counts = {}
        for model in (
            ShiftPattern,
            ExtraShift,
            RosterClosure,
            ShiftAssignment,
            DropRequest,
            DutyAddition,
        ):
            counts[model.__tablename__] = (
                await session.execute(select(func.count()).select_from(model))
            ).scalar_one()
        return counts


async def create_pattern(http: httpx.AsyncClient, line: str = "support", **fields: Any) -> str:
    body = {**EVENING, "needed": 2, **fields}
    response = await http.post(f"/api/roster/lines/{line}/patterns", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def assign(http: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    return await http.post("/api/roster/assignments", json=fields)


async def test_a_week_of_needed_against_assigned_with_gaps(server: RunningServer) -> None:
    ids = await setup_lines(server)
    monday = future_monday()
    async with http_as(server, "ella") as ella:
        pattern = await create_pattern(ella, name="Evening")
        listed = (await ella.get("/api/roster/lines/support/patterns")).json()
        assert [(p["name"], p["weekdays"], p["start"], p["end"]) for p in listed] == [
            ("Evening", ["mon", "tue", "wed", "thu"], "18:00", "21:00")
        ]
        every = await assign(ella, staff_id=ids["anna"], pattern_id=pattern)
        assert every.status_code == 201 and every.json()["date"] is None
        tuesday = (monday + timedelta(days=1)).isoformat()
        once = await assign(ella, staff_id=ids["bo"], pattern_id=pattern, date=tuesday)
        assert once.status_code == 201, once.text
        closure = await ella.post(
            "/api/roster/lines/support/closures",
            json={
                "first_day": (monday + timedelta(days=3)).isoformat(),
                "last_day": (monday + timedelta(days=3)).isoformat(),
                "reason": "Holiday",
            },
        )
        assert closure.status_code == 201
        extra = await ella.post(
            "/api/roster/lines/support/extra-shifts",
            json={
                "name": "Saturday",
                "date": (monday + timedelta(days=5)).isoformat(),
                "start": "12:00",
                "end": "15:00",
                "needed": 1,
            },
        )
        assert extra.status_code == 201
        week = (await ella.get("/api/roster/lines/support/week", params={"date": tuesday})).json()

    assert week["week_start"] == monday.isoformat() and week["time_zone"] == "Europe/Stockholm"
    shown = [
        (o["date"], o["start"], o["end"], o["needed"], o["assigned"], o["status"])
        for o in week["occurrences"]
    ]
    day = [(monday + timedelta(days=n)).isoformat() for n in range(7)]
    assert shown == [
        (day[0], "18:00", "21:00", 2, 1, "gap"),
        (day[1], "18:00", "21:00", 2, 2, "covered"),
        (day[2], "18:00", "21:00", 2, 1, "gap"),
        (day[3], "18:00", "21:00", 2, 0, "cancelled"),
        (day[5], "12:00", "15:00", 1, 0, "gap"),
    ]
    tuesday_staff = week["occurrences"][1]["staff"]
    assert sorted((s["alias"], s["every_week"]) for s in tuesday_staff) == [
        ("Anna", True),
        ("Bo", False),
    ]
    assert week["occurrences"][3]["cancelled_by"] == closure.json()["id"]
    assert (
        week["occurrences"][4]["kind"] == "extra" and week["occurrences"][4]["name"] == "Saturday"
    )
    assert week["totals"] == {"occurrences": 4, "needed": 7, "assigned": 4, "missing": 3, "gaps": 3}
    hours = {h["hour_of_week"]: (h["needed"], h["assigned"]) for h in week["hours"]}
    assert len(hours) == 168
    assert hours[18] == (2, 1) and hours[20] == (2, 1) and hours[21] == (0, 0)
    assert hours[24 + 19] == (2, 2)
    assert hours[3 * 24 + 18] == (0, 0)  # closed for the holiday
    assert hours[5 * 24 + 12] == (1, 0)


async def test_bad_input_is_refused_clearly_and_changes_nothing(server: RunningServer) -> None:
    rt = server.runtime
    ids = await setup_lines(server)
    ids["dag"] = await add_counsellor(rt, "dag", on_duty=False)
    monday = future_monday()
    async with http_as(server, "ella") as ella:
        support = await create_pattern(ella)
        await add_line(rt, "old")
        old_pattern = await create_pattern(ella, "old")
        await assign(ella, staff_id=ids["anna"], pattern_id=support)
        youth_extra = await ella.post(
            "/api/roster/lines/youth/extra-shifts",
            json={"date": monday.isoformat(), "start": "20:00", "end": "22:00"},
        )
        async with unit_of_work(rt.sessionmaker) as session:
            line = await session.get(Line, "old")
            assert line is not None
            line.is_active = False
            dag = await session.get(Staff, uuid.UUID(ids["dag"]))
            assert dag is not None
            dag.is_active = False
        saturday: dict[str, Any] = {"weekdays": ["sat"], "start": "10:00", "end": "12:00"}
        spring = await create_pattern(ella, **saturday, valid_until="2030-05-31")
        await create_pattern(ella, **saturday, valid_from="2030-06-01")
        before = await row_counts(rt)

        url = "/api/roster/lines/support/patterns"
        overlap = await ella.post(
            url, json={**EVENING, "weekdays": ["thu", "fri"], "start": "20:00", "end": "23:00"}
        )
        assert "overlaps" in problem(overlap, 409, "overlapping_pattern")
        night_overlap = await ella.post(
            url,
            json={"weekdays": ["sun"], "start": "23:00", "end": "18:30", "ends_next_day": True},
        )
        problem(night_overlap, 409, "overlapping_pattern")
        zero = await ella.post(url, json={**EVENING, "weekdays": ["sat"], "end": "18:00"})
        assert "zero length" in problem(zero, 422, "invalid_times")
        backwards = await ella.post(url, json={**EVENING, "weekdays": ["sat"], "end": "17:00"})
        assert "before the start" in problem(backwards, 422, "invalid_times")
        too_long = await ella.post(
            url, json={**EVENING, "weekdays": ["sat"], "end": "19:00", "ends_next_day": True}
        )
        problem(too_long, 422, "invalid_times")
        dates = await ella.post(
            url,
            json={
                **EVENING,
                "weekdays": ["sat"],
                "valid_from": "2030-02-01",
                "valid_until": "2030-01-01",
            },
        )
        problem(dates, 422, "invalid_dates")
        removed = await ella.post("/api/roster/lines/old/patterns", json=EVENING)
        assert "removed" in problem(removed, 409, "line_removed")
        removed_extra = await ella.post(
            "/api/roster/lines/old/extra-shifts",
            json={"date": monday.isoformat(), "start": "10:00", "end": "11:00"},
        )
        problem(removed_extra, 409, "line_removed")
        problem(await assign(ella, staff_id=ids["bo"], pattern_id=old_pattern), 409, "line_removed")
        problem(
            await ella.post("/api/roster/lines/nowhere/patterns", json=EVENING), 404, "unknown_line"
        )
        zone = await ella.patch(
            "/api/roster/lines/support", json={"time_zone": "Mars/Olympus_Mons"}
        )
        assert zone.status_code == 422 and "unknown time zone" in zone.text

        unqualified = await assign(ella, staff_id=ids["cleo"], pattern_id=support)
        assert "needs a psychologist" in problem(unqualified, 409, "unqualified")
        problem(await assign(ella, staff_id=ids["dag"], pattern_id=support), 409, "staff_inactive")
        problem(
            await assign(ella, staff_id=ids["ella"], pattern_id=support), 409, "not_a_counsellor"
        )
        problem(
            await assign(ella, staff_id=str(uuid.uuid4()), pattern_id=support),
            404,
            "unknown_staff",
        )
        problem(
            await assign(ella, staff_id=ids["anna"], pattern_id=support), 409, "already_assigned"
        )
        double = await assign(ella, staff_id=ids["anna"], extra_shift_id=youth_extra.json()["id"])
        message = problem(double, 409, "double_booking")
        assert "support" in message and "youth" in message
        problem(await assign(ella, staff_id=ids["bo"]), 422, "invalid_assignment")
        problem(
            await assign(
                ella,
                staff_id=ids["bo"],
                pattern_id=support,
                date=(monday + timedelta(days=5)).isoformat(),
            ),
            422,
            "not_an_occurrence",
        )
        problem(
            await assign(ella, staff_id=ids["bo"], pattern_id=support, date="2020-01-06"),
            422,
            "not_an_occurrence",
        )
        problem(
            await ella.post(
                "/api/roster/lines/support/duty",
                json={"staff_id": ids["bo"], "until": "2020-01-01T00:00:00+00:00"},
            ),
            422,
            "in_the_past",
        )
        far = (monday + timedelta(days=60)).isoformat() + "T00:00:00+00:00"
        problem(
            await ella.post(
                "/api/roster/lines/support/duty", json={"staff_id": ids["bo"], "until": far}
            ),
            422,
            "invalid_duty",
        )
        naive = await ella.post(
            "/api/roster/lines/support/duty",
            json={"staff_id": ids["bo"], "until": "2030-01-01T00:00:00"},
        )
        assert naive.status_code == 422

        # Malformed, mistyped and unknown fields.
        for body in (
            {**EVENING, "weekdays": ["funday"]},
            {**EVENING, "weekdays": []},
            {**EVENING, "weekdays": ["mon", "mon"]},
            {**EVENING, "start": "25:00"},
            {**EVENING, "start": "24:00"},
            {**EVENING, "needed": 0},
            {**EVENING, "needed": "two"},
            {**EVENING, "colour": "red"},
            {**EVENING, "name": "x" * 101},
            ["not", "an", "object"],
        ):
            assert (await ella.post(url, json=body)).status_code == 422, body
        raw = await ella.post(url, content=b"{nope", headers={"content-type": "application/json"})
        assert raw.status_code == 422
        assert (await ella.post(url, json={**EVENING, "name": "x" * 70_000})).status_code == 413
        assert (await ella.get("/api/roster/patterns/not-a-uuid")).status_code == 422
        problem(await ella.get(f"/api/roster/patterns/{uuid.uuid4()}"), 404, "unknown_pattern")
        assert (
            await ella.get("/api/roster/lines/support/week", params={"date": "soon"})
        ).status_code == 422

        longer = await ella.patch(f"/api/roster/patterns/{spring}", json={"valid_until": None})
        problem(longer, 409, "overlapping_pattern")
        kept = (await ella.get(f"/api/roster/patterns/{spring}")).json()
        assert kept["valid_until"] == "2030-05-31"
        assert await row_counts(rt) == before


async def test_an_extra_shift_is_changed_and_moved_with_its_counsellors(
    server: RunningServer,
) -> None:
    ids = await setup_lines(server)
    monday = future_monday()
    saturday = (monday + timedelta(days=5)).isoformat()
    async with http_as(server, "ella") as ella:
        evening = await create_pattern(ella)  # Monday to Thursday, 18:00-21:00
        assert (await assign(ella, staff_id=ids["anna"], pattern_id=evening)).status_code == 201
        created = await ella.post(
            "/api/roster/lines/support/extra-shifts",
            json={"name": "Campaign", "date": saturday, "start": "12:00", "end": "15:00"},
        )
        extra = created.json()["id"]
        url = f"/api/roster/extra-shifts/{extra}"
        assert (await assign(ella, staff_id=ids["anna"], extra_shift_id=extra)).status_code == 201

        # Renamed, needing two, an hour later: Anna is still on it.
        changed = await ella.patch(
            url, json={"name": "TV campaign", "needed": 2, "start": "13:00", "end": "16:00"}
        )
        assert changed.status_code == 200, changed.text
        out = changed.json()
        assert (out["name"], out["needed"], out["date"], out["start"], out["end"]) == (
            "TV campaign",
            2,
            saturday,
            "13:00",
            "16:00",
        )
        week = (await ella.get("/api/roster/lines/support/week", params={"date": saturday})).json()
        shown = next(o for o in week["occurrences"] if o["kind"] == "extra")
        assert (shown["start"], shown["end"], shown["needed"], shown["status"]) == (
            "13:00",
            "16:00",
            2,
            "gap",
        )
        assert [s["alias"] for s in shown["staff"]] == ["Anna"]

        # Into Anna's Monday evening: refused, naming both shifts; nothing moves.
        clash = await ella.patch(
            url, json={"date": monday.isoformat(), "start": "20:00", "end": "23:00"}
        )
        message = problem(clash, 409, "double_booking")
        assert "Anna" in message and f"{monday.isoformat()} 18:00" in message
        # Into the past, or with half a time, a bad count or an unknown field: refused.
        past = await ella.patch(url, json={"date": "2020-01-04"})
        problem(past, 422, "in_the_past")
        for body in (
            {"start": "14:00"},
            {"ends_next_day": True},
            {"needed": 0},
            {"end": "25:00", "start": "10:00"},
            {"room": "B"},
            {"name": "x" * 101},
            ["not", "an", "object"],
        ):
            assert (await ella.patch(url, json=body)).status_code == 422, body
        assert (await ella.patch(url, json={"name": "x" * 70_000})).status_code == 413
        backwards = await ella.patch(url, json={"start": "16:00", "end": "13:00"})
        problem(backwards, 422, "invalid_times")
        problem(
            await ella.patch(f"/api/roster/extra-shifts/{uuid.uuid4()}", json={"needed": 1}),
            404,
            "unknown_extra_shift",
        )
        kept = (await ella.get("/api/roster/lines/support/week", params={"date": saturday})).json()
        assert [
            (o["date"], o["start"], o["end"], o["needed"])
            for o in kept["occurrences"]
            if o["kind"] == "extra"
        ] == [(saturday, "13:00", "16:00", 2)]

        # Moved to the Friday before, across midnight: still hers.
        friday = (monday + timedelta(days=4)).isoformat()
        night = await ella.patch(
            url, json={"date": friday, "start": "22:00", "end": "02:00", "ends_next_day": True}
        )
        assert night.status_code == 200, night.text
        assert night.json()["ends_next_day"] is True
        moved = (await ella.get("/api/roster/lines/support/week", params={"date": friday})).json()
        shown = next(o for o in moved["occurrences"] if o["kind"] == "extra")
        assert (shown["date"], shown["start"], [s["alias"] for s in shown["staff"]]) == (
            friday,
            "22:00",
            ["Anna"],
        )


async def test_who_may_do_what(server: RunningServer) -> None:
    ids = await setup_lines(server)
    async with http_as(server, "ella") as ella:
        pattern = await create_pattern(ella)
    manager_only = [
        ("GET", "/api/roster/lines", None),
        ("POST", "/api/roster/lines/support/patterns", EVENING),
        ("PATCH", "/api/roster/lines/support", {"signup": True}),
        ("DELETE", f"/api/roster/patterns/{pattern}", None),
        ("POST", "/api/roster/assignments", {"staff_id": ids["anna"], "pattern_id": pattern}),
        ("GET", "/api/roster/lines/support/week", None),
        ("GET", "/api/roster/drop-requests", None),
        (
            "POST",
            "/api/roster/lines/support/duty",
            {"staff_id": ids["anna"], "until": "2099-01-01T00:00:00Z"},
        ),
        ("GET", "/api/stats/lines/support/demand", None),
        ("GET", "/api/stats/export.csv", None),
    ]
    counsellor_only = [
        ("GET", "/api/roster/me/shifts", None),
        ("GET", "/api/roster/me/open-shifts", None),
        ("POST", "/api/roster/me/signups", {"pattern_id": pattern, "date": "2099-01-05"}),
        ("POST", "/api/roster/me/calendar", None),
    ]
    before = await row_counts(server.runtime)
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        for method, path, body in manager_only + counsellor_only:
            response = await anonymous.request(method, path, json=body)
            assert response.status_code == 401, (path, response.text)
    async with http_as(server, "anna") as anna:
        for method, path, body in manager_only:
            response = await anna.request(method, path, json=body)
            assert response.status_code == 403, (path, response.text)
    async with http_as(server, "ella") as ella:
        for method, path, body in counsellor_only:
            response = await ella.request(method, path, json=body)
            assert response.status_code == 403, (path, response.text)
    assert await row_counts(server.runtime) == before


async def test_sign_ups_fill_open_places_and_stop_when_full(server: RunningServer) -> None:
    rt = server.runtime
    ids = await setup_lines(server)
    await add_counsellor(rt, "dag", on_duty=False)
    monday = future_monday()
    async with http_as(server, "ella") as ella:
        extra = (
            await ella.post(
                "/api/roster/lines/support/extra-shifts",
                json={"date": monday.isoformat(), "start": "10:00", "end": "12:00", "needed": 1},
            )
        ).json()
        async with http_as(server, "bo") as bo:
            closed = await bo.post("/api/roster/me/signups", json={"extra_shift_id": extra["id"]})
            assert "does not take sign-ups" in problem(closed, 409, "signup_not_allowed")
            assert (await bo.get("/api/roster/me/open-shifts")).json() == []
            opened = await ella.patch("/api/roster/lines/support", json={"signup": True})
            assert opened.json()["signup"] is True
            open_shifts = (
                await bo.get(
                    "/api/roster/me/open-shifts",
                    params={
                        "start": f"{monday.isoformat()}T00:00:00+01:00",
                        "end": f"{(monday + timedelta(days=1)).isoformat()}T00:00:00+01:00",
                    },
                )
            ).json()
            assert [(s["key"], s["open_places"]) for s in open_shifts] == [(f"x:{extra['id']}", 1)]
            taken = await bo.post("/api/roster/me/signups", json={"extra_shift_id": extra["id"]})
            assert taken.status_code == 201 and taken.json()["source"] == "signup"
            mine = (
                await bo.get("/api/roster/me/shifts", params={"start": f"{monday}T00:00:00Z"})
            ).json()
            assert [(s["line"], s["start"], s["end"]) for s in mine] == [
                ("support", "10:00", "12:00")
            ]
        before = await row_counts(rt)
        async with http_as(server, "dag") as dag:
            full = await dag.post("/api/roster/me/signups", json={"extra_shift_id": extra["id"]})
            assert "already has the 1 counsellor" in problem(full, 409, "shift_full")
        async with http_as(server, "cleo") as cleo:
            not_mine = await cleo.post(
                "/api/roster/me/signups", json={"extra_shift_id": extra["id"]}
            )
            problem(not_mine, 409, "not_on_line")
        assert await row_counts(rt) == before
        # A coordinator may still add cover beyond the needed number.
        extra_cover = await assign(ella, staff_id=ids["anna"], extra_shift_id=extra["id"])
        assert extra_cover.status_code == 201
        week = (
            await ella.get("/api/roster/lines/support/week", params={"date": monday.isoformat()})
        ).json()
        assert [o["status"] for o in week["occurrences"]] == ["over"]


async def test_dropping_a_shift_needs_a_coordinators_approval(server: RunningServer) -> None:
    ids = await setup_lines(server)
    monday = future_monday()
    wednesday = (monday + timedelta(days=2)).isoformat()
    async with http_as(server, "ella") as ella, http_as(server, "anna") as anna:
        pattern = await create_pattern(ella)
        assignment = (await assign(ella, staff_id=ids["anna"], pattern_id=pattern)).json()
        weekly = await anna.post(
            "/api/roster/me/drop-requests", json={"assignment_id": assignment["id"]}
        )
        problem(weekly, 422, "invalid_drop")
        asked = await anna.post(
            "/api/roster/me/drop-requests",
            json={"assignment_id": assignment["id"], "date": wednesday, "note": "Exam that day"},
        )
        assert asked.status_code == 201 and asked.json()["state"] == "requested"
        again = await anna.post(
            "/api/roster/me/drop-requests",
            json={"assignment_id": assignment["id"], "date": wednesday},
        )
        problem(again, 409, "drop_pending")
        async with http_as(server, "bo") as bo:
            theirs = await bo.post(
                "/api/roster/me/drop-requests",
                json={"assignment_id": assignment["id"], "date": wednesday},
            )
            problem(theirs, 404, "unknown_assignment")

        # Until a coordinator decides, Anna is still on the shift (marked as asking to drop).
        week = (await ella.get("/api/roster/lines/support/week", params={"date": wednesday})).json()
        wed = next(o for o in week["occurrences"] if o["date"] == wednesday)
        assert wed["assigned"] == 1 and wed["staff"][0]["drop_requested"] is True
        pending = (await ella.get("/api/roster/drop-requests")).json()
        assert [(d["staff_id"], d["date"], d["note"]) for d in pending] == [
            (ids["anna"], wednesday, "Exam that day")
        ]
        approved = await ella.post(f"/api/roster/drop-requests/{pending[0]['id']}/approve")
        assert approved.json()["state"] == "approved"
        problem(
            await ella.post(f"/api/roster/drop-requests/{pending[0]['id']}/reject"),
            409,
            "drop_decided",
        )
        assert (await ella.get("/api/roster/drop-requests")).json() == []

        week = (await ella.get("/api/roster/lines/support/week", params={"date": wednesday})).json()
        assert [(o["date"], o["assigned"]) for o in week["occurrences"]] == [
            ((monday + timedelta(days=n)).isoformat(), 0 if n == 2 else 1) for n in range(4)
        ]
        shifts = (
            await anna.get("/api/roster/me/shifts", params={"start": f"{monday}T00:00:00Z"})
        ).json()
        assert wednesday not in [s["date"] for s in shifts] and len(shifts) >= 3

        # A shift that has started cannot be dropped any more.
        now_extra = (
            await ella.post("/api/roster/lines/support/extra-shifts", json=around_now(30, 30))
        ).json()
        on_now = (await assign(ella, staff_id=ids["bo"], extra_shift_id=now_extra["id"])).json()
        async with http_as(server, "bo") as bo:
            late = await bo.post(
                "/api/roster/me/drop-requests", json={"assignment_id": on_now["id"]}
            )
            problem(late, 422, "in_the_past")

        # A coordinator can also take someone off one date directly.
        thursday = (monday + timedelta(days=3)).isoformat()
        off = await ella.delete(
            f"/api/roster/assignments/{assignment['id']}", params={"date": thursday}
        )
        assert off.status_code == 204
        week = (await ella.get("/api/roster/lines/support/week", params={"date": wednesday})).json()
        assert [o["assigned"] for o in week["occurrences"]] == [1, 1, 0, 0]
        assert (await ella.delete(f"/api/roster/assignments/{assignment['id']}")).status_code == 204
        week = (await ella.get("/api/roster/lines/support/week", params={"date": wednesday})).json()
        assert [o["assigned"] for o in week["occurrences"]] == [0, 0, 0, 0]


async def test_a_roster_endpoint_flood_is_refused(lykta: ServerFactory) -> None:
    async with lykta(http_rate_per_minute=8) as server:
        await setup_lines(server)
        async with http_as(server, "ella") as ella:
            statuses = [
                (await ella.get("/api/roster/lines/support/patterns")).status_code
                for _ in range(10)
            ]
        # Sign-ins are limited apart; every other request of the client counts.
        assert statuses == [200] * 8 + [429] * 2


@pytest.mark.postgres
async def test_the_roster_on_postgresql(settings_for: Callable[..., Settings]) -> None:
    """The same week, refusals and sign-up lock on PostgreSQL (row locks, dates, constraints)."""
    async with fresh_database() as url:
        await upgrade(url)
        async with run_server(settings_for(database_url=url)) as server:
            await test_a_week_of_needed_against_assigned_with_gaps(server)
            async with http_as(server, "ella") as ella:
                pattern = (await ella.get("/api/roster/lines/support/patterns")).json()[0]["id"]
                anna = next(
                    s["staff_id"]
                    for s in (
                        await ella.get(
                            "/api/roster/lines/support/week",
                            params={"date": future_monday().isoformat()},
                        )
                    ).json()["occurrences"][0]["staff"]
                )
                before = await row_counts(server.runtime)
                again = await assign(ella, staff_id=anna, pattern_id=pattern)
                problem(again, 409, "already_assigned")
                assert await row_counts(server.runtime) == before

                # Two counsellors take the last place at the same moment: one gets it.
                await add_counsellor(server.runtime, "dag", on_duty=False)
                await ella.patch("/api/roster/lines/support", json={"signup": True})
                extra = (
                    await ella.post(
                        "/api/roster/lines/support/extra-shifts",
                        json={
                            "date": future_monday().isoformat(),
                            "start": "08:00",
                            "end": "09:00",
                        },
                    )
                ).json()
                async with http_as(server, "bo") as bo, http_as(server, "dag") as dag:
                    results = await asyncio.gather(
                        *(
                            who.post("/api/roster/me/signups", json={"extra_shift_id": extra["id"]})
                            for who in (bo, dag)
                        )
                    )
                assert sorted(r.status_code for r in results) == [201, 409]
                problem(next(r for r in results if r.status_code == 409), 409, "shift_full")
