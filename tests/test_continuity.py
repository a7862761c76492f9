"""Continuity codes, peer supporters and referral cards in chats, over real WebSockets.

A visitor takes a code at the end of a chat, comes back on a new connection with it and is
offered to the same counsellor, who alone sees their note; neither the code nor the note is
ever in the database in clear; wrong, expired and deleted codes get one neutral answer and
are rate-limited; peer requests are preferred, then relaxed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed

from app.broker.memory import MemoryBroker
from app.continuity import codes
from app.continuity.service import continuity_service
from app.kit.clock import utcnow
from app.kit.db import Base, unit_of_work
from app.models import ContinuityCode
from app.models.enums import StaffRole
from app.runtime import Runtime
from app.staff.service import staff_service
from tests.conftest import REDIS_URL, ServerFactory
from tests.support.brokers import redis_dump
from tests.support.clients import StaffClient, VisitorClient, open_chat, open_staff, open_visitor
from tests.support.roster import http_as, local_now, shift_fields
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer

pytestmark = pytest.mark.both_brokers


async def database_blob(rt: Runtime) -> bytes:
    """Every row of every table, as text and raw bytes, the way a dump would hold them."""
    parts: list[bytes] = []
    async with unit_of_work(rt.sessionmaker) as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                for value in row:
                    parts.append(value if isinstance(value, bytes) else str(value).encode())
    url = rt.settings.database_url
    if url.startswith("sqlite"):
        parts.append(Path(url.split("///", 1)[1]).read_bytes())  # noqa: ASYNC240
    return b"\n".join(parts)


async def broker_blob(rt: Runtime) -> bytes:
    if isinstance(rt.broker, MemoryBroker):
        return rt.broker.dump()
    return await redis_dump(REDIS_URL, rt.settings.redis_prefix)


def forms(code: str) -> list[bytes]:
    """Every form a code could be stored in: as shown, normalised, without spaces."""
    normal = codes.normalise(code)
    assert normal is not None
    return [f.encode() for f in {code, normal, normal.replace(" ", ""), code.upper()}]


async def chat_with_code(
    server: RunningServer, counsellor: StaffClient, note: str, *, language: str = "sv"
) -> str:
    """A whole chat at whose end the visitor takes a continuity code; the code."""
    visitor = await open_visitor(server)
    await visitor.start("support", language)
    await counsellor.accept((await counsellor.expect("offer", chat_id=visitor.chat_id))["chat_id"])
    await visitor.expect("counsellor.joined")
    await visitor.say("tack för idag")
    await counsellor.send({"type": "continuity.offer", "chat_id": visitor.chat_id, "note": note})
    offered = await visitor.expect("continuity.offered")
    # The visitor is offered a code; the counsellor's note is not theirs to see.
    assert "note" not in offered and offered["name"] == counsellor.hello["staff"]["alias"]
    mine = await counsellor.expect("continuity.offered", chat_id=visitor.chat_id)
    assert mine["note"] == note
    await visitor.send({"type": "continuity.accept"})
    got = await visitor.expect("continuity.code")
    assert got["words"] == 5 and got["bits"] >= 50
    assert got["expires_at"] > utcnow().timestamp() + 59 * 86400
    await counsellor.expect("continuity.accepted", chat_id=visitor.chat_id)
    await visitor.send({"type": "end"})
    await visitor.expect("chat.ended")
    await counsellor.expect("chat.ended", chat_id=visitor.chat_id)
    assert note not in json.dumps(visitor.received)
    await visitor.close()
    code = str(got["code"])
    assert all(w in codes.word_list(language) for w in code.split())
    return code


async def start_with(visitor: VisitorClient, code: str, **extra: Any) -> None:
    await visitor.send(
        {"type": "start", "line": "support", "language": "sv", "code": code, **extra}
    )


async def test_a_returning_visitor_is_offered_to_the_same_counsellor_who_sees_the_note(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    await add_counsellor(rt, "bert", alias="Bert")
    anna = await open_staff(server, "anna", PASSWORD)
    note = f"canarynote{uuid.uuid4().hex} likes to talk about her sister; ask about housing"
    code = await chat_with_code(server, anna, note)

    # The code is in no table, in no form; nor is the note.
    db = await database_blob(rt)
    for needle in [*forms(code), note.encode(), b"canarynote"]:
        assert needle not in db, needle
    async with unit_of_work(rt.sessionmaker) as session:
        rows = (await session.execute(select(ContinuityCode))).scalars().all()
    assert len(rows) == 1 and rows[0].expires_at.minute == 0 and rows[0].expires_at.second == 0

    # Bert is free and has no chats; Anna has one to finish a wrap-up for. Still Anna first.
    bert = await open_staff(server, "bert", PASSWORD)
    back = await open_visitor(server)  # a new connection: nothing but the words
    typed = "  " + code.upper().replace(" ", " -  ") + " "
    await start_with(back, typed)
    found = await back.expect("continuity.found")
    assert found["name"] == "Anna"
    started = await back.expect("chat.started")
    assert started["continuity"] is True
    back.chat_id = started["chat_id"]
    offer = await anna.expect("offer", chat_id=back.chat_id)
    assert offer["continuity"] is True
    await anna.accept(back.chat_id)
    handover = await anna.expect("handover", chat_id=back.chat_id)
    assert handover["text"] == note and handover["name"] == "Anna"
    await back.expect("counsellor.joined", name="Anna")
    await back.say("hej igen")
    await anna.expect("message", sender="visitor", text="hej igen")
    assert not bert.seen("offer") and not bert.seen("handover")
    assert note not in json.dumps(back.received)
    # While the chat lives the note is in the broker only sealed.
    assert note.encode() not in await broker_blob(rt)

    # Used again: the code lives 60 days from now (to the hour), still only hashed.
    async with unit_of_work(rt.sessionmaker) as session:
        row = (await session.execute(select(ContinuityCode))).scalar_one()
    assert row.expires_at > utcnow() + timedelta(days=59, hours=23)
    for needle in [*forms(code), note.encode()]:
        assert needle not in await database_blob(rt)


async def test_the_note_is_for_its_author_only_when_someone_else_answers(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    await add_counsellor(rt, "bert", alias="Bert")
    anna = await open_staff(server, "anna", PASSWORD)
    note = "canary-only-for-anna"
    code = await chat_with_code(server, anna, note)
    bert = await open_staff(server, "bert", PASSWORD)

    back = await open_visitor(server)
    await start_with(back, code)
    await back.expect("continuity.found", name="Anna")
    back.chat_id = (await back.expect("chat.started"))["chat_id"]
    await anna.expect("offer", chat_id=back.chat_id)
    # Anna cannot take it now: the chat goes to anyone, and Bert never sees Anna's note.
    await anna.send({"type": "decline", "chat_id": back.chat_id})
    await bert.accept((await bert.expect("offer", chat_id=back.chat_id))["chat_id"])
    await bert.say(back.chat_id, "Hej, jag heter Bert")
    await back.expect("message", sender="counsellor", name="Bert")
    assert not bert.seen("handover") and note not in json.dumps(bert.received)


async def test_an_absent_counsellor_is_named_with_their_next_shift_and_anyone_may_answer(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    anna_id = await add_counsellor(rt, "anna", alias="Anna")
    await add_counsellor(rt, "bert", alias="Bert")
    await add_staff(rt, "ella", StaffRole.coordinator)
    anna = await open_staff(server, "anna", PASSWORD)
    code = await chat_with_code(server, anna, "canary-absent")
    await anna.send({"type": "status", "status": "away"})
    await anna.expect("status", status="away")
    bert = await open_staff(server, "bert", PASSWORD)

    # Anna is away and has no shift ahead: the visitor is told, and no chat starts.
    back = await open_visitor(server)
    await start_with(back, code)
    away = await back.expect("continuity.away")
    assert away == {"type": "continuity.away", "name": "Anna", "next_on_duty_at": None}
    assert not back.seen("chat.started")

    # A shift for Anna in two days: that is when she is next on duty.
    start = (local_now() + timedelta(days=2)).replace(hour=18, minute=0, second=0, microsecond=0)
    async with http_as(server, "ella") as ella:
        response = await ella.post(
            "/api/roster/lines/support/extra-shifts",
            json={**shift_fields(start, start + timedelta(hours=3)), "needed": 1},
        )
        assert response.status_code == 201, response.text
        assigned = await ella.post(
            "/api/roster/assignments",
            json={"staff_id": anna_id, "extra_shift_id": response.json()["id"]},
        )
        assert assigned.status_code == 201, assigned.text
    await start_with(back, code)
    away = await back.expect("continuity.away")
    assert away["next_on_duty_at"] == start.timestamp()

    # The visitor chooses to wait for anyone instead: an ordinary start.
    await back.start()
    await bert.accept((await bert.expect("offer", chat_id=back.chat_id))["chat_id"])
    await back.expect("counsellor.joined", name="Bert")

    # Anna leaves the line: the code still works, as "not on duty", with no shift to name.
    async with unit_of_work(rt.sessionmaker) as session:
        staff = await staff_service.get(session, uuid.UUID(anna_id))
        assert staff is not None
        staff.is_active = False
    other = await open_visitor(server)
    await start_with(other, code)
    away = await other.expect("continuity.away")
    assert away["next_on_duty_at"] is None


async def test_wrong_expired_and_deleted_codes_get_one_neutral_answer_and_are_rate_limited(
    lykta: ServerFactory,
) -> None:
    async with lykta(continuity_attempts=6) as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna", alias="Anna")
        anna = await open_staff(server, "anna", PASSWORD)
        kept = await chat_with_code(server, anna, "canary-kept")
        deleted = await chat_with_code(server, anna, "canary-deleted")

        visitor = await open_visitor(server)
        await visitor.send({"type": "continuity.delete", "code": deleted.upper()})
        assert (await visitor.expect("continuity.deleted")) == {"type": "continuity.deleted"}
        # Deleting a code that never was gets the very same answer.
        await visitor.send({"type": "continuity.delete", "code": "inte en riktig kod här"})
        await visitor.expect("continuity.deleted")

        answers = []
        for attempt in (deleted, "inte en riktig kod här", "x", kept.replace(" ", "")[:-1]):
            await start_with(visitor, attempt)
            error = await visitor.expect("error")
            answers.append((error["code"], error["message"], error.get("ref")))
        assert len(set(answers)) == 1 and answers[0][0] == "unknown_code"
        assert not visitor.seen("chat.started")
        # Six attempts used (two deletions, four starts): now even the right code is refused.
        await start_with(visitor, kept)
        limited = await visitor.expect("error")
        assert limited["code"] == "rate_limited"
        # Another connection from the same client is limited too.
        again = await open_visitor(server)
        await start_with(again, kept)
        assert (await again.expect("error"))["code"] == "rate_limited"
        async with unit_of_work(rt.sessionmaker) as session:
            assert len((await session.execute(select(ContinuityCode))).all()) == 1


async def test_codes_expire_and_are_renewed_at_each_use(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    anna = await open_staff(server, "anna", PASSWORD)
    code = await chat_with_code(server, anna, "canary-expiry")
    settings = rt.settings
    async with unit_of_work(rt.sessionmaker) as session:
        issued = (await session.execute(select(ContinuityCode))).scalar_one().expires_at
    # 59 days on, the code still works, and is renewed for 60 days from that use.
    later = utcnow() + timedelta(days=59)
    async with unit_of_work(rt.sessionmaker) as session:
        found = await continuity_service.find(session, settings, code, "support", later)
        assert found is not None and found.alias == "Anna"
        assert found.expires_at >= later + timedelta(days=60) > issued
        assert await found.open_note() == "canary-expiry"
    # 60 days after that use it is gone: not found, and its row deleted.
    gone = later + timedelta(days=61)
    async with unit_of_work(rt.sessionmaker) as session:
        assert await continuity_service.find(session, settings, code, "support", gone) is None
    async with unit_of_work(rt.sessionmaker) as session:
        assert (await session.execute(select(ContinuityCode))).all() == []
    # Another line's widget cannot use it either (the same neutral miss).
    code = await chat_with_code(server, anna, "canary-line")
    async with unit_of_work(rt.sessionmaker) as session:
        assert await continuity_service.find(session, settings, code, "youth", utcnow()) is None


async def test_a_code_is_deleted_over_http_with_the_code_in_the_body(
    lykta: ServerFactory,
) -> None:
    async with lykta(continuity_attempts=4) as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna", alias="Anna")
        anna = await open_staff(server, "anna", PASSWORD)
        code = await chat_with_code(server, anna, "canary-http")
        async with httpx.AsyncClient(base_url=server.url) as http:
            bad = await http.post("/api/visitor/continuity/delete", content=b"{not json")
            assert bad.status_code == 422
            huge = await http.post("/api/visitor/continuity/delete", json={"code": "a " * 200})
            assert huge.status_code == 422
            extra = await http.post(
                "/api/visitor/continuity/delete", json={"code": code, "chat_id": "x"}
            )
            assert extra.status_code == 422
            done = await http.post("/api/visitor/continuity/delete", json={"code": code})
            assert done.status_code == 200 and done.json() == {"status": "deleted"}
            same = await http.post("/api/visitor/continuity/delete", json={"code": code})
            assert same.status_code == 200 and same.json() == {"status": "deleted"}
            for _ in range(3):
                last = await http.post("/api/visitor/continuity/delete", json={"code": "a b"})
            assert last.status_code == 429
            foreign = await http.post(
                "/api/visitor/continuity/delete",
                json={"code": code},
                headers={"Origin": "https://evil.example"},
            )
            assert foreign.status_code == 403
        async with unit_of_work(rt.sessionmaker) as session:
            assert (await session.execute(select(ContinuityCode))).all() == []


async def test_offering_and_taking_codes_refuses_bad_input(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    await add_counsellor(rt, "bert", alias="Bert")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_visitor(server)
    # Before a chat there is nothing to take.
    await visitor.send({"type": "continuity.accept"})
    assert (await visitor.expect("error"))["code"] == "not_allowed_now"
    await visitor.start()
    await anna.accept_offer()
    # Nothing offered yet.
    await visitor.send({"type": "continuity.accept"})
    assert (await visitor.expect("error"))["code"] == "not_allowed_now"
    chat = visitor.chat_id
    await anna.send({"type": "continuity.offer", "chat_id": chat, "note": "x" * 1001})
    assert (await anna.expect("error"))["code"] == "message_too_long"
    await anna.send({"type": "continuity.offer", "chat_id": chat, "note": "x" * 5000})
    assert (await anna.expect("error"))["code"] == "invalid_field"
    await anna.send({"type": "continuity.offer", "chat_id": chat, "note": 12})
    assert (await anna.expect("error"))["code"] == "invalid_field"
    await anna.send({"type": "continuity.offer", "chat_id": "nosuchchat1", "note": ""})
    assert (await anna.expect("error"))["code"] == "not_in_chat"
    bert = await open_staff(server, "bert", PASSWORD)
    await bert.send({"type": "continuity.offer", "chat_id": chat, "note": "not mine"})
    assert (await bert.expect("error"))["code"] == "not_in_chat"
    await visitor.send({"type": "continuity.delete"})
    assert (await visitor.expect("error"))["code"] == "invalid_field"
    await visitor.send({"type": "continuity.delete", "code": "y" * 201})
    assert (await visitor.expect("error"))["code"] == "invalid_field"
    await visitor.send({"type": "start", "line": "support", "language": "sv", "code": ""})
    assert (await visitor.expect("error"))["code"] == "invalid_field"

    # An empty note is fine; taking the code twice is not.
    await anna.send({"type": "continuity.offer", "chat_id": chat, "note": ""})
    await visitor.expect("continuity.offered")
    await visitor.send({"type": "continuity.accept"})
    await visitor.expect("continuity.code")
    await visitor.send({"type": "continuity.accept"})
    assert (await visitor.expect("error"))["code"] == "not_allowed_now"
    await anna.send({"type": "continuity.offer", "chat_id": chat, "note": "again"})
    assert (await anna.expect("error"))["code"] == "invalid_state"
    # A flood of deletions is slowed by the connection's own limit, then closed.
    for _ in range(60):
        await visitor.send({"type": "continuity.delete", "code": "a b c"})
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await visitor.expect("error", timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert {f["code"] for f in visitor.seen("error")} >= {"rate_limited"}
    async with unit_of_work(rt.sessionmaker) as session:
        assert len((await session.execute(select(ContinuityCode))).all()) == 1


async def test_two_takes_of_one_offer_at_once_issue_one_code(server: RunningServer) -> None:
    """The visitor's chat open in two tabs, both taking the offered code at the same moment:
    one code is made and shown, the other tab is told there is one already."""
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    anna = await open_staff(server, "anna", PASSWORD)
    first = await open_chat(server, anna)
    second = await open_visitor(server)
    await second.send({"type": "resume", "chat_id": first.chat_id, "token": first.token})
    await second.expect("chat.resumed")
    await anna.send({"type": "continuity.offer", "chat_id": first.chat_id, "note": "n"})
    await first.expect("continuity.offered")
    await second.expect("continuity.offered")
    await asyncio.gather(
        first.send({"type": "continuity.accept"}), second.send({"type": "continuity.accept"})
    )
    answers = [await tab.expect(frozenset({"continuity.code", "error"})) for tab in (first, second)]
    assert sorted(a["type"] for a in answers) == ["continuity.code", "error"]
    refused = next(a for a in answers if a["type"] == "error")
    assert refused["code"] == "not_allowed_now" and "already" in refused["message"]
    async with unit_of_work(rt.sessionmaker) as session:
        assert len((await session.execute(select(ContinuityCode))).all()) == 1


async def test_a_peer_is_preferred_then_the_preference_relaxes(lykta: ServerFactory) -> None:
    async with lykta() as server:
        rt = server.runtime
        await add_line(rt, peer_relax_seconds=3600)
        await add_counsellor(rt, "nina", alias="Nina")
        await add_counsellor(rt, "pia", alias="Pia", peer=True, capacity=1)
        pia = await open_staff(server, "pia", PASSWORD)
        nina = await open_staff(server, "nina", PASSWORD, available=False)
        # Pia answers someone already: her one place is taken.
        first = await open_visitor(server)
        await first.start()
        await pia.accept((await pia.expect("offer", chat_id=first.chat_id))["chat_id"])
        await nina.available()
        visitor = await open_visitor(server)
        started = await visitor.start("support", "sv", peer=True)
        assert started["peer_requested"] is True
        # Nina is free but not a peer, and a peer answers on the line: the chat waits for Pia.
        await nina.expect_none("offer", within=1.5)
        await first.send({"type": "end"})
        offer = await pia.expect("offer", chat_id=visitor.chat_id)
        assert offer["peer_requested"] is True
        await pia.accept(visitor.chat_id)
        joined = await visitor.expect("counsellor.joined")
        assert joined["name"] == "Pia" and joined["peer"] is True

        # Without asking, nobody is told about peers.
        plain = await open_visitor(server)
        await plain.start()
        await nina.accept((await nina.expect("offer", chat_id=plain.chat_id))["chat_id"])
        assert "peer" not in await plain.expect("counsellor.joined")

    async with lykta() as server:
        rt = server.runtime
        # The same database and the same hour-long peer wait; Pia is not signed in.
        await add_line(rt, peer_relax_seconds=3600)
        nina = await open_staff(server, "nina", PASSWORD)
        visitor = await open_visitor(server)
        await visitor.start("support", "sv", peer=True)
        # No peer supporter answers on the line: nobody waits for one, anyone answers now.
        await nina.accept((await nina.expect("offer", chat_id=visitor.chat_id))["chat_id"])
        joined = await visitor.expect("counsellor.joined")
        assert joined["name"] == "Nina" and joined["peer"] is False


async def test_a_referral_card_reaches_the_visitor_in_their_language(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    await add_counsellor(rt, "bert", alias="Bert")
    await add_staff(rt, "ella", StaffRole.coordinator)
    async with http_as(server, "ella") as ella:
        created = await ella.post(
            "/api/directory",
            json={
                "name": "Canaryhjälpen",
                "description": {"sv": "Stöd om boende", "en": "Help with housing"},
                "needs": ["housing", "shelter"],
                "languages": ["sv", "en", "ar"],
                "phone": "+46 8 123 45 67",
                "web": "https://example.org/hjalp",
                "opening_hours": {"sv": "Mån–fre 9–17", "en": "Mon–Fri 9–17"},
                "city": "Malmö",
            },
        )
        assert created.status_code == 201, created.text
        service_id = created.json()["id"]
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_visitor(server)
    await visitor.start("support", "en")
    await anna.accept_offer()
    found = await api_search(server, "anna", need="housing", q="boende")
    assert [s["id"] for s in found] == [service_id]
    await anna.send({"type": "referral", "chat_id": visitor.chat_id, "service_id": service_id})
    card = await visitor.expect("referral")
    assert card["card"]["name"] == "Canaryhjälpen"
    assert card["card"]["description"] == "Help with housing"
    assert card["card"]["opening_hours"] == "Mon–Fri 9–17"
    assert card["card"]["language"] == "en" and card["card"]["phone"] == "+46 8 123 45 67"
    assert card["name"] == "Anna" and "staff_id" not in card
    assert (await anna.expect("referral", chat_id=visitor.chat_id))["card"]["id"] == service_id
    # The card is part of the transcript: a visitor resuming sees it again.
    again = await open_visitor(server)
    await again.send(
        {"type": "resume", "chat_id": visitor.chat_id, "token": visitor.token, "last_seq": 0}
    )
    await again.expect("chat.resumed")
    assert (await again.expect("referral"))["card"]["name"] == "Canaryhjälpen"
    # ... and, sealed like messages, never in the broker in clear.
    assert b"Canaryhj" not in await broker_blob(rt)

    await anna.send(
        {"type": "referral", "chat_id": visitor.chat_id, "service_id": str(uuid.uuid4())}
    )
    assert (await anna.expect("error"))["code"] == "unknown_service"
    await anna.send({"type": "referral", "chat_id": visitor.chat_id, "service_id": "nope"})
    assert (await anna.expect("error"))["code"] == "invalid_field"
    bert = await open_staff(server, "bert", PASSWORD)
    await bert.send({"type": "referral", "chat_id": visitor.chat_id, "service_id": service_id})
    assert (await bert.expect("error"))["code"] == "not_in_chat"

    # Shredded with the chat: after the end nothing of it is left in the broker.
    await visitor.send({"type": "exit"})
    await visitor.expect("exited")
    assert b"Canaryhj" not in await broker_blob(rt)


async def api_search(server: RunningServer, username: str, **params: str) -> list[Any]:
    async with http_as(server, username) as http:
        response = await http.get("/api/directory", params=params)
        assert response.status_code == 200, response.text
        services: list[Any] = response.json()["services"]
        return services


async def test_an_observing_supervisor_does_not_see_the_note(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    await add_counsellor(rt, "sara", alias="Sara", supervisor=True)
    anna = await open_staff(server, "anna", PASSWORD)
    note = "canary-not-for-supervisors"
    code = await chat_with_code(server, anna, note)
    sara = await open_staff(server, "sara", PASSWORD, available=False)
    back = await open_visitor(server)
    await start_with(back, code)
    back.chat_id = (await back.expect("chat.started"))["chat_id"]
    await anna.accept((await anna.expect("offer", chat_id=back.chat_id))["chat_id"])
    assert (await anna.expect("handover", chat_id=back.chat_id))["text"] == note
    await sara.send({"type": "observe", "chat_id": back.chat_id})
    await sara.expect("chat.observing", chat_id=back.chat_id)
    await anna.say(back.chat_id, "Välkommen tillbaka")
    await sara.expect("message", chat_id=back.chat_id, text="Välkommen tillbaka")
    await sara.send({"type": "sync", "chat_id": back.chat_id, "last_seq": 0})
    await sara.expect("synced", chat_id=back.chat_id)
    assert not sara.seen("handover") and note not in json.dumps(sara.received)
