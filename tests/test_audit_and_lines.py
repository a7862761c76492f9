"""The audit log (read and filter; nobody edits it) and the coordinators' line settings."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.kit.db import unit_of_work
from app.kit.migrate import upgrade
from app.models.enums import StaffRole
from tests.support.clients import (
    SignedIn,
    api,
    open_chat,
    open_staff,
    open_visitor,
    sign_in_session,
)
from tests.support.held import written
from tests.support.postgres import fresh_database
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff, line_settings
from tests.support.server import RunningServer


async def coordinator(server: RunningServer) -> SignedIn:
    await add_staff(server.runtime, "cora", StaffRole.coordinator)
    return await sign_in_session(server, "cora", PASSWORD)


async def test_coordinators_read_and_filter_the_audit_log(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    anna_id = await add_counsellor(rt, "anna")
    cora = await coordinator(server)
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_chat(server, anna)
    await visitor.say("a message whose text never reaches the audit log")
    await api(server, cora, "PATCH", f"/api/staff/{anna_id}", json={"capacity": 3})

    # An entry about a chat is shown once its hour is over; the others at once.
    before = (await api(server, cora, "GET", "/api/audit")).json()["entries"]
    assert {e["action"] for e in before} == {"sign_in", "staff.updated"}
    assert await written(rt, at_least=1) == 1
    everything = await api(server, cora, "GET", "/api/audit")
    assert everything.status_code == 200
    entries = everything.json()["entries"]
    assert "never reaches the audit log" not in everything.text
    actions = [e["action"] for e in entries]
    assert set(actions) == {"sign_in", "chat.accepted", "staff.updated"}
    assert actions.count("sign_in") == 2
    accepted = next(e for e in entries if e["action"] == "chat.accepted")
    assert accepted["chat_id"] == visitor.chat_id and accepted["actor"] == "anna"
    assert accepted["at"].endswith("00:00Z")
    updated = next(e for e in entries if e["action"] == "staff.updated")
    assert (updated["actor"], updated["target"], updated["detail"]) == (
        "cora",
        "anna",
        {"fields": ["capacity"]},
    )

    async def actions_for(**params: Any) -> list[str]:
        response = await api(server, cora, "GET", "/api/audit", params=params)
        assert response.status_code == 200, response.text
        return sorted(e["action"] for e in response.json()["entries"])

    assert await actions_for(action="chat") == ["chat.accepted"]
    assert await actions_for(action="sign_in") == ["sign_in", "sign_in"]
    assert await actions_for(staff_id=anna_id) == ["chat.accepted", "sign_in", "staff.updated"]
    assert await actions_for(target_staff_id=anna_id) == ["staff.updated"]
    # A chat id is a filter only in the body of a search (never in a URL).
    searched = await api(
        server, cora, "POST", "/api/audit/search", json={"chat_id": visitor.chat_id}
    )
    assert searched.status_code == 200, searched.text
    assert [e["action"] for e in searched.json()["entries"]] == ["chat.accepted"]
    for body in (
        {"chat_id": "<script>"},
        {"limit": 0},
        {"since": "2026-01-01T00:00:00"},
        {"x": 1},
        # As the OpenAPI document says: a number is a number, a time is RFC 3339.
        {"offset": False},
        {"limit": "5"},
        {"until": 0.5},
        {"since": "2026-01-01"},
    ):
        refused = await api(server, cora, "POST", "/api/audit/search", json=body)
        assert refused.status_code == 422, (body, refused.text)
    assert await actions_for(line="support") == ["chat.accepted"]
    assert await actions_for(since="2999-01-01T00:00:00Z") == []
    assert await actions_for(until="2000-01-01T00:00:00Z") == []
    assert len(await actions_for(limit=1)) == 1
    assert len(await actions_for(limit=1, offset=1)) == 1

    for params in (
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
        {"staff_id": "not-a-uuid"},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},
        {"action": "x" * 49},
        {"until": "0.5"},
        {"since": "1767225600"},
        {"action": "sign_in\x00"},
    ):
        response = await api(server, cora, "GET", "/api/audit", params=params)
        assert response.status_code == 422, (params, response.text)


async def test_nobody_can_change_the_audit_log(server: RunningServer) -> None:
    await add_line(server.runtime)
    cora = await coordinator(server)
    admin_id = await add_staff(server.runtime, "ada", StaffRole.admin)
    ada = await sign_in_session(server, "ada", PASSWORD)
    for who in (cora, ada):
        for method in ("PUT", "PATCH", "DELETE", "POST"):
            response = await api(server, who, method, "/api/audit", json={})
            assert response.status_code == 405, (method, response.text)
    async with unit_of_work(server.runtime.sessionmaker) as session:
        count = (await session.execute(text("SELECT count(*) FROM audit_log"))).scalar_one()
    assert count == 2
    for statement, params in (
        ("UPDATE audit_log SET action = 'nothing'", {}),
        ("DELETE FROM audit_log", {}),
        (
            "UPDATE audit_log SET actor_id = NULL WHERE actor_id = :actor",
            {"actor": uuid.UUID(admin_id).hex},
        ),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with unit_of_work(server.runtime.sessionmaker) as session:
                await session.execute(text(statement), params)


@pytest.mark.postgres
async def test_the_audit_log_is_append_only_in_postgresql() -> None:
    async with fresh_database() as url:
        await upgrade(url)
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await connection.execute(
                "INSERT INTO audit_log (id, at, action, detail) "
                "VALUES ($1, now(), 'sign_in', '{}')",
                uuid.uuid4(),
            )
            for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
                with pytest.raises(asyncpg.RaiseError, match="append-only"):
                    await connection.execute(statement)
            assert await connection.fetchval("SELECT count(*) FROM audit_log") == 1
        finally:
            await connection.close()


async def test_coordinators_change_line_settings_and_every_visitor_sees_it(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    cora = await coordinator(server)
    current = await api(server, cora, "GET", "/api/lines/support/settings")
    assert current.status_code == 200
    assert current.json() == line_settings().model_dump(mode="json")
    changed = {**current.json(), "max_message_length": 20, "name": "Stödchatten"}
    response = await api(server, cora, "PUT", "/api/lines/support/settings", json=changed)
    assert response.status_code == 200, response.text
    public = (await api(server, None, "GET", "/api/lines/support")).json()
    assert (public["name"], public["max_message_length"]) == ("Stödchatten", 20)
    # The chat path reads the reloaded directory at once.
    await open_staff(server, "anna", PASSWORD)
    visitor = await open_visitor(server)
    await visitor.start()
    await visitor.send({"type": "message", "text": "x" * 21})
    assert (await visitor.expect("error"))["code"] == "message_too_long"
    log = (await api(server, cora, "GET", "/api/audit", params={"action": "line"})).json()
    assert [(e["action"], e["line_key"], e["detail"]) for e in log["entries"]] == [
        ("line.updated", "support", {"fields": ["max_message_length", "name"]})
    ]

    # Canned responses (for counsellors) and a privacy note (for visitors) per language.
    canned = [{"language": "en", "title": "Greeting", "text": "Hi, I am here to listen."}]
    with_texts = {**changed, "canned_responses": canned, "privacy_note": {"en": "No logs."}}
    response = await api(server, cora, "PUT", "/api/lines/support/settings", json=with_texts)
    assert response.status_code == 200, response.text
    assert response.json()["canned_responses"] == canned
    assert rt.lines.get("support").canned_responses == tuple(canned)  # type: ignore[union-attr]
    public = (await api(server, None, "GET", "/api/lines/support")).json()
    assert public["privacy_note"] == {"en": "No logs."}
    assert "canned_responses" not in public

    before = (await api(server, cora, "GET", "/api/lines/support/settings")).json()
    stray = [{"language": "de", "title": "Hallo", "text": "Hallo"}]
    bad: list[tuple[str, str, Any, int]] = [
        ("PUT", "/api/lines/support/settings", {**before, "canned_responses": stray}, 422),
        ("PUT", "/api/lines/support/settings", {**before, "privacy_note": {"en": "x" * 301}}, 422),
        ("PUT", "/api/lines/support/settings", {**before, "peer_relax_seconds": -1}, 422),
        ("PUT", "/api/lines/support/settings", {**before, "key": "youth"}, 422),
        ("PUT", "/api/lines/support/settings", {**before, "offer_timeout_seconds": 0}, 422),
        ("PUT", "/api/lines/support/settings", {**before, "languages": []}, 422),
        ("PUT", "/api/lines/support/settings", {**before, "alternatives": {"de": "x"}}, 422),
        ("PUT", "/api/lines/support/settings", {**before, "colour": "red"}, 422),
        ("PUT", "/api/lines/support/settings", {"name": "only a name"}, 422),
        ("PUT", "/api/lines/nowhere/settings", {**before, "key": "nowhere"}, 404),
        ("GET", "/api/lines/nowhere/settings", None, 404),
        ("GET", "/api/lines/Bad Key!/settings", None, 422),
        ("POST", "/api/lines", before, 409),
        ("POST", "/api/lines", {**before, "key": "Not A Key"}, 422),
    ]
    for method, path, body, code in bad:
        result = await api(server, cora, method, path, json=body)
        assert result.status_code == code, (method, path, result.text)
    assert (await api(server, cora, "GET", "/api/lines/support/settings")).json() == before

    created = await api(
        server, cora, "POST", "/api/lines", json={**before, "key": "night", "name": "Night"}
    )
    assert created.status_code == 201
    keys = [line["key"] for line in (await api(server, None, "GET", "/api/lines")).json()]
    assert keys == ["night", "support"]
    log = (await api(server, cora, "GET", "/api/audit", params={"action": "line"})).json()
    assert sorted((e["action"], e["line_key"]) for e in log["entries"]) == [
        ("line.created", "night"),
        ("line.updated", "support"),
        ("line.updated", "support"),
    ]


async def test_a_transfer_is_audited_without_its_note(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_line(rt, "youth")
    await add_counsellor(rt, "anna")
    await add_counsellor(rt, "bo", lines=("youth",))
    cora = await coordinator(server)
    anna = await open_staff(server, "anna", PASSWORD)
    await open_staff(server, "bo", PASSWORD)
    visitor = await open_chat(server, anna)
    await anna.send(
        {
            "type": "transfer",
            "chat_id": visitor.chat_id,
            "line": "youth",
            "note": "a handover note that stays out of the log",
        }
    )
    await anna.expect("chat.released", chat_id=visitor.chat_id)
    await written(rt, at_least=2)  # accepted, transferred
    response = await api(server, cora, "GET", "/api/audit", params={"action": "chat.transferred"})
    assert "handover note" not in response.text
    [entry] = response.json()["entries"]
    assert (entry["actor"], entry["chat_id"], entry["line_key"], entry["detail"]) == (
        "anna",
        visitor.chat_id,
        "youth",
        {"to_line": "youth"},
    )


async def test_admins_see_the_deployment_without_its_secrets(server: RunningServer) -> None:
    await add_staff(server.runtime, "ada", StaffRole.admin)
    ada = await sign_in_session(server, "ada", PASSWORD)
    response = await api(server, ada, "GET", "/api/admin/deployment")
    assert response.status_code == 200
    body = response.json()
    assert body["environment"] == "development" and body["totp_required"] is True
    assert body["database"] == "sqlite" and body["broker"] == "memory"
    assert body["kek_ids"] == ["dev"]
    settings = server.settings
    for secret in (
        settings.secret_key.get_secret_value(),
        settings.keks.get_secret_value().split(":", 1)[1],
    ):
        assert secret not in response.text
