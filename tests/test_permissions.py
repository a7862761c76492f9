"""Every role against every HTTP endpoint and every staff frame type, from one table.

The tables below are the specification; the tests fail when an endpoint or a frame type
exists that the tables (and app/staff/permissions.py) do not cover.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from websockets.exceptions import ConnectionClosed

from app.audit.repository import AuditFilter
from app.audit.service import audit_service
from app.chats.frames import STAFF_FRAMES
from app.kit.db import unit_of_work
from app.main import create_app
from app.models.enums import Qualification, StaffRole
from app.settings import Settings
from app.staff.permissions import FRAME_RULES, PUBLIC, WEBSOCKET_RULES, Permission
from tests.conftest import ServerFactory
from tests.support.clients import (
    SignedIn,
    StaffClient,
    api,
    connect_staff_socket,
    open_staff,
    sign_in_session,
)
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff, line_settings
from tests.support.server import RunningServer

ANON = "anonymous"
COUNSELLOR = "counsellor"
SUPERVISOR = "supervisor"
COORDINATOR = "coordinator"
ADMIN = "admin"
# A counsellor account with the interpreter qualification (staff frames only here).
INTERPRETER = "interpreter"
ROLES = (ANON, COUNSELLOR, SUPERVISOR, COORDINATOR, ADMIN)
SIGNED_IN = frozenset(ROLES) - {ANON}
EVERYONE = frozenset(ROLES)
MANAGERS = frozenset({COORDINATOR, ADMIN})
COUNSELLORS = frozenset({COUNSELLOR, SUPERVISOR})

# (method, path) → who may call it.
HTTP_RULES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/readyz"): EVERYONE,
    ("GET", "/"): EVERYONE,
    ("GET", "/api/lines"): EVERYONE,
    ("GET", "/api/lines/{key}"): EVERYONE,
    ("GET", "/api/lines/practice"): frozenset({SUPERVISOR, COORDINATOR}),
    ("POST", "/api/lines"): MANAGERS,
    ("GET", "/api/lines/{key}/settings"): MANAGERS,
    ("PUT", "/api/lines/{key}/settings"): MANAGERS,
    ("GET", "/api/staff/session"): EVERYONE,
    ("POST", "/api/staff/session"): EVERYONE,
    ("DELETE", "/api/staff/session"): SIGNED_IN,
    ("GET", "/api/staff/me"): SIGNED_IN,
    ("GET", "/api/staff"): MANAGERS,
    ("POST", "/api/staff"): MANAGERS,
    ("GET", "/api/staff/{staff_id}"): MANAGERS,
    ("PATCH", "/api/staff/{staff_id}"): MANAGERS,
    ("POST", "/api/staff/{staff_id}/deactivate"): MANAGERS,
    ("POST", "/api/staff/{staff_id}/reactivate"): MANAGERS,
    ("POST", "/api/staff/{staff_id}/reset"): MANAGERS,
    ("POST", "/api/enrolment/status"): EVERYONE,
    ("POST", "/api/enrolment/totp"): EVERYONE,
    ("POST", "/api/enrolment/complete"): EVERYONE,
    ("GET", "/api/audit"): MANAGERS,
    ("POST", "/api/audit/search"): MANAGERS,
    ("POST", "/api/visitor/exit"): EVERYONE,
    # The visitor widget (issue 5): pages and files anyone may load.
    ("GET", "/chat/{key}"): EVERYONE,
    ("GET", "/widget/safety"): EVERYONE,
    ("GET", "/widget/i18n/{name}"): EVERYONE,
    ("GET", "/widget/{asset:path}"): EVERYONE,
    ("GET", "/api/admin/deployment"): frozenset({ADMIN}),
    # Rosters and statistics (docs/roster.md).
    **dict.fromkeys(
        (
            ("GET", "/api/roster/lines"),
            ("PATCH", "/api/roster/lines/{key}"),
            ("GET", "/api/roster/lines/{key}/patterns"),
            ("POST", "/api/roster/lines/{key}/patterns"),
            ("GET", "/api/roster/patterns/{pattern_id}"),
            ("PATCH", "/api/roster/patterns/{pattern_id}"),
            ("DELETE", "/api/roster/patterns/{pattern_id}"),
            ("POST", "/api/roster/lines/{key}/extra-shifts"),
            ("PATCH", "/api/roster/extra-shifts/{extra_id}"),
            ("DELETE", "/api/roster/extra-shifts/{extra_id}"),
            ("GET", "/api/roster/lines/{key}/closures"),
            ("POST", "/api/roster/lines/{key}/closures"),
            ("DELETE", "/api/roster/closures/{closure_id}"),
            ("POST", "/api/roster/assignments"),
            ("DELETE", "/api/roster/assignments/{assignment_id}"),
            ("GET", "/api/roster/lines/{key}/week"),
            ("GET", "/api/roster/drop-requests"),
            ("POST", "/api/roster/drop-requests/{drop_id}/approve"),
            ("POST", "/api/roster/drop-requests/{drop_id}/reject"),
            ("GET", "/api/roster/lines/{key}/duty"),
            ("POST", "/api/roster/lines/{key}/duty"),
            ("DELETE", "/api/roster/duty/{duty_id}"),
            ("DELETE", "/api/roster/staff/{staff_id}/calendar"),
            ("GET", "/api/stats/lines/{key}/demand"),
            ("GET", "/api/stats/lines/{key}/mailbox"),
            ("GET", "/api/stats/export.csv"),
            ("GET", "/api/stats/lines/{key}/wrapups"),
            ("GET", "/api/stats/wrapups.csv"),
        ),
        MANAGERS,
    ),
    **dict.fromkeys(
        (
            ("GET", "/api/roster/me/shifts"),
            ("GET", "/api/roster/me/open-shifts"),
            ("POST", "/api/roster/me/signups"),
            ("POST", "/api/roster/me/drop-requests"),
            ("DELETE", "/api/roster/me/drop-requests/{drop_id}"),
            ("POST", "/api/roster/me/calendar"),
            ("DELETE", "/api/roster/me/calendar"),
        ),
        COUNSELLORS,
    ),
    # Booked chats (docs/continuity.md): a counsellor's own list of today's.
    ("GET", "/api/bookings/today"): COUNSELLORS,
    # The referral directory (docs/continuity.md): everyone signed in searches it,
    # coordinators and admins keep it.
    ("GET", "/api/directory"): SIGNED_IN,
    ("GET", "/api/directory/{service_id}"): SIGNED_IN,
    **dict.fromkeys(
        (
            ("POST", "/api/directory"),
            ("PUT", "/api/directory/{service_id}"),
            ("DELETE", "/api/directory/{service_id}"),
            ("GET", "/api/directory/export.csv"),
            ("POST", "/api/directory/import"),
        ),
        MANAGERS,
    ),
    ("POST", "/api/visitor/continuity/delete"): EVERYONE,
    ("POST", "/api/visitor/bookings/pick"): EVERYONE,
    # The mailbox: counsellors answer it; coordinators and admins hand threads over, and
    # see who holds which, never what is in them.
    **dict.fromkeys(
        (
            ("GET", "/api/mailbox"),
            ("POST", "/api/mailbox/{thread_id}/claim"),
            ("GET", "/api/mailbox/{thread_id}"),
            ("POST", "/api/mailbox/{thread_id}/answer"),
            ("POST", "/api/mailbox/{thread_id}/notes"),
            ("POST", "/api/mailbox/{thread_id}/close"),
            ("POST", "/api/mailbox/{thread_id}/delete"),
            ("POST", "/api/mailbox/{thread_id}/times"),
        ),
        COUNSELLORS,
    ),
    ("GET", "/api/mailbox/lines/{key}/threads"): MANAGERS,
    ("GET", "/api/stats/lines/{key}/mailbox"): MANAGERS,
    ("POST", "/api/mailbox/{thread_id}/hand"): MANAGERS,
    # The mailbox's visitor side: the code in the body is the only key (docs/mailbox.md).
    **dict.fromkeys(
        (
            ("POST", "/api/visitor/mailbox/threads"),
            ("POST", "/api/visitor/mailbox/read"),
            ("POST", "/api/visitor/mailbox/write"),
            ("POST", "/api/visitor/mailbox/delete"),
            ("POST", "/api/visitor/mailbox/book"),
        ),
        EVERYONE,
    ),
    # A feed's secret token and the metrics bearer token are the authentication here.
    ("GET", "/calendar/{name}"): EVERYONE,
    ("GET", "/metrics"): EVERYONE,
    # The console's pages and files (no data in them; the API checks who asks).
    ("GET", "/console"): EVERYONE,
    ("GET", "/console/static/{relative:path}"): EVERYONE,
    ("GET", "/enrol"): EVERYONE,
}

# Staff frame type → who may send it (coordinators and admins cannot even connect).
FRAME_ROLES: dict[str, frozenset[str]] = {
    **{
        kind: frozenset({COUNSELLOR, SUPERVISOR, INTERPRETER})
        for kind in (
            "ping",
            "status",
            "accept",
            "decline",
            "message",
            "typing",
            "note",
            "sync",
            "transfer",
            "end",
            "wrapup",
            "block",
            "continuity.offer",
            "booking.offer",
            "referral",
            "help",
            "transfer.options",
            "interpreter.request",
            "interpreter.remove",
            "risk",
            "ready",
            "debrief",
            "shift",
            "take",
        )
    },
    **{
        kind: frozenset({INTERPRETER})
        for kind in ("interpreter.accept", "interpreter.decline", "interpreter.leave")
    },
    **{
        kind: frozenset({SUPERVISOR})
        for kind in (
            "live",
            "observe",
            "unobserve",
            "whisper",
            "takeover",
            "team",
            "debriefs",
            "debrief.open",
        )
    },
}

CHAT = "abcdefghijkl"
SAMPLE_FRAMES: dict[str, dict[str, Any]] = {
    "ping": {"type": "ping"},
    "status": {"type": "status", "status": "away"},
    "accept": {"type": "accept", "chat_id": CHAT},
    "decline": {"type": "decline", "chat_id": CHAT},
    "message": {"type": "message", "chat_id": CHAT, "text": "hello"},
    "typing": {"type": "typing", "chat_id": CHAT, "typing": True},
    "note": {"type": "note", "chat_id": CHAT, "text": "handover"},
    "continuity.offer": {"type": "continuity.offer", "chat_id": CHAT, "note": "see you"},
    "booking.offer": {"type": "booking.offer", "chat_id": CHAT, "times": []},
    "referral": {
        "type": "referral",
        "chat_id": CHAT,
        "service_id": "00000000-0000-4000-8000-000000000000",
    },
    "sync": {"type": "sync", "chat_id": CHAT, "last_seq": 0},
    "transfer": {"type": "transfer", "chat_id": CHAT, "line": "youth"},
    "end": {"type": "end", "chat_id": CHAT},
    "wrapup": {"type": "wrapup", "chat_id": CHAT, "topics": [], "outcome": "referred"},
    "block": {"type": "block", "chat_id": CHAT},
    "live": {"type": "live"},
    "observe": {"type": "observe", "chat_id": CHAT},
    "unobserve": {"type": "unobserve", "chat_id": CHAT},
    "whisper": {"type": "whisper", "chat_id": CHAT, "text": "psst"},
    "takeover": {"type": "takeover", "chat_id": CHAT},
    "help": {"type": "help", "chat_id": CHAT},
    "transfer.options": {"type": "transfer.options", "chat_id": CHAT},
    "team": {"type": "team"},
    "interpreter.request": {"type": "interpreter.request", "chat_id": CHAT},
    "interpreter.remove": {"type": "interpreter.remove", "chat_id": CHAT},
    "interpreter.accept": {"type": "interpreter.accept", "chat_id": CHAT},
    "interpreter.decline": {"type": "interpreter.decline", "chat_id": CHAT},
    "interpreter.leave": {"type": "interpreter.leave", "chat_id": CHAT},
    "risk": {"type": "risk", "chat_id": CHAT, "level": "acute"},
    "ready": {"type": "ready"},
    "debrief": {"type": "debrief", "chat_id": CHAT},
    "shift": {"type": "shift"},
    "debriefs": {"type": "debriefs"},
    "debrief.open": {"type": "debrief.open", "debrief_id": "00000000-0000-4000-8000-000000000000"},
    "take": {"type": "take", "line": "support"},
}


def _rules_of(dependant: Dependant) -> list[object]:
    found = []
    for dependency in dependant.dependencies:
        rule = getattr(dependency.call, "lykta_rule", None)
        if rule is not None:
            found.append(rule)
        found.extend(_rules_of(dependency))
    return found


def _app() -> FastAPI:
    return create_app(Settings())


def http_routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    """(method, full path, route) of every HTTP endpoint, included routers too."""
    out = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            for method in sorted(context.methods or route.methods or ()):
                out.append((method, str(context.path), route))
    return out


def websocket_paths(app: FastAPI) -> set[str]:
    return {
        str(context.path)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIWebSocketRoute)
    }


def test_every_http_endpoint_declares_exactly_one_rule() -> None:
    routes = http_routes(_app())
    assert len(routes) == len(HTTP_RULES)
    missing = [
        (method, path, _rules_of(route.dependant))
        for method, path, route in routes
        if len(_rules_of(route.dependant)) != 1
    ]
    assert missing == [], "endpoints without exactly one require()/public() rule"


def test_the_table_covers_every_endpoint_and_agrees_with_the_rules() -> None:
    routes = {
        (method, path): _rules_of(route.dependant)[0] for method, path, route in http_routes(_app())
    }
    assert set(routes) == set(HTTP_RULES), "a new endpoint needs a row in HTTP_RULES"
    for key, rule in routes.items():
        if rule == PUBLIC:
            assert HTTP_RULES[key] == EVERYONE, key
        else:
            assert ANON not in HTTP_RULES[key], key


def test_every_websocket_path_and_staff_frame_type_has_a_rule() -> None:
    assert websocket_paths(_app()) == set(WEBSOCKET_RULES)
    assert set(FRAME_RULES) == set(STAFF_FRAMES) == set(FRAME_ROLES) == set(SAMPLE_FRAMES)
    for kind, permission in FRAME_RULES.items():
        expected = {
            Permission.supervise: {SUPERVISOR},
            Permission.interpret: {INTERPRETER},
        }.get(permission, {COUNSELLOR, SUPERVISOR, INTERPRETER})
        assert FRAME_ROLES[kind] == expected, kind


class World:
    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.who: dict[str, SignedIn | None] = {ANON: None}
        self.ids: dict[str, str] = {}
        self.target = ""


@pytest.fixture
async def world(lykta: ServerFactory) -> AsyncIterator[World]:
    # Every staff frame type twice (it and a ping) in a row is more than the default burst:
    # this test is about roles, flooding has its own tests.
    async with lykta(sign_in_rate_per_minute=100, staff_frame_burst=1000) as server:
        rt = server.runtime
        await add_line(rt)
        await add_line(rt, "youth", required_qualification="volunteer")
        w = World(server)
        w.ids[COUNSELLOR] = await add_counsellor(rt, "anna")
        w.ids[SUPERVISOR] = await add_counsellor(rt, "bo", supervisor=True)
        w.ids[COORDINATOR] = await add_staff(rt, "cora", StaffRole.coordinator)
        w.ids[ADMIN] = await add_staff(rt, "ada", StaffRole.admin)
        w.target = await add_counsellor(rt, "tess")
        w.ids[INTERPRETER] = await add_counsellor(
            rt, "ion", qualification=Qualification.interpreter, languages=("ro",)
        )
        for role, name in (
            (COUNSELLOR, "anna"),
            (SUPERVISOR, "bo"),
            (COORDINATOR, "cora"),
            (ADMIN, "ada"),
        ):
            w.who[role] = await sign_in_session(server, name, PASSWORD)
        yield w


def sample_request(w: World, role: str, method: str, path: str) -> tuple[str, Any]:
    """A plausible request for the endpoint; valid where it matters, so allowed calls work."""
    url = path.replace("{key}", "youth").replace("{staff_id}", w.target)
    # Other ids: a well-formed one that matches nothing (the guard runs before the lookup).
    url = re.sub(r"\{\w+_id\}", "00000000-0000-4000-8000-000000000000", url)
    url = url.replace("{name}", "no-such-feed.ics")
    body: Any = None
    if (method, path) == ("POST", "/api/staff/session"):
        body = {"username": "nobody", "password": "wrong", "code": "123456"}
    elif (method, path) == ("POST", "/api/staff"):
        body = {
            "username": f"new-{role}",
            "alias": "New",
            "role": "counsellor",
            "qualification": "volunteer",
        }
    elif (method, path) == ("PATCH", "/api/staff/{staff_id}"):
        body = {"capacity": 3}
    elif path == "/api/staff/{staff_id}/reset":
        body = {"password": True, "totp": False}
    elif path.startswith("/api/enrolment/"):
        body = {"token": "x" * 43}
    elif (method, path) == ("PUT", "/api/lines/{key}/settings"):
        body = line_settings("youth", required_qualification="volunteer").model_dump(mode="json")
    elif (method, path) == ("POST", "/api/lines"):
        body = line_settings(f"line-{role}").model_dump(mode="json")
    return url, body


def _detail(response: Any) -> Any:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("detail") if isinstance(body, dict) else None


def _order(key: tuple[str, str]) -> tuple[bool, tuple[str, str]]:
    # Signing out ends the session the other calls need: last.
    return (key == ("DELETE", "/api/staff/session"), key)


async def test_each_role_against_every_endpoint(world: World) -> None:
    server = world.server
    for method, path in sorted(HTTP_RULES, key=_order):
        allowed = HTTP_RULES[(method, path)]
        for role in ROLES:
            url, body = sample_request(world, role, method, path)
            response = await api(server, world.who[role], method, url, json=body)
            where = (role, method, path, response.status_code, response.text)
            if role in allowed:
                # Allowed: whatever the endpoint answers, it is not the guard's refusal.
                assert response.status_code != 403, where
                assert _detail(response) != "sign in first", where
            elif role == ANON:
                assert response.status_code == 401, where
                assert response.json() == {"detail": "sign in first"}, where
            else:
                assert response.status_code == 403, where
                assert response.json() == {"detail": "your role does not allow this"}, where


async def test_refusals_by_role_are_audited(world: World) -> None:
    response = await api(world.server, world.who[COUNSELLOR], "GET", "/api/audit")
    assert response.status_code == 403
    async with unit_of_work(world.server.runtime.sessionmaker) as session:
        entries = await audit_service.search(
            session, AuditFilter(action="access.denied"), limit=10, offset=0
        )
    assert [(str(e.actor_id), e.detail) for e in entries] == [
        (
            world.ids[COUNSELLOR],
            {"permission": "read_audit", "endpoint": "GET /api/audit"},
        )
    ]


async def test_state_changing_requests_need_the_sessions_csrf_token(world: World) -> None:
    server = world.server
    admin = world.who[ADMIN]
    other = world.who[COORDINATOR]
    assert admin is not None and other is not None
    before = (await api(server, admin, "GET", "/api/staff")).json()
    checked = 0
    for (method, path), allowed in sorted(HTTP_RULES.items(), key=lambda item: _order(item[0])):
        if method == "GET" or allowed == EVERYONE:
            continue
        url, body = sample_request(world, ADMIN, method, path)
        missing = await api(server, admin, method, url, json=body, csrf=False)
        wrong = await api(
            server, admin, method, url, json=body, csrf=False, headers={"X-CSRF-Token": "f" * 64}
        )
        # A token is bound to its session: a colleague's does not work either.
        borrowed = await api(
            server, admin, method, url, json=body, csrf=False, headers=other.headers
        )
        for response in (missing, wrong, borrowed):
            assert response.status_code == 403, (method, path, response.text)
            assert response.json() == {"detail": "missing or wrong CSRF token"}
        checked += 1
    assert checked == 41
    assert (await api(server, admin, "GET", "/api/staff")).json() == before


async def test_cross_site_requests_are_refused_even_without_a_session(world: World) -> None:
    server = world.server
    for method, path, body in (
        ("POST", "/api/staff/session", {"username": "ada", "password": PASSWORD}),
        ("POST", "/api/enrolment/status", {"token": "x" * 43}),
        ("PATCH", f"/api/staff/{world.target}", {"capacity": 1}),
    ):
        response = await api(
            server,
            world.who[ADMIN] if method == "PATCH" else None,
            method,
            path,
            json=body,
            headers={"Origin": "https://evil.example"},
        )
        assert response.status_code == 403, (path, response.text)
        assert response.json() == {"detail": "cross-site request refused"}
    ours = await api(
        server,
        None,
        "POST",
        "/api/enrolment/status",
        json={"token": "x" * 43},
        headers={"Origin": server.settings.public_url},
    )
    assert ours.status_code == 410


async def _answers(client: StaffClient, frame: dict[str, Any]) -> list[dict[str, Any]]:
    """Every frame the server sends in answer to `frame`, up to the pong that follows it."""
    client.drain()
    await client.send(frame)
    await client.send({"type": "ping"})
    got: list[dict[str, Any]] = []
    while True:
        answer = json.loads(await client.ws.recv())
        last = answer.get("type") == "pong" and (
            frame["type"] != "ping" or any(a.get("type") == "pong" for a in got)
        )
        if last:
            return got
        got.append(answer)


async def test_each_role_against_every_staff_frame(world: World) -> None:
    server = world.server
    for role in (COORDINATOR, ADMIN):
        who = world.who[role]
        assert who is not None
        async with await connect_staff_socket(server, who) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    for role, name in ((COUNSELLOR, "anna"), (SUPERVISOR, "bo"), (INTERPRETER, "ion")):
        who = world.who.get(role) or await sign_in_session(server, name, PASSWORD)
        client = await open_staff(server, name, PASSWORD, available=False, cookie=who.cookie)
        assert ("supervise" in client.hello["permissions"]) == (role == SUPERVISOR)
        for kind, frame in SAMPLE_FRAMES.items():
            answers = await _answers(client, frame)
            forbidden = [
                a for a in answers if a.get("type") == "error" and a.get("code") == "forbidden"
            ]
            if role in FRAME_ROLES[kind]:
                assert forbidden == [], (role, kind, answers)
            else:
                assert len(forbidden) == 1, (role, kind, answers)
                assert forbidden[0]["ref"] == kind
        await client.close()


async def test_coordinators_cannot_read_chats_and_the_attempt_is_audited(
    world: World,
) -> None:
    who = world.who[COORDINATOR]
    assert who is not None
    async with await connect_staff_socket(world.server, who) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.reason == (
            "only counsellors take chats"
        )
    async with unit_of_work(world.server.runtime.sessionmaker) as session:
        entries = await audit_service.search(
            session,
            AuditFilter(action="access.denied", actor_id=_uuid(world.ids[COORDINATOR])),
            limit=10,
            offset=0,
        )
    assert [e.detail for e in entries] == [
        {"permission": "take_chats", "endpoint": "WEBSOCKET /ws/staff"}
    ]


def _uuid(value: str) -> Any:
    import uuid

    return uuid.UUID(value)
