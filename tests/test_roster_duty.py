"""Duty follows the roster, end to end, on the real clock: routing, shift ends, openings."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from websockets.exceptions import ConnectionClosed

from app.chats import background
from app.kit.db import unit_of_work
from app.models import StaffRole, StaffSession
from tests.conftest import ServerFactory
from tests.support.clients import open_chat, open_staff, open_visitor
from tests.support.roster import (
    STOCKHOLM,
    around_now,
    http_as,
    local_now,
    shift_fields,
)
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer

# Waiting for a shift to end on the real clock: a bound on failure, not a timing claim.
SHIFT_END_WAIT = 120.0


def duty_of(line: dict[str, Any]) -> dict[str, Any]:
    """A line's duty as `hello` and `duty` frames give it (they carry the line's material too)."""
    return {k: line[k] for k in ("key", "name", "on_duty", "on_duty_until")}


def next_minute(at_least: float) -> datetime:
    """The first whole local minute at least `at_least` seconds from now."""
    now = local_now()
    boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while (boundary - now).total_seconds() < at_least:
        boundary += timedelta(minutes=1)
    return boundary


async def extra_shift(http: httpx.AsyncClient, fields: dict[str, object], needed: int = 1) -> str:
    response = await http.post(
        "/api/roster/lines/support/extra-shifts", json={**fields, "needed": needed}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def put_on(http: httpx.AsyncClient, staff_id: str, extra_id: str) -> str:
    response = await http.post(
        "/api/roster/assignments", json={"staff_id": staff_id, "extra_shift_id": extra_id}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_routing_offers_only_to_counsellors_on_shift_and_stops_at_the_shift_end(
    lykta: ServerFactory,
) -> None:
    async with lykta(duty_before_minutes=0, duty_after_minutes=0) as server:
        rt = server.runtime
        await add_line(rt, counsellor_grace_seconds=600)
        await add_staff(rt, "ella", StaffRole.coordinator)
        anna_id = await add_counsellor(rt, "anna", capacity=3, on_duty=False)
        bo_id = await add_counsellor(rt, "bo", capacity=1, on_duty=False)
        await add_counsellor(rt, "cleo", on_duty=False)
        end = next_minute(at_least=20)
        async with http_as(server, "ella") as ella:
            start = local_now().replace(second=0, microsecond=0) - timedelta(minutes=1)
            await put_on(ella, anna_id, await extra_shift(ella, shift_fields(start, end)))
            until = (local_now() + timedelta(hours=1)).isoformat()
            bo_duty = await ella.post(
                "/api/roster/lines/support/duty", json={"staff_id": bo_id, "until": until}
            )
            assert bo_duty.status_code == 201

        anna = await open_staff(server, "anna", PASSWORD)
        (line,) = anna.hello["lines"]
        assert line["on_duty"] is True and line["on_duty_until"] == end.timestamp()
        # The presence routing reads ends exactly at the shift end: no refresh is needed to stop.
        presence = await rt.broker.get_presence(anna_id)
        assert presence is not None and presence.duty == {"support": end.timestamp()}
        cleo = await open_staff(server, "cleo", PASSWORD)
        assert [duty_of(line) for line in cleo.hello["lines"]] == [
            {"key": "support", "name": "Support", "on_duty": False, "on_duty_until": None}
        ]

        first = await open_visitor(server)
        await first.start()
        await anna.accept((await anna.expect("offer", chat_id=first.chat_id))["chat_id"])
        await cleo.expect_none("offer", within=0.5)
        bo = await open_staff(server, "bo", PASSWORD)
        second = await open_visitor(server)
        await second.start()
        await bo.accept((await bo.expect("offer", chat_id=second.chat_id))["chat_id"])

        # The shift ends: Anna is told she is off duty.
        off = await anna.expect(
            "duty", timeout=SHIFT_END_WAIT, where=lambda f: not f["lines"][0]["on_duty"]
        )
        assert [duty_of(line) for line in off["lines"]] == [
            {"key": "support", "name": "Support", "on_duty": False, "on_duty_until": None}
        ]
        assert time.time() >= end.timestamp()

        # A new visitor waits (Bo keeps the line open) and is not offered to Anna or Cleo,
        # though both are available with room.
        third = await open_visitor(server)
        await third.start()
        assert (await third.expect("queue.position"))["position"] == 1
        await anna.expect_none("offer", within=1.5)
        await cleo.expect_none("offer", within=0.1)
        # Anna finishes the chat she has.
        await anna.say(first.chat_id, "I am still here for you.")
        assert (await first.expect("message", sender="counsellor"))["text"].startswith("I am")
        # When Bo, still on duty, has room, the waiting chat is his.
        await bo.send({"type": "end", "chat_id": second.chat_id})
        offer = await bo.expect("offer")
        assert offer["chat_id"] == third.chat_id


async def test_a_line_closes_and_opens_by_the_roster_as_a_visitor_sees_it(
    lykta: ServerFactory,
) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt, counsellor_grace_seconds=1)
        await add_staff(rt, "ella", StaffRole.coordinator)
        anna_id = await add_counsellor(rt, "anna", capacity=1, on_duty=False)
        tomorrow = local_now().replace(hour=18, minute=0, second=0, microsecond=0) + timedelta(
            days=1
        )
        async with http_as(server, "ella") as ella, httpx.AsyncClient(base_url=server.url) as web:
            await put_on(
                ella,
                anna_id,
                await extra_shift(ella, shift_fields(tomorrow, tomorrow + timedelta(hours=3))),
            )
            anna = await open_staff(server, "anna", PASSWORD)
            assert anna.hello["lines"][0]["on_duty"] is False

            # Closed: the visitor is told at once, with when the roster opens the line next.
            early = await open_visitor(server)
            await early.send({"type": "start", "line": "support", "language": "en"})
            closed = await early.expect("line.closed")
            assert closed["reason"] == "closed"
            assert closed["next_open_at"] == tomorrow.timestamp()
            public = (await web.get("/api/lines/support")).json()
            assert public["open"] is False and public["next_open_at"] == tomorrow.timestamp()
            assert public["time_zone"] == "Europe/Stockholm"

            # A coordinator puts Anna on a shift now: the line opens.
            now_shift = await extra_shift(ella, around_now(30, 60))
            assignment = await put_on(ella, anna_id, now_shift)
            on = await anna.expect("duty", where=lambda f: f["lines"][0]["on_duty"])
            assert on["lines"][0]["on_duty_until"] > time.time()
            # On duty but on a break: closed for now, with no promise of tomorrow's shift (she
            # may be back in minutes).
            await anna.send({"type": "status", "status": "break"})
            await anna.expect("status", status="break")
            paused = await open_visitor(server)
            await paused.send({"type": "start", "line": "support", "language": "en"})
            closed = await paused.expect("line.closed")
            assert closed["reason"] == "closed" and closed["next_open_at"] is None
            public = (await web.get("/api/lines/support")).json()
            assert public["open"] is False and public["next_open_at"] is None
            await anna.available()
            first = await open_chat(server, anna)
            public = (await web.get("/api/lines/support")).json()
            assert public["open"] is True and public["next_open_at"] is None
            waiting = await open_visitor(server)
            await waiting.start()
            await waiting.expect("queue.position", position=1)

            # The coordinator takes Anna off the shift: the line closes.
            removed = await ella.delete(f"/api/roster/assignments/{assignment}")
            assert removed.status_code == 204
            await anna.expect("duty", where=lambda f: not f["lines"][0]["on_duty"])
            told = await waiting.expect("line.closed", timeout=10)
            assert told["next_open_at"] == tomorrow.timestamp()
            assert (await waiting.expect("chat.ended"))["reason"] == "line_closed"
            late = await open_visitor(server)
            await late.send({"type": "start", "line": "support", "language": "sv"})
            assert (await late.expect("line.closed"))["next_open_at"] == tomorrow.timestamp()
            assert (await web.get("/api/lines")).json()[0]["open"] is False
            # The chat Anna has goes on to its end.
            await first.say("are you still there?")
            await anna.expect("message", text="are you still there?")


async def test_ad_hoc_duty_until_a_given_time(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_staff(rt, "ella", StaffRole.coordinator)
    bo_id = await add_counsellor(rt, "bo", on_duty=False)
    bo = await open_staff(server, "bo", PASSWORD)
    assert bo.hello["lines"][0]["on_duty"] is False
    until = (datetime.now(STOCKHOLM) + timedelta(minutes=45)).replace(microsecond=0)
    async with http_as(server, "ella") as ella:
        added = await ella.post(
            "/api/roster/lines/support/duty", json={"staff_id": bo_id, "until": until.isoformat()}
        )
        assert added.status_code == 201
        on = await bo.expect("duty", where=lambda f: f["lines"][0]["on_duty"])
        assert on["lines"][0]["on_duty_until"] == until.timestamp()
        listed = (await ella.get("/api/roster/lines/support/duty")).json()
        assert [(d["staff_id"], datetime.fromisoformat(d["ends_at"])) for d in listed] == [
            (bo_id, until)
        ]
        visitor = await open_visitor(server)
        await visitor.start()
        await bo.expect("offer", chat_id=visitor.chat_id)
        ended = await ella.delete(f"/api/roster/duty/{added.json()['id']}")
        assert ended.status_code == 204
        await bo.expect("duty", where=lambda f: not f["lines"][0]["on_duty"])


@pytest.mark.parametrize("batch", [100, 3])
async def test_one_roster_change_gives_every_connected_counsellor_their_own_duty(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """A roster change re-reads the duty of every counsellor connected to the process, a
    slice at a time with a few queries for each slice: each gets their own duty, and only a
    counsellor whose session has ended is signed out, whichever slice they are in."""
    monkeypatch.setattr(background, "DUTY_BATCH", batch)
    rt = server.runtime
    await add_line(rt)
    await add_staff(rt, "ella", StaffRole.coordinator)
    ids = {
        name: await add_counsellor(rt, name, on_duty=False)
        for name in ("anna", "bo", "cleo", "dag")
    }
    consoles = {name: await open_staff(server, name, PASSWORD) for name in ids}
    for console in consoles.values():
        assert console.hello["lines"][0]["on_duty"] is False
    start = local_now().replace(second=0, microsecond=0) - timedelta(minutes=1)
    shift_end = start + timedelta(hours=2)
    bo_until = (datetime.now(STOCKHOLM) + timedelta(minutes=45)).replace(microsecond=0)
    cleo_until = bo_until + timedelta(minutes=15)
    async with http_as(server, "ella") as ella:

        async def on_duty_until(name: str, until: datetime) -> None:
            added = await ella.post(
                "/api/roster/lines/support/duty",
                json={"staff_id": ids[name], "until": until.isoformat()},
            )
            assert added.status_code == 201
            on = await consoles[name].expect("duty", where=lambda f: f["lines"][0]["on_duty"])
            assert on["lines"][0]["on_duty_until"] == until.timestamp()

        await on_duty_until("bo", bo_until)

        await put_on(ella, ids["anna"], await extra_shift(ella, shift_fields(start, shift_end)))
        anna_on = await consoles["anna"].expect("duty", where=lambda f: f["lines"][0]["on_duty"])
        # The line's defaults widen a shift by a few minutes after its end.
        assert anna_on["lines"][0]["on_duty_until"] >= shift_end.timestamp()

        # Dag's session ends elsewhere (signed out on another device, say); the next roster
        # change, which is Cleo's, signs his console out and no one else's.
        async with unit_of_work(rt.sessionmaker) as session:
            await session.execute(
                delete(StaffSession).where(StaffSession.staff_id == uuid.UUID(ids["dag"]))
            )
        await on_duty_until("cleo", cleo_until)
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            # A bound on failure, not a timing claim.
            await asyncio.wait_for(consoles["dag"].ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    # Nobody else was moved: no one went off duty, and the three consoles still answer.
    for name in ("anna", "bo", "cleo"):
        await consoles[name].expect_none(
            "duty", within=0.3, where=lambda f: not f["lines"][0]["on_duty"]
        )
        await consoles[name].send({"type": "ping"})
        await consoles[name].expect("pong")
    presences = {name: await rt.broker.get_presence(ids[name]) for name in ("anna", "bo", "cleo")}
    assert presences["bo"] is not None and presences["bo"].duty == {"support": bo_until.timestamp()}
    assert presences["cleo"] is not None
    assert presences["cleo"].duty == {"support": cleo_until.timestamp()}
    assert (
        presences["anna"] is not None and presences["anna"].duty["support"] >= shift_end.timestamp()
    )
