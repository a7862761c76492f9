"""Staff accounts end to end: invitation, enrolment, sign-in, TOTP, sessions, lockout, reset."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select, update
from websockets.exceptions import ConnectionClosed

from app.audit.repository import AuditFilter
from app.audit.service import audit_service
from app.chats.crypto import generate_kek
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.models import Enrolment, Staff, StaffSession
from app.models.enums import StaffRole
from app.staff.service import staff_service
from tests.conftest import ServerFactory
from tests.support.clients import (
    SignedIn,
    api,
    code_used_now,
    connect_staff_socket,
    fresh_code,
    open_chat,
    open_staff,
    sign_in_session,
)
from tests.support.seed import (
    PASSWORD,
    RECOVERY_CODES,
    TOTP_SECRETS,
    add_counsellor,
    add_line,
    add_staff,
)
from tests.support.server import RunningServer

NEW_PASSWORD = "violet tram under the bridge"


async def coordinator(server: RunningServer, name: str = "cora") -> SignedIn:
    await add_staff(server.runtime, name, StaffRole.coordinator)
    return await sign_in_session(server, name, PASSWORD)


async def audit(server: RunningServer, **where: Any) -> list[Any]:
    async with unit_of_work(server.runtime.sessionmaker) as session:
        return list(await audit_service.search(session, AuditFilter(**where), limit=500, offset=0))


async def invite(server: RunningServer, who: SignedIn, **fields: Any) -> dict[str, Any]:
    body = {
        "username": "sara",
        "alias": "Sara",
        "role": "counsellor",
        "qualification": "psychologist",
        "languages": ["sv", "en"],
        "lines": [{"key": "support"}],
        **fields,
    }
    response = await api(server, who, "POST", "/api/staff", json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def post(server: RunningServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return await api(server, None, "POST", path, json=body)


async def sign_in_raw(server: RunningServer, body: dict[str, Any]) -> httpx.Response:
    return await post(server, "/api/staff/session", body)


async def test_invitation_enrolment_and_first_sign_in(server: RunningServer) -> None:
    await add_line(server.runtime)
    cora = await coordinator(server)
    invited = await invite(server, cora)
    token = invited["enrolment"]["token"]
    assert invited["enrolment"]["link"] == f"{server.settings.public_url}/enrol#{token}"
    assert invited["staff"]["password_set"] is False
    assert invited["staff"]["totp_enrolled"] is False
    [entry] = await audit(server, action="staff.invited")
    assert str(entry.target_staff_id) == invited["staff"]["id"]
    assert entry.detail == {"role": "counsellor", "lines": ["support"]}
    status = await post(server, "/api/enrolment/status", {"token": token})
    assert status.status_code == 200
    assert status.json()["needs_password"] and status.json()["needs_totp"]
    # Without an enrolled account nothing signs in, not even with some password.
    refused = await sign_in_raw(server, {"username": "sara", "password": NEW_PASSWORD})
    assert refused.status_code == 401

    setup = await post(server, "/api/enrolment/totp", {"token": token})
    assert setup.status_code == 200
    secret = setup.json()["secret"]
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/Lykta:sara?secret=")
    png = base64.b64decode(setup.json()["qr_png"].removeprefix("data:image/png;base64,"))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    totp = pyotp.TOTP(secret)

    bad_inputs: list[tuple[dict[str, Any], str]] = [
        ({"token": token, "code": totp.now()}, "choose a password"),
        ({"token": token, "password": "short", "code": totp.now()}, "at least 12"),
        ({"token": token, "password": "password1234", "code": totp.now()}, "common passwords"),
        ({"token": token, "password": "sara-from-lykta!", "code": totp.now()}, "your name"),
        ({"token": token, "password": NEW_PASSWORD}, "enter the code"),
        ({"token": token, "password": NEW_PASSWORD, "code": "000000"}, "does not match"),
    ]
    for body, message in bad_inputs:
        response = await post(server, "/api/enrolment/complete", body)
        assert response.status_code == 422, (body, response.text)
        assert message in response.json()["detail"]
    assert (await post(server, "/api/enrolment/status", {"token": token})).status_code == 200

    done = await post(
        server,
        "/api/enrolment/complete",
        {"token": token, "password": NEW_PASSWORD, "code": (enrolled_with := totp.now())},
    )
    assert done.status_code == 200, done.text
    codes = done.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    # The link worked once.
    for path in ("/api/enrolment/status", "/api/enrolment/totp", "/api/enrolment/complete"):
        again = await post(server, path, {"token": token})
        assert again.status_code == 410
        assert again.json() == {"detail": "this enrolment link has expired or was already used"}
    # Recovery codes and the TOTP secret are not stored in the clear.
    async with unit_of_work(server.runtime.sessionmaker) as session:
        staff = await staff_service.find(session, "sara")
        assert staff is not None and staff.totp_secret is not None
        assert secret not in staff.totp_secret
    assert (await audit(server, action="enrolment.completed"))[0].actor_id == staff.id

    # The code used for enrolment is spent; the next one signs in.
    spent = await sign_in_raw(
        server, {"username": "sara", "password": NEW_PASSWORD, "code": enrolled_with}
    )
    assert spent.status_code == 401
    ok = await sign_in_raw(
        server,
        {"username": "sara", "password": NEW_PASSWORD, "code": totp.at(time.time() + 30)},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["recovery_codes_left"] == 10


async def test_an_expired_enrolment_link_is_refused(server: RunningServer) -> None:
    await add_line(server.runtime)
    cora = await coordinator(server)
    token = (await invite(server, cora))["enrolment"]["token"]
    async with unit_of_work(server.runtime.sessionmaker) as session:
        await session.execute(update(Enrolment).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = await post(server, "/api/enrolment/status", {"token": token})
    assert response.status_code == 410
    for body in ({"token": "short"}, {"token": "x" * 500}, {}, {"token": token, "extra": 1}):
        assert (await post(server, "/api/enrolment/status", body)).status_code == 422


async def test_a_totp_code_and_a_recovery_code_are_each_accepted_once(
    lykta: ServerFactory,
) -> None:
    async with lykta(sign_in_rate_per_minute=100) as server:
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna")
        code = await fresh_code("anna")
        first = await sign_in_raw(server, {"username": "anna", "password": PASSWORD, "code": code})
        assert first.status_code == 200
        replay = await sign_in_raw(server, {"username": "anna", "password": PASSWORD, "code": code})
        assert replay.status_code == 401
        assert replay.json() == {"detail": "wrong username, password or code"}
        recovery = RECOVERY_CODES["anna"][0]
        # Typed with spaces and capitals, as people do.
        typed = recovery.upper().replace("-", " ")
        used = await sign_in_raw(server, {"username": "anna", "password": PASSWORD, "code": typed})
        assert used.status_code == 200 and used.json()["recovery_codes_left"] == 9
        again = await sign_in_raw(
            server, {"username": "anna", "password": PASSWORD, "code": recovery}
        )
        assert again.status_code == 401
        missing = await sign_in_raw(server, {"username": "anna", "password": PASSWORD})
        assert missing.status_code == 401
        wrong_password = await sign_in_raw(
            server,
            {"username": "anna", "password": "nope", "code": await fresh_code("anna")},
        )
        assert wrong_password.json() == replay.json() == missing.json()
        reasons = [e.detail for e in await audit(server, action="sign_in.failed")]
        assert sorted(r["reason"] for r in reasons) == ["code", "code", "code", "password"]
        # "sign_in" names the family (failures too); successes are the plain entries.
        entries = await audit(server, action="sign_in")
        assert {e.action for e in entries} == {"sign_in", "sign_in.failed"}
        factors = sorted(e.detail["factor"] for e in entries if e.action == "sign_in")
        assert factors == ["recovery_code", "totp"]


async def test_sign_in_is_slowed_then_locked_the_same_for_real_and_unknown_accounts(
    lykta: ServerFactory,
) -> None:
    async with lykta(
        sign_in_rate_per_minute=100, sign_in_slow_after=2, sign_in_lock_after=4
    ) as server:
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna")

        async def attempts(username: str) -> list[tuple[int, str]]:
            seen = []
            for _ in range(4):
                response = await sign_in_raw(
                    server, {"username": username, "password": "guess", "code": "123456"}
                )
                seen.append((response.status_code, response.json()["detail"]))
                if response.status_code == 401:
                    continue
                # Slowed: refused at once, without checking the password.
                assert response.status_code == 429
                wait = int(response.headers["retry-after"])
                assert 1 <= wait <= 2
                # A person waits as long as told; then the next attempt is heard.
                await wait_out(server, wait)
                again = await sign_in_raw(
                    server, {"username": username, "password": "guess", "code": "123456"}
                )
                seen.append((again.status_code, again.json()["detail"]))
            return seen

        real = await attempts("anna")
        unknown = await attempts("nobody-here")
        assert [s for s, _ in real] == [s for s, _ in unknown]
        assert real[0] == (401, "wrong username, password or code")
        # Locked now: even the right password and code are refused, for 15 minutes.
        locked = await sign_in_raw(
            server, {"username": "anna", "password": PASSWORD, "code": await fresh_code("anna")}
        )
        assert locked.status_code == 429
        assert 800 < int(locked.headers["retry-after"]) <= 900
        assert len(await audit(server, action="sign_in.locked")) == 1


async def wait_out(server: RunningServer, seconds: int) -> None:
    """Wait as long as Retry-After said, by the broker's clock (the one the server uses)."""
    import asyncio

    target = server.runtime.broker.now() + seconds
    await asyncio.sleep(max(0.0, target - server.runtime.broker.now()) + 0.05)


async def test_a_client_with_many_failures_is_locked_whatever_the_username(
    lykta: ServerFactory,
) -> None:
    async with lykta(
        sign_in_rate_per_minute=100, sign_in_slow_after=50, sign_in_client_lock_after=5
    ) as server:
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna")
        for n in range(5):
            response = await sign_in_raw(server, {"username": f"guess{n}", "password": "x"})
            assert response.status_code == 401
        right = await sign_in_raw(
            server, {"username": "anna", "password": PASSWORD, "code": await fresh_code("anna")}
        )
        assert right.status_code == 429


async def test_sessions_rotate_expire_and_end(server: RunningServer) -> None:
    await add_line(server.runtime)
    await add_counsellor(server.runtime, "anna")
    first = await sign_in_session(server, "anna", PASSWORD)
    # Signing in again from the same browser replaces its session.
    async with httpx.AsyncClient(base_url=server.url, cookies=first.cookies) as http:
        response = await http.post(
            "/api/staff/session",
            json={"username": "anna", "password": PASSWORD, "code": await fresh_code("anna")},
        )
        assert response.status_code == 200
        second = SignedIn(response.cookies["lykta_session"], response.json()["csrf_token"])
    assert second.cookie != first.cookie and second.csrf != first.csrf
    assert (await api(server, first, "GET", "/api/staff/me")).status_code == 401
    me = await api(server, second, "GET", "/api/staff/me")
    assert me.status_code == 200 and me.json()["csrf_token"] == second.csrf
    assert me.json()["permissions"] == [
        "own_account",
        "own_shifts",
        "read_directory",
        "take_chats",
    ]

    forged = SignedIn("forged-" + second.cookie[7:], second.csrf)
    assert (await api(server, forged, "GET", "/api/staff/me")).status_code == 401

    # Idle for longer than the idle timeout: gone, and the WebSocket will not open.
    async with unit_of_work(server.runtime.sessionmaker) as session:
        await session.execute(
            update(StaffSession).values(last_seen_at=utcnow() - timedelta(minutes=61))
        )
    assert (await api(server, second, "GET", "/api/staff/me")).status_code == 401
    async with await connect_staff_socket(server, second) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001

    # Past the absolute lifetime, however active.
    third = await sign_in_session(server, "anna", PASSWORD)
    async with unit_of_work(server.runtime.sessionmaker) as session:
        row = (await session.execute(select(StaffSession))).scalars().one()
        assert row.expires_at - row.created_at == timedelta(hours=12)
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert (await api(server, third, "GET", "/api/staff/me")).status_code == 401


async def test_the_session_cookie_is_httponly_strict_and_secure_outside_development(
    lykta: ServerFactory,
) -> None:
    async with lykta() as server:
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna")
        response = await sign_in_raw(
            server, {"username": "anna", "password": PASSWORD, "code": await fresh_code("anna")}
        )
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("lykta_session=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie
    production = {
        "environment": "production",
        "secret_key": "p" * 40,
        "keks": generate_kek("k1"),
        "session_idle_minutes": 5,
        "session_absolute_hours": 2,
    }
    async with lykta(**production) as server:
        # Another account: TOTP secrets are sealed under the deployment's own secret key.
        await add_counsellor(server.runtime, "per")
        response = await sign_in_raw(
            server, {"username": "per", "password": PASSWORD, "code": await fresh_code("per")}
        )
        assert response.status_code == 200, (response.text, await audit(server))
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("__Host-lykta_session=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Max-Age=7200" in cookie


async def test_demo_accounts_are_refused_outside_development(lykta: ServerFactory) -> None:
    production = {"environment": "production", "secret_key": "p" * 40, "keks": generate_kek("k")}
    async with lykta(**production) as server:
        async with unit_of_work(server.runtime.sessionmaker) as session:
            await staff_service.create(
                session,
                username="demo",
                alias="Demo",
                role=StaffRole.coordinator,
                password=PASSWORD,
                demo=True,
            )
        response = await sign_in_raw(server, {"username": "demo", "password": PASSWORD})
        assert response.status_code == 401
        # Nor does the sign-in page say that any account goes without a code.
        page = await api(server, None, "GET", "/api/staff/session")
        assert page.json() == {"signed_in": False, "code_hint": None}


async def test_the_sign_in_page_asks_without_a_refusal_and_hints_only_at_the_deployment(
    lykta: ServerFactory,
) -> None:
    async with lykta() as server:
        # Not signed in is an answer, not a 401 (which a browser logs as an error).
        page = await api(server, None, "GET", "/api/staff/session")
        assert page.status_code == 200
        assert page.json() == {"signed_in": False, "code_hint": None}
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna")
        anna = await sign_in_session(server, "anna", PASSWORD)
        assert (await api(server, anna, "GET", "/api/staff/session")).json()["signed_in"] is True
        # With demo accounts in development the form may say they need no code: the same
        # answer for everyone, naming no account.
        async with unit_of_work(server.runtime.sessionmaker) as session:
            await staff_service.create(
                session,
                username="demo",
                alias="Demo",
                role=StaffRole.coordinator,
                password=PASSWORD,
                demo=True,
            )
        for who in (None, anna):
            page = await api(server, who, "GET", "/api/staff/session")
            assert page.json()["code_hint"] == "demo"
    async with lykta(totp_required=False) as server:
        page = await api(server, None, "GET", "/api/staff/session")
        assert page.json() == {"signed_in": False, "code_hint": "optional"}


async def test_deactivation_ends_sessions_closes_sockets_and_requeues_chats(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    anna_id = await add_counsellor(rt, "anna")
    await add_counsellor(rt, "bo")
    cora = await coordinator(server)
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_chat(server, anna)
    await visitor.expect("counsellor.joined")
    bo = await open_staff(server, "bo", PASSWORD)

    response = await api(server, cora, "POST", f"/api/staff/{anna_id}/deactivate")
    assert response.status_code == 200 and response.json()["is_active"] is False
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await anna.ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    # At once, not after a grace period: the visitor is back in the queue and Bo is offered it.
    left = await visitor.expect("counsellor.left")
    assert left["reason"] == "counsellor_disconnected"
    await visitor.expect("queue.position")
    offer = await bo.expect("offer", chat_id=visitor.chat_id)
    assert offer["chat_id"] == visitor.chat_id
    refused = await sign_in_raw(
        server, {"username": "anna", "password": PASSWORD, "code": await fresh_code("anna")}
    )
    assert refused.status_code == 401
    entries = await audit(server, action="staff.deactivated")
    assert [(str(e.target_staff_id), e.chat_id) for e in entries] == [(anna_id, None)]
    back = await api(server, cora, "POST", f"/api/staff/{anna_id}/reactivate")
    assert back.status_code == 200 and back.json()["is_active"] is True
    assert (
        len(await audit(server, action="staff.reactivated", target_staff_id=uuid.UUID(anna_id)))
        == 1
    )
    twice = await api(server, cora, "POST", f"/api/staff/{anna_id}/reactivate")
    assert twice.status_code == 409 and twice.json() == {"detail": "this account is active"}
    assert (await sign_in_session(server, "anna", PASSWORD)).cookie


async def test_a_coordinator_resets_password_and_totp(lykta: ServerFactory) -> None:
    async with lykta(sign_in_rate_per_minute=100) as server:
        await add_line(server.runtime)
        anna_id = await add_counsellor(server.runtime, "anna")
        cora = await coordinator(server)
        anna = await sign_in_session(server, "anna", PASSWORD)
        response = await api(
            server,
            cora,
            "POST",
            f"/api/staff/{anna_id}/reset",
            json={"password": True, "totp": True},
        )
        assert response.status_code == 200, response.text
        assert response.json()["staff"]["password_set"] is False
        assert response.json()["staff"]["totp_enrolled"] is False
        token = response.json()["enrolment"]["token"]
        assert (await api(server, anna, "GET", "/api/staff/me")).status_code == 401
        old = await sign_in_raw(
            server, {"username": "anna", "password": PASSWORD, "code": await fresh_code("anna")}
        )
        assert old.status_code == 401
        setup = await post(server, "/api/enrolment/totp", {"token": token})
        totp = pyotp.TOTP(setup.json()["secret"])
        done = await post(
            server,
            "/api/enrolment/complete",
            {"token": token, "password": NEW_PASSWORD, "code": totp.now()},
        )
        assert done.status_code == 200
        assert done.json()["recovery_codes"] != RECOVERY_CODES["anna"]
        TOTP_SECRETS["anna"] = setup.json()["secret"]
        code_used_now(setup.json()["secret"])
        assert (await sign_in_session(server, "anna", NEW_PASSWORD)).cookie
        entries = await audit(server, action="staff.reset")
        assert entries[0].detail == {"password": True, "totp": True}


async def test_managing_staff_refuses_bad_input_and_changes_nothing(
    lykta: ServerFactory,
) -> None:
    async with lykta(max_body_bytes=4096) as server:
        rt = server.runtime
        await add_line(rt)
        anna_id = await add_counsellor(rt, "anna")
        admin_id = await add_staff(rt, "ada", StaffRole.admin)
        cora = await coordinator(server)
        before = (await api(server, cora, "GET", "/api/staff")).json()
        anna = f"/api/staff/{anna_id}"
        cases: list[tuple[str, str, Any, int, str | None]] = [
            ("PATCH", anna, {"capacity": 9}, 422, None),
            ("PATCH", anna, {"capacity": "lots"}, 422, None),
            ("PATCH", anna, {"capacity": True}, 422, None),
            ("PATCH", anna, {"capacity": "3"}, 422, None),
            ("PATCH", anna, {"is_peer": "yes"}, 422, None),
            ("PATCH", anna, {"is_supervisor": 1}, 422, None),
            ("PATCH", anna, {"alias": "An\x00na"}, 422, "invalid_text"),
            ("PATCH", anna, {"alias": None}, 422, "alias cannot be null"),
            ("PATCH", anna, {"alias": "\u0007bell"}, 422, None),
            ("PATCH", anna, {"languages": ["sv", "sv"]}, 422, None),
            ("PATCH", anna, {"languages": ["not a language"]}, 422, None),
            ("PATCH", anna, {"lines": [{"key": "nowhere"}]}, 422, "no line 'nowhere'"),
            ("PATCH", anna, {"lines": [{"key": "support"}, {"key": "support"}]}, 422, None),
            ("PATCH", anna, {"qualification": None}, 422, "needs a qualification"),
            ("PATCH", anna, {"is_admin": True}, 422, None),
            ("PATCH", anna, {"role": "admin"}, 403, "may not change this account"),
            ("PATCH", f"/api/staff/{admin_id}", {"capacity": 1}, 403, None),
            ("POST", f"/api/staff/{admin_id}/reset", {"password": True}, 403, None),
            ("POST", f"/api/staff/{admin_id}/deactivate", None, 403, None),
            ("PATCH", f"/api/staff/{uuid.uuid4()}", {"capacity": 1}, 404, "no such staff member"),
            ("PATCH", "/api/staff/not-a-uuid", {"capacity": 1}, 422, None),
            (
                "POST",
                "/api/staff",
                {
                    "username": "anna",
                    "alias": "A",
                    "role": "counsellor",
                    "qualification": "volunteer",
                },
                409,
                "already exists",
            ),
            (
                "POST",
                "/api/staff",
                {
                    "username": "x y",
                    "alias": "A",
                    "role": "counsellor",
                    "qualification": "volunteer",
                },
                422,
                None,
            ),
            (
                "POST",
                "/api/staff",
                {
                    "username": "c1",
                    "alias": "C",
                    "role": "coordinator",
                    "qualification": "volunteer",
                },
                403,
                None,
            ),
            (
                "POST",
                "/api/staff",
                {"username": "v1", "alias": "V", "role": "counsellor"},
                422,
                "needs a qualification",
            ),
            ("POST", "/api/staff", {"username": "a" * 5000}, 413, None),
            ("POST", "/api/staff", "not json", 422, None),
        ]
        for method, path, body, code, message in cases:
            if isinstance(body, str):
                response = await api(
                    server, cora, method, path, headers={"content-type": "application/json"}
                )
            else:
                response = await api(server, cora, method, path, json=body)
            assert response.status_code == code, (method, path, body, response.text)
            if message is not None:
                assert message in str(response.json()["detail"]), response.text
        assert (await api(server, cora, "GET", "/api/staff")).json() == before
        me = (await api(server, cora, "GET", "/api/staff/me")).json()["id"]
        self_off = await api(server, cora, "POST", f"/api/staff/{me}/deactivate")
        assert self_off.status_code == 403  # coordinators are managed by admins
        ada = await sign_in_session(server, "ada", PASSWORD)
        last = await api(
            server, ada, "PATCH", f"/api/staff/{admin_id}", json={"role": "coordinator"}
        )
        assert last.status_code == 409 and "own role" in last.json()["detail"]
        alone = await api(server, ada, "POST", f"/api/staff/{admin_id}/deactivate")
        assert alone.status_code == 409 and "yourself" in alone.json()["detail"]


async def test_a_profile_change_reaches_an_open_console(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_line(rt, "youth")
    anna_id = await add_counsellor(rt, "anna")
    cora = await coordinator(server)
    anna = await open_staff(server, "anna", PASSWORD)
    response = await api(
        server,
        cora,
        "PATCH",
        f"/api/staff/{anna_id}",
        json={"is_supervisor": True, "capacity": 4, "lines": [{"key": "youth"}]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["lines"] == [{"key": "youth"}]
    profile = await anna.expect("profile")
    assert profile["staff"]["supervisor"] is True and profile["staff"]["capacity"] == 4
    assert "supervise" in profile["permissions"]
    assert [line["key"] for line in profile["lines"]] == ["youth"]
    entry = (await audit(server, action="staff.updated"))[0]
    assert sorted(entry.detail["fields"]) == ["capacity", "is_supervisor", "lines"]
    demoted = await api(
        server, cora, "PATCH", f"/api/staff/{anna_id}", json={"role": "coordinator"}
    )
    assert demoted.status_code == 403  # coordinators cannot hand out the coordinator role
    async with unit_of_work(rt.sessionmaker) as session:
        staff = await session.get(Staff, uuid.UUID(anna_id))
        assert staff is not None and staff.role is StaffRole.counsellor


async def test_signing_out_closes_that_sessions_sockets_only(lykta: ServerFactory) -> None:
    async with lykta(sign_in_rate_per_minute=100) as server:
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna")
        laptop = await sign_in_session(server, "anna", PASSWORD)
        phone = await sign_in_session(server, "anna", PASSWORD)
        on_laptop = await open_staff(server, "anna", PASSWORD, cookie=laptop.cookie)
        on_phone = await open_staff(server, "anna", PASSWORD, cookie=phone.cookie)
        assert (await api(server, laptop, "DELETE", "/api/staff/session")).status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await on_laptop.ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        await on_phone.send({"type": "ping"})
        await on_phone.expect("pong")
        assert (await api(server, phone, "GET", "/api/staff/me")).status_code == 200
        assert len(await audit(server, action="sign_out")) == 1


async def test_a_counsellor_made_coordinator_loses_the_chat_socket_at_once(
    server: RunningServer,
) -> None:
    await add_line(server.runtime)
    anna_id = await add_counsellor(server.runtime, "anna")
    await add_staff(server.runtime, "ada", StaffRole.admin)
    ada = await sign_in_session(server, "ada", PASSWORD)
    anna = await open_staff(server, "anna", PASSWORD)
    response = await api(
        server, ada, "PATCH", f"/api/staff/{anna_id}", json={"role": "coordinator"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["qualification"] is None and response.json()["lines"] == []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await anna.ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003


async def test_malformed_sign_in_requests_are_refused_before_anything_is_counted(
    server: RunningServer,
) -> None:
    await add_line(server.runtime)
    await add_counsellor(server.runtime, "anna")
    for body in (
        {"username": "anna", "password": PASSWORD, "code": "1" * 65},
        {"username": "anna", "password": PASSWORD, "code": 123456},
        {"username": "anna", "password": PASSWORD, "code": "", "remember": True},
        {"username": "a" * 65, "password": PASSWORD},
        {"username": "", "password": PASSWORD},
    ):
        response = await sign_in_raw(server, body)
        assert response.status_code == 422, (body, response.text)
    assert await audit(server) == []
    assert (await sign_in_session(server, "anna", PASSWORD)).cookie
