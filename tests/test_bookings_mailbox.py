"""Booked chats from the mailbox, over real HTTP and WebSockets: the thread's counsellor offers
times in their own shifts (a "times" message in the thread), the visitor books one with the
mailbox code, and a chat started with that code at that time goes to that counsellor first.
Bad input, other counsellors, wrong codes and floods are refused and change nothing;
deleting the thread deletes its booking; handing it over cancels it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.bookings.service import iso
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.models import AuditEntry, MailboxThread
from app.models.enums import StaffRole
from tests.conftest import ServerFactory
from tests.support.clients import SignedIn, api, open_staff, open_visitor, sign_in_session
from tests.support.held import written
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer
from tests.test_bookings import WAIT, bookings, give_shift, soon

pytestmark = pytest.mark.both_brokers


async def claimed_thread(server: RunningServer, anna: SignedIn) -> tuple[str, str]:
    """A visitor's thread (written while the line is closed), claimed by Anna: (id, code)."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        made = await http.post(
            "/api/visitor/mailbox/threads",
            json={"line": "support", "language": "sv", "text": "kan vi prata?"},
        )
    assert made.status_code == 201, made.text
    thread_id = (await api(server, anna, "GET", "/api/mailbox")).json()["waiting"][0]["id"]
    claimed = await api(server, anna, "POST", f"/api/mailbox/{thread_id}/claim")
    assert claimed.status_code == 200, claimed.text
    return thread_id, str(made.json()["code"])


async def visitor_post(server: RunningServer, path: str, body: Any, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        if isinstance(body, bytes):
            return await http.post(path, content=body, headers={"content-type": "application/json"})
        return await http.post(path, json=body, **kw)


async def test_times_offered_in_a_thread_are_booked_with_the_mailbox_code(
    lykta: ServerFactory,
) -> None:
    async with lykta(continuity_wait_seconds=WAIT) as server:
        rt = server.runtime
        await add_line(rt)
        anna_id = await add_counsellor(rt, "anna", alias="Anna")
        await add_counsellor(rt, "bert", alias="Bert")
        await give_shift(rt, anna_id)
        anna = await sign_in_session(server, "anna", PASSWORD)
        bert = await sign_in_session(server, "bert", PASSWORD)
        thread_id, code = await claimed_thread(server, anna)
        times_path = f"/api/mailbox/{thread_id}/times"
        booked_at = soon()
        later = booked_at + timedelta(minutes=5)

        # Times that cannot be offered, another counsellor, no session: refused, nothing sent.
        now = utcnow()
        for times, status, error in (
            ([iso(now - timedelta(minutes=5))], 422, "time_past"),
            ([iso(now + timedelta(hours=5))], 422, "outside_shift"),
            ([iso(booked_at + timedelta(minutes=m)) for m in range(4)], 422, "too_many_times"),
            ([], 422, "no_times"),
        ):
            refused = await api(server, anna, "POST", times_path, json={"times": times})
            assert (refused.status_code, refused.json()["code"]) == (status, error), refused.text
        malformed_bodies: list[Any] = [
            {"times": ["tomorrow"]},
            {"times": [1700000000]},
            {"time": []},
            [],
            None,
        ]
        for body in malformed_bodies:
            malformed = await api(server, anna, "POST", times_path, json=body)
            assert malformed.status_code == 422, body
        oversized = await api(
            server, anna, "POST", times_path, json={"times": [iso(booked_at)] * 11}
        )
        assert oversized.status_code == 422
        theirs = await api(server, bert, "POST", times_path, json={"times": [iso(booked_at)]})
        assert theirs.status_code == 403 and theirs.json()["code"] == "not_your_thread"
        anonymous = await api(server, None, "POST", times_path, json={"times": [iso(booked_at)]})
        assert anonymous.status_code in (401, 403)
        unknown = await api(
            server,
            anna,
            "POST",
            "/api/mailbox/00000000-0000-0000-0000-000000000000/times",
            json={"times": [iso(booked_at)]},
        )
        assert unknown.status_code == 404
        read = await visitor_post(server, "/api/visitor/mailbox/read", {"code": code})
        assert read.json()["times_offered"] == []
        assert [m["kind"] for m in read.json()["messages"]] == ["text"]

        # Anna offers two times: a "times" message, and the thread is answered.
        offered = await api(
            server, anna, "POST", times_path, json={"times": [iso(later), iso(booked_at)]}
        )
        assert offered.status_code == 200, offered.text
        thread = offered.json()
        assert thread["status"] == "answered"
        assert thread["times_offered"] == [iso(booked_at), iso(later)]
        assert thread["booking"] is None
        last = thread["messages"][-1]
        assert (last["kind"], last["from"], last["alias"]) == ("times", "counsellor", "Anna")
        assert last["times"] == [iso(booked_at), iso(later)]
        read = await visitor_post(server, "/api/visitor/mailbox/read", {"code": code})
        assert read.json()["messages"][-1]["times"] == [iso(booked_at), iso(later)]
        assert read.json()["times_offered"] == [iso(booked_at), iso(later)]

        # The visitor books: wrong codes, bad bodies and times not offered first.
        book = "/api/visitor/mailbox/book"
        wrong = await visitor_post(
            server, book, {"code": "fel kod helt och hållet", "time": iso(booked_at)}
        )
        assert wrong.status_code == 404 and wrong.json()["code"] == "no_thread"
        not_offered = await visitor_post(
            server, book, {"code": code, "time": iso(booked_at + timedelta(minutes=1))}
        )
        assert not_offered.status_code == 409
        assert not_offered.json()["code"] == "time_not_offered"
        bad_bodies: list[Any] = [
            b"{not json",
            {"code": code},
            {"code": code, "time": "soon"},
            {"code": code, "time": iso(booked_at), "extra": 1},
            {"code": "x" * 5000, "time": iso(booked_at)},
        ]
        for bad_body in bad_bodies:
            bad = await visitor_post(server, book, bad_body)
            assert bad.status_code == 422, bad_body
            assert code not in bad.text
        foreign = await visitor_post(
            server,
            book,
            {"code": code, "time": iso(booked_at)},
            headers={"origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        assert await bookings(rt) == []

        done = await visitor_post(server, book, {"code": code, "time": iso(booked_at)})
        assert done.status_code == 200, done.text
        assert done.json()["booking"] == {
            "at": iso(booked_at),
            "line": "support",
            "counsellor": "Anna",
        }
        assert done.json()["times_offered"] == []
        assert code not in done.text
        (booking,) = await bookings(rt)
        assert str(booking.staff_id) == anna_id and booking.starts_at == booked_at
        mine = (await api(server, anna, "GET", "/api/mailbox")).json()["mine"]
        assert [t["booked"] for t in mine] == [True]
        staff_view = (await api(server, anna, "GET", f"/api/mailbox/{thread_id}")).json()
        assert staff_view["booking"]["at"] == iso(booked_at)

        # At that time, a chat started with the mailbox code goes to Anna first.
        anna_ws = await open_staff(server, "anna", PASSWORD)
        bert_ws = await open_staff(server, "bert", PASSWORD)
        back = await open_visitor(server)
        await back.send({"type": "start", "line": "support", "language": "sv", "code": code})
        found = await back.expect("continuity.found", name="Anna")
        assert found["booked"] is True
        back_id = (await back.expect("chat.started"))["chat_id"]
        offer = await anna_ws.expect("offer", chat_id=back_id)
        assert offer["booked"] is True
        assert not [f for f in bert_ws.received if f.get("chat_id") == back_id]
        await anna_ws.accept(back_id)
        await back.expect("counsellor.joined", name="Anna")
        await back.close()
        await anna_ws.close()
        await bert_ws.close()

        # The offer is in the audit log: who, on which line, the hour; not the thread.
        async with unit_of_work(rt.sessionmaker) as session:
            thread_row = await session.get(MailboxThread, uuid.UUID(thread_id))
            assert thread_row is not None
            digest = thread_row.digest
        await written(rt, at_least=1)
        async with unit_of_work(rt.sessionmaker) as session:
            entries = (
                await session.scalars(
                    select(AuditEntry).where(AuditEntry.action == "mailbox.times_offered")
                )
            ).all()
        # Only the offer that went through, none of those refused.
        [entry] = entries
        assert (str(entry.actor_id), entry.line_key) == (anna_id, "support")
        assert (entry.chat_id, entry.target_staff_id, entry.detail) == (None, None, {})
        assert entry.at.minute == 0
        kept = " ".join(str(getattr(entry, c.key)) for c in AuditEntry.__table__.columns)
        assert thread_id not in kept and digest not in kept

        # Deleting the thread deletes its booking.
        gone = await visitor_post(server, "/api/visitor/mailbox/delete", {"code": code})
        assert gone.status_code == 200
        assert await bookings(rt) == []


async def test_a_flood_of_booking_guesses_is_refused(lykta: ServerFactory) -> None:
    async with lykta(continuity_attempts=3) as server:
        await add_line(server.runtime)
        statuses = [
            (
                await visitor_post(
                    server,
                    "/api/visitor/mailbox/book",
                    {"code": f"fel kod nummer {n} här", "time": iso(soon())},
                )
            ).status_code
            for n in range(5)
        ]
        assert statuses == [404, 404, 404, 429, 429]


async def test_deleting_a_thread_from_the_console_deletes_its_booking(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    anna_id = await add_counsellor(rt, "anna", alias="Anna")
    await give_shift(rt, anna_id)
    anna = await sign_in_session(server, "anna", PASSWORD)
    thread_id, code = await claimed_thread(server, anna)
    at = soon() + timedelta(minutes=30)
    offered = await api(
        server, anna, "POST", f"/api/mailbox/{thread_id}/times", json={"times": [iso(at)]}
    )
    assert offered.status_code == 200, offered.text
    booked = await visitor_post(
        server, "/api/visitor/mailbox/book", {"code": code, "time": iso(at)}
    )
    assert booked.status_code == 200, booked.text
    assert len(await bookings(rt)) == 1
    deleted = await api(server, anna, "POST", f"/api/mailbox/{thread_id}/delete")
    assert deleted.status_code == 200
    assert await bookings(rt) == []


async def test_handing_a_thread_over_cancels_its_booked_chat_and_offered_times(
    server: RunningServer,
) -> None:
    # The booked time lies in the first counsellor's shift: the new one may not be on duty
    # then. The booking and the times still offered are cancelled, the first counsellor's
    # place is no longer held, the visitor reads so in the thread, and the new counsellor
    # may offer new times.
    rt = server.runtime
    await add_line(rt)
    anna_id = await add_counsellor(rt, "anna", alias="Anna")
    bert_id = await add_counsellor(rt, "bert", alias="Bert")
    await add_staff(rt, "cora", StaffRole.coordinator)
    await give_shift(rt, anna_id)
    await give_shift(rt, bert_id)
    anna = await sign_in_session(server, "anna", PASSWORD)
    bert = await sign_in_session(server, "bert", PASSWORD)
    cora = await sign_in_session(server, "cora", PASSWORD)
    thread_id, code = await claimed_thread(server, anna)
    times_path = f"/api/mailbox/{thread_id}/times"
    booked_at = soon()
    offered_at = booked_at + timedelta(minutes=30)
    await api(server, anna, "POST", times_path, json={"times": [iso(booked_at)]})
    booked = await visitor_post(
        server, "/api/visitor/mailbox/book", {"code": code, "time": iso(booked_at)}
    )
    assert booked.status_code == 200, booked.text
    # Then another time offered, not picked.
    offered = await api(server, anna, "POST", times_path, json={"times": [iso(offered_at)]})
    assert offered.status_code == 200, offered.text
    today = (await api(server, anna, "GET", "/api/bookings/today")).json()["bookings"]
    assert [b["starts_at"] for b in today] == [iso(booked_at)]
    # Within the early minutes before the booked time: Anna's last place is held.
    assert anna_id in await rt.continuity.holds.reserved("support")
    before = (await visitor_post(server, "/api/visitor/mailbox/read", {"code": code})).json()

    handed = await api(
        server, cora, "POST", f"/api/mailbox/{thread_id}/hand", json={"staff_id": bert_id}
    )
    assert handed.status_code == 200, handed.text
    # The coordinator is told what was cancelled with it.
    assert handed.json()["cancelled"] == {"booked": 1, "offered": 1}

    assert await bookings(rt) == []
    assert (await api(server, anna, "GET", "/api/bookings/today")).json()["bookings"] == []
    assert anna_id not in await rt.continuity.holds.reserved("support")
    read = (await visitor_post(server, "/api/visitor/mailbox/read", {"code": code})).json()
    assert read["booking"] is None and read["times_offered"] == []
    assert read["status"] == before["status"] == "answered"
    cancelled = read["messages"][-1]
    assert (cancelled["kind"], cancelled["from"], cancelled["alias"]) == (
        "times_cancelled",
        "counsellor",
        None,
    )
    assert cancelled["times"] == [iso(booked_at), iso(offered_at)]
    assert len(read["messages"]) == len(before["messages"]) + 1
    mine = (await api(server, bert, "GET", "/api/mailbox")).json()["mine"]
    assert [(t["id"], t["booked"]) for t in mine] == [(thread_id, False)]
    shown = (await api(server, bert, "GET", f"/api/mailbox/{thread_id}")).json()
    assert shown["messages"][-1]["kind"] == "times_cancelled" and shown["booking"] is None

    # The new counsellor offers times in their own shift; the visitor books one with them.
    again = await api(server, anna, "POST", times_path, json={"times": [iso(booked_at)]})
    assert (again.status_code, again.json()["code"]) == (403, "not_your_thread")
    new = await api(server, bert, "POST", times_path, json={"times": [iso(booked_at)]})
    assert new.status_code == 200, new.text
    rebooked = await visitor_post(
        server, "/api/visitor/mailbox/book", {"code": code, "time": iso(booked_at)}
    )
    assert rebooked.status_code == 200, rebooked.text
    assert rebooked.json()["booking"]["counsellor"] == "Bert"
    (booking,) = await bookings(rt)
    assert str(booking.staff_id) == bert_id
    today = (await api(server, bert, "GET", "/api/bookings/today")).json()["bookings"]
    assert [b["starts_at"] for b in today] == [iso(booked_at)]
