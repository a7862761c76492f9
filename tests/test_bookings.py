"""Booked chats on both brokers, over real WebSockets and HTTP: a counsellor offers times in
their own shifts to a visitor with a continuity code, the visitor picks one with the code,
and at that time the chat started with the code reaches that counsellor first, whose last
place routing keeps free for it; when they do not come, the visitor is told and anyone may
answer. Bad times, bad codes and floods are refused and change nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.bookings.service import booking_service, iso
from app.continuity.service import continuity_service
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.models import AuditEntry, Booking, BookingOffer, Staff
from app.roster.calendar import calendar_service
from app.roster.occurrences import parse_minute
from app.roster.service import ShiftInput, roster_service
from app.runtime import Runtime
from tests.conftest import ServerFactory
from tests.support.clients import StaffClient, VisitorClient, open_staff, open_visitor
from tests.support.held import written
from tests.support.roster import http_as, local_now, shift_fields
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.both_brokers

# Short, so that a counsellor who does not come is given up on within the test.
WAIT = 5


async def give_shift(rt: Runtime, staff_id: str, before: int = 10, after: int = 120) -> None:
    """An extra shift on the support line around now, with the counsellor on it."""
    now = local_now()
    fields = shift_fields(now - timedelta(minutes=before), now + timedelta(minutes=after))
    end = fields["end"]
    async with unit_of_work(rt.sessionmaker) as session:
        extra = await roster_service.create_extra(
            session,
            "support",
            name="Evening",
            day=datetime.fromisoformat(fields["date"]).date(),
            shift=ShiftInput(
                parse_minute(fields["start"]),
                parse_minute(end, allow_24=True),
                fields["ends_next_day"],
            ),
            needed=1,
            now=utcnow(),
        )
        await roster_service.assign(
            session, staff_id=uuid.UUID(staff_id), extra_shift_id=extra.id, now=utcnow()
        )


def soon() -> datetime:
    """The next whole minute at least 15 seconds ahead: a time that can still be booked."""
    return (utcnow() + timedelta(seconds=75)).replace(second=0, microsecond=0)


async def chat_with_code(server: RunningServer, counsellor: StaffClient) -> VisitorClient:
    """A chat answered by `counsellor` in which the visitor has taken a code (`.code`)."""
    visitor = await open_visitor(server)
    await visitor.start("support", "sv")
    offer = await counsellor.expect("offer", chat_id=visitor.chat_id)
    await counsellor.accept(offer["chat_id"])
    await visitor.expect("counsellor.joined")
    await counsellor.send({"type": "continuity.offer", "chat_id": visitor.chat_id, "note": ""})
    await visitor.expect("continuity.offered")
    await visitor.send({"type": "continuity.accept"})
    visitor.code = str((await visitor.expect("continuity.code"))["code"])  # type: ignore[attr-defined]
    await counsellor.expect("continuity.accepted", chat_id=visitor.chat_id)
    return visitor


async def offer_times(counsellor: StaffClient, chat_id: str, times: list[Any]) -> dict[str, Any]:
    """Send booking.offer: the error frame, or {} when the times went to the visitor."""
    await counsellor.send({"type": "booking.offer", "chat": chat_id, "times": times})
    got = await counsellor.expect(frozenset({"error", "booking.offered"}))
    return got if got["type"] == "error" else {}


async def wrap_up(counsellor: StaffClient, chat_id: str) -> None:
    """The wrap-up a counsellor owes after a chat, so they are offered chats again."""
    await counsellor.expect("wrapup.required", chat_id=chat_id)
    await counsellor.send(
        {"type": "wrapup", "chat_id": chat_id, "topics": ["other"], "outcome": "support given"}
    )
    await counsellor.expect("wrapup.saved", chat_id=chat_id)


async def pick(server: RunningServer, code: str, time: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.post(
            "/api/visitor/bookings/pick", json={"code": code, "time": time}, headers=headers
        )


async def bookings(rt: Runtime) -> list[Booking]:
    async with unit_of_work(rt.sessionmaker) as session:
        return list((await session.execute(select(Booking))).scalars().all())


async def test_offer_pick_and_at_that_time_the_chat_reaches_that_counsellor_first(
    lykta: ServerFactory,
) -> None:
    async with lykta(continuity_wait_seconds=WAIT) as server:
        rt = server.runtime
        await add_line(rt)
        anna_id = await add_counsellor(rt, "anna", alias="Anna")
        await add_counsellor(rt, "sara", alias="Sara")
        await give_shift(rt, anna_id)
        anna = await open_staff(server, "anna", PASSWORD)
        visitor = await chat_with_code(server, anna)
        code: str = visitor.code  # type: ignore[attr-defined]
        chat_id = visitor.chat_id
        assert chat_id is not None
        booked_at = soon()
        later = booked_at + timedelta(minutes=5)

        # Times that cannot be offered: each refused with its own code, nothing offered.
        now = utcnow()
        for times, error in (
            ([iso(now - timedelta(minutes=5))], "time_past"),
            ([iso(now + timedelta(hours=5))], "outside_shift"),
            ([iso(booked_at + timedelta(minutes=m)) for m in range(4)], "too_many_times"),
            ([], "no_times"),
        ):
            assert (await offer_times(anna, chat_id, times))["code"] == error
        assert (await offer_times(anna, chat_id, ["tomorrow"]))["code"] == "invalid_field"
        assert not visitor.seen("booking.offered")

        assert await offer_times(anna, chat_id, [iso(booked_at), iso(later)]) == {}
        offered = await visitor.expect("booking.offered")
        assert offered["times"] == [iso(booked_at), iso(later)]
        assert offered["name"] == "Anna"
        await visitor.send({"type": "end"})
        await visitor.expect("chat.ended")
        await visitor.close()
        await wrap_up(anna, chat_id)

        # Wrong codes and times not offered: refused; the booking is made only once.
        wrong = await pick(server, "fel kod helt och hållet", iso(booked_at))
        assert wrong.status_code == 404 and wrong.json()["code"] == "no_booking"
        assert code not in wrong.text
        other = await pick(server, code, iso(booked_at + timedelta(minutes=1)))
        assert other.status_code == 409 and other.json()["code"] == "time_not_offered"
        assert await bookings(rt) == []
        done = await pick(server, code, iso(booked_at))
        assert done.status_code == 200, done.text
        assert done.json() == {"status": "booked", "time": iso(booked_at)}
        (booking,) = await bookings(rt)
        assert str(booking.staff_id) == anna_id and booking.starts_at == booked_at
        again = await pick(server, code, iso(later))
        assert again.status_code == 404  # the offer was used up

        async with http_as(server, "anna") as http:
            today = (await http.get("/api/bookings/today")).json()["bookings"]
        if booked_at.astimezone(local_now().tzinfo).date() == local_now().date():
            assert [b["starts_at"] for b in today] == [iso(booked_at)]
            assert today[0]["line"] == "support" and today[0]["arrived"] is False
        # Signing in on another device (for the list) sets her away, as any new session does.
        await anna.expect("status", status="away")
        await anna.available()

        # Sara is free and idle too; the booked chat goes to Anna first.
        sara = await open_staff(server, "sara", PASSWORD)
        back = await open_visitor(server)
        await back.send({"type": "start", "line": "support", "language": "sv", "code": code})
        found = await back.expect("continuity.found", name="Anna")
        assert found["booked"] is True
        back_id = (await back.expect("chat.started"))["chat_id"]
        offer = await anna.expect("offer", chat_id=back_id)
        assert offer["booked"] is True and offer["continuity"] is True
        assert not [f for f in sara.received if f.get("chat_id") == back_id]
        await anna.accept(back_id)
        await back.expect("counsellor.joined", name="Anna")
        # The time is Anna's now: offering it again in any chat is refused.
        assert (await offer_times(anna, back_id, [iso(booked_at)]))["code"] == "time_taken"
        (booking,) = await bookings(rt)
        assert booking.arrived is True

        # Her calendar shows the booked chat, and nothing of the visitor or the code.
        async with unit_of_work(rt.sessionmaker) as session:
            staff = await session.get(Staff, uuid.UUID(anna_id))
            assert staff is not None
            feed = (await calendar_service.feed(session, staff, utcnow())).decode()
        assert "booked chat" in feed
        for word in code.split():
            assert word not in feed.lower()
        assert booking.code_digest not in feed

        # The offer is in the audit log: who, in which chat, the hour; never the times or
        # the code. Only the offer that went through, none of those refused.
        async def offers_audited() -> list[AuditEntry]:
            await written(rt)
            async with unit_of_work(rt.sessionmaker) as session:
                found = await session.scalars(
                    select(AuditEntry).where(AuditEntry.action == "chat.times_offered")
                )
                return list(found.all())

        async def audited() -> bool:
            return bool(await offers_audited())

        await eventually(audited, what="the offer audited")
        [entry] = await offers_audited()
        assert (str(entry.actor_id), entry.line_key, entry.chat_id) == (anna_id, "support", chat_id)
        assert (entry.target_staff_id, entry.detail, entry.at.minute) == (None, {}, 0)
        kept = " ".join(str(getattr(entry, c.key)) for c in AuditEntry.__table__.columns)
        assert booking.code_digest not in kept and iso(booked_at) not in kept
        assert code not in kept

        # Deleting the code deletes its booking and any offered times.
        async with httpx.AsyncClient(base_url=server.url) as http:
            gone = await http.post("/api/visitor/continuity/delete", json={"code": code})
            assert gone.status_code == 200
        assert await bookings(rt) == []
        await back.close()
        await sara.close()
        await anna.close()


async def book(rt: Runtime, staff_id: str, at: datetime) -> str:
    """A code of the counsellor's with a booking at `at`, as offer and pick make it; the code."""
    now = utcnow()
    async with unit_of_work(rt.sessionmaker) as session:
        issued = await continuity_service.issue(
            session,
            rt.settings,
            line_key="support",
            staff_id=uuid.UUID(staff_id),
            language="sv",
            note="",
            now=now,
        )
        await booking_service.offer(
            session,
            staff_id=uuid.UUID(staff_id),
            line_key="support",
            digest=issued.digest,
            times=[at],
            now=now,
        )
    assert await rt.continuity.pick(issued.code, at)
    return issued.code


async def test_the_counsellors_last_place_is_kept_until_the_booked_chat_arrives(
    lykta: ServerFactory,
) -> None:
    async with lykta(continuity_wait_seconds=WAIT) as server:
        rt = server.runtime
        await add_line(rt)
        anna_id = await add_counsellor(rt, "anna", alias="Anna", capacity=1)
        await give_shift(rt, anna_id)
        code = await book(rt, anna_id, soon())
        anna = await open_staff(server, "anna", PASSWORD)

        # Someone else's chat waits: Anna's one place is kept for her booked chat.
        other = await open_visitor(server)
        await other.start("support", "sv")
        await anna.expect_none("offer", within=3)

        back = await open_visitor(server)
        await back.send({"type": "start", "line": "support", "language": "sv", "code": code})
        back_id = (await back.expect("chat.started"))["chat_id"]
        await anna.expect("offer", chat_id=back_id)
        await anna.accept(back_id)
        await back.send({"type": "end"})
        await back.expect("chat.ended")
        await wrap_up(anna, back_id)
        # The booked chat came and went: the place is no longer kept.
        await anna.expect("offer", chat_id=other.chat_id)
        await other.close()
        await back.close()
        await anna.close()


async def test_when_the_booked_counsellor_does_not_come_the_visitor_is_told_and_queued(
    lykta: ServerFactory,
) -> None:
    async with lykta(continuity_wait_seconds=WAIT) as server:
        rt = server.runtime
        await add_line(rt)
        anna_id = await add_counsellor(rt, "anna", alias="Anna")
        await add_counsellor(rt, "sara", alias="Sara")
        await give_shift(rt, anna_id)
        booked_at = soon()
        code = await book(rt, anna_id, booked_at)
        sara = await open_staff(server, "sara", PASSWORD)  # Anna is not signed in

        back = await open_visitor(server)
        await back.send({"type": "start", "line": "support", "language": "sv", "code": code})
        found = await back.expect("continuity.found", name="Anna")
        assert found["booked"] is True
        back_id = (await back.expect("chat.started"))["chat_id"]
        # Until the booked time and the wait after it, the chat waits for Anna.
        missed = await back.expect("booking.missed", timeout=150)
        assert utcnow() >= booked_at + timedelta(seconds=WAIT) - timedelta(seconds=1)
        await sara.expect("offer", chat_id=back_id)
        assert next(f for f in sara.received if f.get("type") == "offer")["chat_id"] == back_id
        assert missed["chat_id"] == back_id
        await back.close()
        await sara.close()


async def test_bad_booking_input_is_refused_and_changes_nothing(lykta: ServerFactory) -> None:
    async with lykta(continuity_attempts=12) as server:
        rt = server.runtime
        await add_line(rt)
        anna_id = await add_counsellor(rt, "anna", alias="Anna")
        await give_shift(rt, anna_id)
        anna = await open_staff(server, "anna", PASSWORD)

        # A chat without a code: no times to offer.
        visitor = await open_visitor(server)
        await visitor.start("support", "sv")
        await anna.accept((await anna.expect("offer"))["chat_id"])
        assert visitor.chat_id is not None
        refused = await offer_times(anna, visitor.chat_id, [iso(soon())])
        assert refused["code"] == "no_code"
        assert (await offer_times(anna, "c" * 20, [iso(soon())]))["code"] in {
            "not_in_chat",
            "invalid_field",
        }
        await anna.send({"type": "booking.offer", "chat": visitor.chat_id, "times": "x" * 9000})
        assert (await anna.expect("error"))["code"] in {"invalid_field", "message_too_long"}

        async with httpx.AsyncClient(base_url=server.url) as http:
            url = "/api/visitor/bookings/pick"
            assert (await http.post(url, content=b"{not json")).status_code == 422
            assert (
                await http.post(url, json={"code": "a " * 200, "time": iso(soon())})
            ).status_code == 422
            assert (await http.post(url, json={"code": "a b", "time": "soon"})).status_code == 422
            extra = await http.post(url, json={"code": "a b", "time": iso(soon()), "x": 1})
            assert extra.status_code == 422 and "a b" not in extra.text
            foreign = await http.post(
                url,
                json={"code": "a b", "time": iso(soon())},
                headers={"Origin": "https://evil.example"},
            )
            assert foreign.status_code == 403
            statuses = [
                (
                    await http.post(url, json={"code": f"fel kod {n}", "time": iso(soon())})
                ).status_code
                for n in range(13)
            ]
            assert statuses[0] == 404 and statuses[-1] == 429, str(statuses)
            assert (await http.get("/api/bookings/today")).status_code == 401
        assert await bookings(rt) == []
        async with unit_of_work(rt.sessionmaker) as session:
            assert (await session.execute(select(BookingOffer))).all() == []
        await visitor.close()
        await anna.close()


async def test_the_sweep_deletes_bookings_whose_time_has_passed(lykta: ServerFactory) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt)
        anna_id = await add_counsellor(rt, "anna", alias="Anna")
        await give_shift(rt, anna_id)
        await book(rt, anna_id, soon())
        assert len(await bookings(rt)) == 1
        async with unit_of_work(rt.sessionmaker) as session:
            wait = timedelta(seconds=rt.settings.continuity_wait_seconds)
            assert await booking_service.purge(session, utcnow(), wait) == 0
            later = utcnow() + timedelta(minutes=5) + wait
            assert await booking_service.purge(session, later.astimezone(UTC), wait) == 1
        assert await bookings(rt) == []
        await asyncio.sleep(0)
