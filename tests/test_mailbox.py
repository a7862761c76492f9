"""The anonymous mailbox through real uvicorn, on SQLite and on PostgreSQL: a visitor writes
while the line is closed and gets a code, reads and writes with it, deletes it; wrong codes
get one answer; counsellors claim, answer, note, close; coordinators hand over.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.continuity import codes
from app.directory.schemas import ServiceInput
from app.directory.service import directory_service
from app.kit.db import unit_of_work
from app.kit.migrate import upgrade
from app.models import AuditEntry, MailboxMessage, MailboxStatistic, MailboxThread, Wrapup
from app.models.enums import Qualification, StaffRole
from app.staff.repository import StaffRepository
from tests.conftest import ServerFactory
from tests.support.clients import SignedIn, api, sign_in_session
from tests.support.held import written
from tests.support.postgres import fresh_database
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[str]:
    """Every test here runs on the embedded database and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "lykta.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    async with fresh_database() as url:
        await upgrade(url)
        yield url


async def visitor(server: RunningServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=30)


async def write_new(
    http: httpx.AsyncClient, text: str, *, line: str = "support", language: str = "sv"
) -> httpx.Response:
    return await http.post(
        "/api/visitor/mailbox/threads", json={"line": line, "language": language, "text": text}
    )


async def read(http: httpx.AsyncClient, code: str) -> httpx.Response:
    return await http.post("/api/visitor/mailbox/read", json={"code": code})


async def test_a_visitor_writes_while_the_line_is_closed_reads_writes_again_and_deletes(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(
        rt,
        mailbox_answer_time={"sv": "Vi svarar oftast inom två dagar.", "en": "Within two days."},
        mailbox_retention_days=10,
    )
    secret = f"canary{uuid.uuid4().hex} jag vet inte vart jag ska ta vägen"
    async with await visitor(server) as http:
        line = (await http.get("/api/lines/support")).json()
        assert line["mailbox"] == {
            "writable": True,
            "readable": True,
            "answer_time": {"sv": "Vi svarar oftast inom två dagar.", "en": "Within two days."},
            "retention_days": 10,
        }
        made = await write_new(http, secret)
        assert made.status_code == 201, made.text
        got = made.json()
        assert got["line"] == "support" and got["retention_days"] == 10
        assert got["answer_time"] == "Vi svarar oftast inom två dagar."
        code = got["code"]
        assert len(code.split()) == 5 and all(w in codes.word_list("sv") for w in code.split())

        # Read back with the code typed differently (case, spacing): one thread.
        thread = (await read(http, "  " + code.upper().replace(" ", "  ") + " ")).json()
        assert thread["status"] == "waiting" and thread["line_name"] == "Support"
        assert thread["booking"] is None and thread["times_offered"] == []
        [first] = thread["messages"]
        assert first["from"] == "visitor" and first["text"] == secret and first["kind"] == "text"
        assert first["at"].endswith(":00Z") and first["alias"] is None

        again = await http.post(
            "/api/visitor/mailbox/write", json={"code": code, "text": "och en sak till"}
        )
        assert again.status_code == 200
        assert [m["text"] for m in again.json()["messages"]] == [secret, "och en sak till"]

        # Neither the text nor the code is in the database in clear.
        async with unit_of_work(rt.sessionmaker) as session:
            rows = (await session.execute(select(MailboxMessage))).scalars().all()
            threads = (await session.execute(select(MailboxThread))).scalars().all()
        assert len(rows) == 2 and len(threads) == 1
        for row in rows:
            assert secret.encode() not in row.sealed and b"canary" not in row.sealed
        assert threads[0].created_at.second == 0 and threads[0].last_at.microsecond == 0

        gone = await http.post("/api/visitor/mailbox/delete", json={"code": code})
        assert gone.status_code == 200 and gone.json() == {"status": "deleted"}
        assert (await read(http, code)).status_code == 404
        async with unit_of_work(rt.sessionmaker) as session:
            assert (await session.execute(select(MailboxMessage))).first() is None
            assert (await session.execute(select(MailboxThread))).first() is None


async def test_wrong_unknown_deleted_and_malformed_codes_get_one_answer(
    server: RunningServer,
) -> None:
    await add_line(server.runtime)
    async with await visitor(server) as http:
        code = (await write_new(http, "hej")).json()["code"]
        await http.post("/api/visitor/mailbox/delete", json={"code": code})
        answers: list[tuple[int, Any]] = []
        for attempt in [code, "fel ord helt och hållet", "!!!", "a" * 200]:
            response = await read(http, attempt)
            answers.append((response.status_code, response.json()))
        assert (
            answers
            == [(404, {"detail": "no thread was found for this code", "code": "no_thread"})] * 4
        )
        # Deleting what does not exist answers as if it did.
        gone = await http.post("/api/visitor/mailbox/delete", json={"code": "inte en kod"})
        assert gone.json() == {"status": "deleted"}


async def test_the_mailbox_refuses_bad_input_and_changes_nothing(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt, max_message_length=50)
    await add_line(rt, "youth", mailbox="off")
    async with await visitor(server) as http:
        cases: list[tuple[dict[str, Any] | bytes, int, str]] = [
            ({"line": "support", "language": "sv", "text": "x" * 51}, 422, "message_too_long"),
            ({"line": "support", "language": "sv", "text": "   "}, 422, "empty"),
            ({"line": "support", "language": "sv", "text": "a\x00b"}, 422, "invalid"),
            ({"line": "support", "language": "sv", "text": "x" * 10_001}, 422, "invalid"),
            ({"line": "support", "language": "sv"}, 422, "invalid"),
            ({"line": "support", "language": "sv", "text": "hi", "x": 1}, 422, "invalid"),
            ({"line": "nowhere", "language": "sv", "text": "hi"}, 404, "no_line"),
            ({"line": "youth", "language": "sv", "text": "hi"}, 409, "mailbox_closed"),
            (b"{not json", 422, "invalid_json"),
            (b"[1, 2]", 422, "invalid"),
        ]
        for body, status, code in cases:
            if isinstance(body, bytes):
                response = await http.post(
                    "/api/visitor/mailbox/threads",
                    content=body,
                    headers={"content-type": "application/json"},
                )
            else:
                response = await http.post("/api/visitor/mailbox/threads", json=body)
            assert (response.status_code, response.json()["code"]) == (status, code), body
            assert "x" * 20 not in response.text
        for path, payload in [
            ("/api/visitor/mailbox/read", {"code": 5}),
            ("/api/visitor/mailbox/write", {"code": "a b c d e"}),
            ("/api/visitor/mailbox/delete", {}),
        ]:
            response = await http.post(path, json=payload)
            assert response.status_code == 422, (path, response.text)
        # Another site may not use the visitor's browser to write or read.
        foreign = await http.post(
            "/api/visitor/mailbox/threads",
            json={"line": "support", "language": "sv", "text": "hi"},
            headers={"origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
    async with unit_of_work(rt.sessionmaker) as session:
        assert (await session.execute(select(MailboxThread))).first() is None


async def test_a_flood_of_guesses_is_refused(lykta: ServerFactory) -> None:
    async with lykta(continuity_attempts=5) as server:
        await add_line(server.runtime)
        async with await visitor(server) as http:
            code = (await write_new(http, "hej")).json()["code"]
            statuses = [(await read(http, f"gissning nummer {n}")).status_code for n in range(5)]
            assert statuses == [404] * 5
            # From now on even the right code is refused: the limit is per client, not code.
            refused = await read(http, code)
            assert refused.status_code == 429 and refused.json()["code"] == "too_many_attempts"
            assert code not in refused.text


async def staff_world(server: RunningServer) -> dict[str, SignedIn]:
    rt = server.runtime
    await add_line(rt)
    await add_line(rt, "youth", required_qualification="volunteer")
    await add_counsellor(rt, "anna", alias="Anna")
    await add_counsellor(rt, "bert", alias="Bert")
    await add_counsellor(
        rt, "vera", lines=("support", "youth"), qualification=Qualification.volunteer, on_duty=False
    )
    await add_counsellor(rt, "yngve", lines=("youth",))
    await add_staff(rt, "cora", StaffRole.coordinator)
    return {
        name: await sign_in_session(server, name, PASSWORD)
        for name in ("anna", "bert", "vera", "yngve", "cora")
    }


async def test_a_counsellor_claims_answers_notes_and_closes_and_the_visitor_reads_it(
    server: RunningServer,
) -> None:
    rt = server.runtime
    who = await staff_world(server)
    anna, bert, cora = who["anna"], who["bert"], who["cora"]
    async with unit_of_work(rt.sessionmaker) as session:
        service = await directory_service.create(
            session,
            ServiceInput.model_validate(
                {
                    "name": "Kvinnojouren",
                    "description": {"sv": "Stöd dygnet runt", "en": "Support day and night"},
                    "phone": "020-50 50 50",
                    "needs": ["violence"],
                }
            ),
        )
    async with await visitor(server) as http:
        code = (await write_new(http, "hjälp mig", language="en")).json()["code"]
        listed = (await api(server, anna, "GET", "/api/mailbox", params={"line": "support"})).json()
        [waiting] = listed["waiting"]
        assert listed["mine"] == [] and waiting["status"] == "waiting"
        assert waiting["counsellor"] is None and waiting["age_seconds"] >= 0
        assert "hjälp" not in json.dumps(listed)
        thread_id = waiting["id"]

        # Nobody reads a thread before claiming it; a coordinator never does.
        for person, status in ((anna, 403), (cora, 403)):
            response = await api(server, person, "GET", f"/api/mailbox/{thread_id}")
            assert response.status_code == status
        claimed = await api(server, anna, "POST", f"/api/mailbox/{thread_id}/claim")
        assert claimed.status_code == 200 and claimed.json()["counsellor"] == "Anna"
        assert claimed.json()["messages"][0]["text"] == "hjälp mig"
        again = await api(server, bert, "POST", f"/api/mailbox/{thread_id}/claim")
        assert (again.status_code, again.json()["code"]) == (409, "already_claimed")
        for method, path, body in [
            ("GET", "", None),
            ("POST", "/answer", {"text": "hej"}),
            ("POST", "/notes", {"text": "x"}),
            ("POST", "/close", {"topics": [], "outcome": "support given"}),
            ("POST", "/delete", None),
        ]:
            refused = await api(server, bert, method, f"/api/mailbox/{thread_id}{path}", json=body)
            assert (refused.status_code, refused.json()["code"]) == (403, "not_your_thread")

        await api(server, anna, "POST", f"/api/mailbox/{thread_id}/answer", json={"text": "Hej!"})
        await api(server, anna, "POST", f"/api/mailbox/{thread_id}/notes", json={"text": "privat"})
        carded = await api(
            server, anna, "POST", f"/api/mailbox/{thread_id}/answer", json={"card": str(service.id)}
        )
        mine = carded.json()
        assert mine["status"] == "answered" and [n["text"] for n in mine["notes"]] == ["privat"]
        shown = (await read(http, code)).json()
        assert shown["status"] == "answered"
        assert [(m["from"], m["kind"], m["alias"]) for m in shown["messages"]] == [
            ("visitor", "text", None),
            ("counsellor", "text", "Anna"),
            ("counsellor", "card", "Anna"),
        ]
        # The card in the visitor's language; the note nowhere.
        assert shown["messages"][2]["card"]["description"] == "Support day and night"
        assert "privat" not in json.dumps(shown)

        bad = await api(
            server, anna, "POST", f"/api/mailbox/{thread_id}/close", json={"topics": ["nope"]}
        )
        assert (bad.status_code, bad.json()["code"]) == (422, "invalid_wrapup")
        closed = await api(
            server,
            anna,
            "POST",
            f"/api/mailbox/{thread_id}/close",
            json={"topics": ["housing"], "outcome": "referred"},
        )
        assert closed.json()["status"] == "closed"
        assert (await read(http, code)).json()["status"] == "closed"
        # Writing again reopens it, to the same counsellor.
        await http.post("/api/visitor/mailbox/write", json={"code": code, "text": "tack"})
        listed = (await api(server, anna, "GET", "/api/mailbox")).json()
        assert listed["waiting"] == [] and [t["status"] for t in listed["mine"]] == ["waiting"]

    assert await written(rt, at_least=1) >= 1
    async with unit_of_work(rt.sessionmaker) as session:
        wrapups = (await session.execute(select(Wrapup))).scalars().all()
        entries = (await session.execute(select(AuditEntry))).scalars().all()
        stats = (await session.execute(select(MailboxStatistic))).scalars().all()
    assert [(w.line_key, w.topics, w.outcome) for w in wrapups] == [
        ("support", ["housing"], "referred")
    ]
    assert wrapups[0].hour.minute == 0
    actions = sorted(e.action for e in entries if e.action.startswith("mailbox."))
    assert actions == [
        "mailbox.answered",
        "mailbox.answered",
        "mailbox.claimed",
        "mailbox.closed",
        "mailbox.noted",
    ]
    for entry in entries:
        if entry.action.startswith("mailbox."):
            assert entry.chat_id is None and entry.at.minute == 0 and entry.line_key == "support"
            assert thread_id not in json.dumps(entry.detail)
    assert [(s.line_key, s.first_answer_hours) for s in stats] == [("support", 0)]


async def test_only_qualified_members_claim_and_coordinators_hand_over(
    server: RunningServer,
) -> None:
    rt = server.runtime
    who = await staff_world(server)
    async with await visitor(server) as http:
        await write_new(http, "hej")
    listed = (await api(server, who["anna"], "GET", "/api/mailbox")).json()
    thread_id = listed["waiting"][0]["id"]
    # Not on the line; on it but a volunteer where psychologists answer.
    for name, code in (("yngve", "not_member"), ("vera", "not_member")):
        refused = await api(server, who[name], "POST", f"/api/mailbox/{thread_id}/claim")
        assert (refused.status_code, refused.json()["code"]) == (403, code)
    mine = await api(server, who["yngve"], "GET", "/api/mailbox", params={"line": "support"})
    assert mine.status_code == 403
    assert (await api(server, who["yngve"], "GET", "/api/mailbox")).json() == {
        "waiting": [],
        "mine": [],
    }
    await api(server, who["anna"], "POST", f"/api/mailbox/{thread_id}/claim")

    holders = await api(server, who["cora"], "GET", "/api/mailbox/lines/support/threads")
    [held] = holders.json()
    assert held["counsellor"] == "Anna" and set(held) == {
        "id",
        "status",
        "counsellor",
        "counsellor_id",
        "last_at",
    }
    ids = {name: await staff_id(rt, name) for name in ("bert", "vera", "yngve", "cora", "anna")}
    for name in ("vera", "yngve", "cora"):
        refused = await api(
            server,
            who["cora"],
            "POST",
            f"/api/mailbox/{thread_id}/hand",
            json={"staff_id": ids[name]},
        )
        assert (refused.status_code, refused.json()["code"]) == (422, "not_eligible"), name
    same = await api(
        server,
        who["cora"],
        "POST",
        f"/api/mailbox/{thread_id}/hand",
        json={"staff_id": ids["anna"]},
    )
    assert same.status_code == 409
    # A counsellor cannot hand over, even their own thread.
    own = await api(
        server,
        who["anna"],
        "POST",
        f"/api/mailbox/{thread_id}/hand",
        json={"staff_id": ids["bert"]},
    )
    assert own.status_code == 403
    handed = await api(
        server,
        who["cora"],
        "POST",
        f"/api/mailbox/{thread_id}/hand",
        json={"staff_id": ids["bert"]},
    )
    assert handed.status_code == 200 and handed.json()["counsellor"] == "Bert"
    assert handed.json()["cancelled"] == {"booked": 0, "offered": 0}
    assert (await api(server, who["anna"], "GET", f"/api/mailbox/{thread_id}")).status_code == 403
    opened = await api(server, who["bert"], "GET", f"/api/mailbox/{thread_id}")
    # Nothing was booked or offered: nothing is cancelled, and the thread says nothing of it.
    assert opened.status_code == 200 and [m["kind"] for m in opened.json()["messages"]] == ["text"]
    await written(rt, at_least=2)
    async with unit_of_work(rt.sessionmaker) as session:
        entries = (await session.execute(select(AuditEntry))).scalars().all()
    [hand] = [e for e in entries if e.action == "mailbox.handed_over"]
    assert str(hand.target_staff_id) == ids["bert"] and str(hand.actor_id) == await staff_id(
        rt, "cora"
    )


async def staff_id(rt: Any, username: str) -> str:
    async with unit_of_work(rt.sessionmaker) as session:
        found = await StaffRepository(session).by_username(username)
    assert found is not None
    return str(found.id)


async def test_of_two_claims_at_once_one_wins(server: RunningServer) -> None:
    who = await staff_world(server)
    async with await visitor(server) as http:
        await write_new(http, "hej")
    thread_id = (await api(server, who["anna"], "GET", "/api/mailbox")).json()["waiting"][0]["id"]
    answers = await asyncio.gather(
        *(
            api(server, who[name], "POST", f"/api/mailbox/{thread_id}/claim")
            for name in ("anna", "bert")
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    [winner] = [a.json()["counsellor"] for a in answers if a.status_code == 200]
    # Claiming one's own thread again changes nothing.
    name = "anna" if winner == "Anna" else "bert"
    again = await api(server, who[name], "POST", f"/api/mailbox/{thread_id}/claim")
    assert again.status_code == 200 and again.json()["counsellor"] == winner


async def test_coordinators_set_the_mailbox_within_its_bounds(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_staff(rt, "cora", StaffRole.coordinator)
    cora = await sign_in_session(server, "cora", PASSWORD)
    settings = (await api(server, cora, "GET", "/api/lines/support/settings")).json()
    assert (settings["mailbox"], settings["mailbox_retention_days"]) == ("closed", 14)
    for change in (
        {"mailbox_retention_days": 0},
        {"mailbox_retention_days": 61},
        {"mailbox": "sometimes"},
        {"mailbox_answer_time": {"de": "bald"}},
    ):
        refused = await api(
            server, cora, "PUT", "/api/lines/support/settings", json={**settings, **change}
        )
        assert refused.status_code == 422, change
    changed = await api(
        server,
        cora,
        "PUT",
        "/api/lines/support/settings",
        json={**settings, "mailbox": "always", "mailbox_retention_days": 60},
    )
    assert changed.status_code == 200
    async with await visitor(server) as http:
        line = (await http.get("/api/lines/support")).json()
    assert line["mailbox"]["retention_days"] == 60 and line["mailbox"]["writable"] is True


async def test_staff_bad_input_is_refused_and_changes_nothing(server: RunningServer) -> None:
    rt = server.runtime
    who = await staff_world(server)
    anna = who["anna"]
    async with await visitor(server) as http:
        code = (await write_new(http, "hej")).json()["code"]
    thread_id = (await api(server, anna, "GET", "/api/mailbox")).json()["waiting"][0]["id"]
    await api(server, anna, "POST", f"/api/mailbox/{thread_id}/claim")
    base = f"/api/mailbox/{thread_id}"
    cases: list[tuple[str, Any, int]] = [
        ("/answer", {}, 422),
        ("/answer", {"text": "hej", "card": str(uuid.uuid4())}, 422),
        ("/answer", {"text": "   "}, 422),
        ("/answer", {"text": "x" * 4001}, 422),
        ("/answer", {"text": "x" * 10_001}, 422),
        ("/answer", {"text": ["not", "text"]}, 422),
        ("/answer", {"card": "not-a-uuid"}, 422),
        ("/answer", {"card": str(uuid.uuid4())}, 404),
        ("/answer", {"text": "hej", "extra": 1}, 422),
        ("/notes", {"text": ""}, 422),
        ("/close", {"topics": ["x"] * 101, "outcome": "referred"}, 422),
        ("/close", {"topics": [], "outcome": "made up"}, 422),
    ]
    for path, body, status in cases:
        response = await api(server, anna, "POST", base + path, json=body)
        assert response.status_code == status, (path, body, response.text)
        assert "xxxxxxxxxx" not in response.text
    malformed = await api(server, anna, "POST", "/api/mailbox/not-a-uuid/claim")
    assert malformed.status_code == 422
    unknown = await api(server, anna, "POST", f"/api/mailbox/{uuid.uuid4()}/claim")
    assert unknown.status_code == 404
    too_long_line = await api(server, anna, "GET", "/api/mailbox", params={"line": "x" * 40})
    assert too_long_line.status_code == 422
    async with await visitor(server) as http:
        thread = (await read(http, code)).json()
    assert thread["status"] == "waiting" and len(thread["messages"]) == 1
    async with unit_of_work(rt.sessionmaker) as session:
        assert len((await session.execute(select(MailboxMessage))).all()) == 1


async def test_a_flood_of_new_threads_is_refused(lykta: ServerFactory) -> None:
    async with lykta(mailbox_new_threads=3) as server:
        await add_line(server.runtime)
        async with await visitor(server) as http:
            statuses = [(await write_new(http, f"nummer {n}")).status_code for n in range(4)]
            refused = await write_new(http, "en till")
        assert statuses == [201, 201, 201, 429]
        assert refused.json()["code"] == "too_many_threads"
        async with unit_of_work(server.runtime.sessionmaker) as session:
            assert len((await session.execute(select(MailboxThread))).all()) == 3


async def test_a_language_without_a_word_list_gets_a_digit_code(server: RunningServer) -> None:
    await add_line(server.runtime, languages=["sv", "en", "ar"])
    async with await visitor(server) as http:
        made = (await write_new(http, "مرحبا", language="ar")).json()
        groups = made["code"].split()
        assert len(groups) == 4 and all(len(g) == 4 and g.isdigit() for g in groups)
        thread = (await read(http, "".join(groups))).json()
        assert thread["messages"][0]["text"] == "مرحبا"
