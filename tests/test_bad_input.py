"""Bad input on every socket and frame type: a clear error or the right close, nothing changes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.audit.repository import AuditFilter
from app.audit.service import audit_service
from app.chats.frames import STAFF_FRAMES, VISITOR_FRAMES
from app.kit.db import unit_of_work
from tests.conftest import ServerFactory
from tests.support.clients import (
    StaffClient,
    VisitorClient,
    open_chat,
    open_staff,
    open_visitor,
    sign_in_session,
)
from tests.support.held import written
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer

# The chat core's behaviour, on both brokers (issue 6).
pytestmark = pytest.mark.both_brokers

CHAT = "abcdefghijkl"

# One malformed example per frame type (a required field missing or of the wrong type).
MALFORMED_VISITOR: dict[str, dict[str, Any]] = {
    "start": {"type": "start", "line": 5, "language": "sv"},
    "resume": {"type": "resume", "chat_id": CHAT},
    "message": {"type": "message", "text": ["not", "text"]},
    "typing": {"type": "typing", "typing": "yes please"},
    "continuity.delete": {"type": "continuity.delete", "code": ["a", "b"]},
    "feedback": {"type": "feedback", "answer": "<b>great</b>"},
}
MALFORMED_STAFF: dict[str, dict[str, Any]] = {
    "status": {"type": "status", "status": "asleep"},
    "accept": {"type": "accept"},
    "decline": {"type": "decline", "chat_id": "no"},
    "message": {"type": "message", "chat_id": CHAT},
    "typing": {"type": "typing", "chat_id": CHAT},
    "note": {"type": "note", "chat_id": CHAT, "text": 1},
    "sync": {"type": "sync", "chat_id": CHAT, "last_seq": -5},
    "transfer": {"type": "transfer", "chat_id": CHAT, "note": 3},
    "end": {"type": "end", "chat_id": "x" * 200},
    "block": {"type": "block", "chat_id": None},
    "wrapup": {"type": "wrapup", "chat_id": CHAT, "topics": ["a"] * 50, "outcome": "b"},
    "observe": {"type": "observe"},
    "unobserve": {"type": "unobserve", "chat_id": "../../etc"},
    "whisper": {"type": "whisper", "chat_id": CHAT, "text": {"html": "<b>"}},
    "takeover": {"type": "takeover", "chat_id": None},
    "continuity.offer": {"type": "continuity.offer", "chat_id": CHAT, "note": {"a": 1}},
    "referral": {"type": "referral", "chat_id": CHAT, "service_id": "not-an-id"},
    "help": {"type": "help", "chat_id": CHAT, "text": ["x"]},
    "transfer.options": {"type": "transfer.options"},
    "interpreter.request": {"type": "interpreter.request", "chat_id": CHAT, "language": 7},
    "interpreter.remove": {"type": "interpreter.remove"},
    "interpreter.accept": {"type": "interpreter.accept", "chat_id": ["x"]},
    "interpreter.decline": {"type": "interpreter.decline", "chat_id": "no"},
    "interpreter.leave": {"type": "interpreter.leave", "chat_id": None},
    "risk": {"type": "risk", "chat_id": CHAT, "level": "<b>extreme</b>"},
    "debrief": {"type": "debrief", "chat_id": ["x"]},
    "debrief.open": {"type": "debrief.open", "debrief_id": "../../etc/passwd"},
    "take": {"type": "take", "line": ["support"]},
    "booking.offer": {"type": "booking.offer", "chat_id": CHAT, "times": "tomorrow at six"},
}


def test_every_frame_type_has_a_malformed_case() -> None:
    # Frames without fields (ping, end, exit and continuity.accept for visitors; ping and
    # live for staff) cannot be malformed beyond their type.
    assert set(MALFORMED_VISITOR) == set(VISITOR_FRAMES) - {
        "ping",
        "end",
        "exit",
        "continuity.accept",
        "interpreter.decline",
        "danger",
    }
    assert set(MALFORMED_STAFF) == set(STAFF_FRAMES) - {
        "ping",
        "live",
        "team",
        "ready",
        "shift",
        "debriefs",
    }


async def setup_chat(server: RunningServer) -> tuple[StaffClient, VisitorClient]:
    rt = server.runtime
    await add_line(rt, max_message_length=50)
    await add_counsellor(rt, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_chat(server, anna)
    await visitor.expect("counsellor.joined")
    return anna, visitor


async def snapshot(server: RunningServer, chat_id: str) -> tuple[Any, list[Any]]:
    rt = server.runtime
    return await rt.broker.get_chat(chat_id), await rt.transcript.read(chat_id, 0)


async def test_malformed_visitor_frames(server: RunningServer) -> None:
    anna, visitor = await setup_chat(server)
    before = await snapshot(server, visitor.chat_id)
    cases: list[tuple[str | bytes | dict[str, Any], str]] = [
        ("{not json", "malformed_json"),
        ("[]", "invalid_frame"),
        ('{"no": "type"}', "invalid_frame"),
        ('{"type": "launch"}', "unknown_type"),
        (b"\x00binary", "binary_not_supported"),
        ('{"type": "message", "text": "   "}', "empty_message"),
        (json.dumps({"type": "message", "text": "x" * 51}), "message_too_long"),
        ('{"type": "start", "line": "support", "language": "sv"}', "not_allowed_now"),
        *[(json.dumps(frame), "invalid_field") for frame in MALFORMED_VISITOR.values()],
    ]
    for raw, code in cases:
        await visitor.send(raw)
        error = await visitor.expect("error")
        assert error["code"] == code, (raw, error)
        assert error["message"]
    assert await snapshot(server, visitor.chat_id) == before
    await anna.expect_none("message", within=0.3)


async def test_a_refused_message_among_others_sent_at_once_is_answered_in_its_place(
    server: RunningServer,
) -> None:
    """Messages sent back to back are stored together (on Redis in one step): one the line
    refuses is answered in its place, a resend as a duplicate, and the rest are stored in
    order and shown once."""
    anna, visitor = await setup_chat(server)
    sent = [("c1", "one"), ("c2", "x" * 51), ("c3", "three"), ("c1", "one")]
    for client_id, text in sent:
        await visitor.send({"type": "message", "text": text, "client_id": client_id})
    answers = [await visitor.expect(frozenset({"message.ack", "error"})) for _ in sent]
    assert [(a["type"], a.get("client_id") or a.get("code")) for a in answers] == [
        ("message.ack", "c1"),
        ("error", "message_too_long"),
        ("message.ack", "c3"),
        ("message.ack", "c1"),
    ]
    assert not answers[0]["duplicate"] and not answers[2]["duplicate"]
    assert answers[3]["duplicate"] and answers[3]["seq"] == answers[0]["seq"]
    assert answers[2]["seq"] == answers[0]["seq"] + 1
    shown = [await anna.expect("message", sender="visitor") for _ in range(2)]
    assert [m["text"] for m in shown] == ["one", "three"]
    await anna.expect_none("message", within=0.3, sender="visitor")
    _, entries = await snapshot(server, visitor.chat_id)
    assert [e.text for _, e in entries if e.sender == "visitor"] == ["one", "three"]


async def test_messages_are_plain_text(server: RunningServer) -> None:
    anna, visitor = await setup_chat(server)
    for text in (
        '<script>alert("x")</script>',
        "<b>bold</b> &amp; {{ template }}",
        "line one\nline two",
    ):
        await visitor.say(text)
        got = await anna.expect("message", sender="visitor")
        assert got["text"] == text


async def test_oversized_and_invalid_utf8_frames_close_with_the_right_code(
    lykta: ServerFactory,
) -> None:
    async with lykta(ws_max_frame_bytes=4096) as server:
        visitor = await open_visitor(server)
        await visitor.send(json.dumps({"type": "message", "text": "x" * 5000}))
        with pytest.raises(ConnectionClosed) as closed:
            await visitor.ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        other = await open_visitor(server)
        await other.ws.send(b'{"type": "ping", "x": "\xff\xfe"}', text=True)
        with pytest.raises(ConnectionClosed) as invalid:
            await other.ws.recv()
        assert invalid.value.rcvd is not None and invalid.value.rcvd.code == 1007


async def test_a_visitor_flood_is_refused_then_closed(lykta: ServerFactory) -> None:
    async with lykta(visitor_frame_rate=1, visitor_frame_burst=5, flood_tolerance=5) as server:
        await add_line(server.runtime)
        visitor = await open_visitor(server)
        for _ in range(30):
            try:
                await visitor.send({"type": "ping"})
            except ConnectionClosed:
                break
        codes = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = json.loads(await asyncio.wait_for(visitor.ws.recv(), 5))
                codes.append(frame.get("code") or frame["type"])
        assert codes.count("pong") == 5
        assert codes.count("rate_limited") == 5
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_a_staff_flood_is_refused_then_closed(lykta: ServerFactory) -> None:
    async with lykta(staff_frame_rate=1, staff_frame_burst=3, flood_tolerance=2) as server:
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna")
        anna = await open_staff(server, "anna", PASSWORD, available=False)
        for _ in range(10):
            try:
                await anna.send({"type": "ping"})
            except ConnectionClosed:
                break
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(anna.ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


# Valid values for the fields a frame requires besides the one under test.
VALID_FIELDS: dict[str, Any] = {
    "text": "hello",
    "client_id": "c1",
    "line": "support",
    "language": "sv",
    "code": "apple pear plum",
    "token": "t" * 20,
    "service_id": "00000000-0000-4000-8000-000000000000",
    "outcome": "referred",
    "topics": [],
    "typing": True,
    "last_seq": 0,
    "answer": "helped",
    "status": "away",
    "level": "concern",
    "debrief_id": "00000000-0000-4000-8000-000000000000",
    "times": ["2030-01-07T18:00:00Z"],
}


def text_fields(model: type[Any]) -> list[tuple[str, bool]]:
    """(name, is a list of texts) for every free-text field of a frame model."""

    def texts(schema: dict[str, Any]) -> bool:
        members = schema.get("anyOf", [schema])
        return any(
            # A string with a format (a time) is not free text: a NUL there is a malformed time.
            m.get("type") == "string" and not {"enum", "const", "format"} & m.keys()
            for m in members
        )

    found = []
    for name, schema in model.model_json_schema()["properties"].items():
        if name == "type":
            continue
        if texts(schema):
            found.append((name, False))
        elif schema.get("type") == "array" and texts(schema.get("items", {})):
            found.append((name, True))
    return found


def frames_with_bad_text(
    table: dict[str, type[Any]], chat_id: str
) -> list[tuple[dict[str, Any], str]]:
    """A frame per type and text field, that field holding a NUL (the rest valid)."""
    out = []
    for kind, model in table.items():
        required = set(model.model_json_schema().get("required", [])) - {"type", "chat_id"}
        for name, is_list in text_fields(model):
            frame = {"type": kind, **{other: VALID_FIELDS[other] for other in required}}
            if "chat_id" in model.model_fields:
                frame["chat_id"] = chat_id
            frame[name] = ["bad\x00text"] if is_list else "bad\x00text"
            out.append((frame, f"{name}.0" if is_list else name))
    return out


async def test_text_with_a_nul_or_a_lone_surrogate_is_refused_in_every_frame(
    server: RunningServer,
) -> None:
    """A NUL in any text field is `invalid_field` naming it; a lone surrogate (only possible as
    a JSON escape) is `malformed_json`; nothing changes and the socket stays open."""
    anna, visitor = await setup_chat(server)
    before = await snapshot(server, visitor.chat_id)
    for client, table in ((visitor, VISITOR_FRAMES), (anna, STAFF_FRAMES)):
        cases = frames_with_bad_text(table, visitor.chat_id)
        assert len(cases) >= (8 if table is VISITOR_FRAMES else 25)
        for frame, field in cases:
            await client.send(frame)
            error = await client.expect("error")
            assert error["code"] == "invalid_field", (frame, error)
            assert f"'{field}'" in error["message"] and "NUL" in error["message"], error
        # As sent on the wire: the JSON escape of a lone surrogate.
        escaped = '{"type": "message", "chat_id": "%s", "text": "a\\ud800b"}'
        await client.send(escaped % visitor.chat_id)
        assert (await client.expect("error"))["code"] == "malformed_json"
    assert await snapshot(server, visitor.chat_id) == before
    await anna.expect_none("message", within=0.3)
    await visitor.expect_none("message", within=0.1)
    await visitor.send({"type": "message", "text": "still here"})
    assert (await anna.expect("message", sender="visitor"))["text"] == "still here"


async def refusals(client: VisitorClient | StaffClient, frames: list[Any]) -> list[Any]:
    """Send frames past the flood limit: (code, ref) of each `rate_limited` answer."""
    for frame in frames:
        await client.send(frame)
    answers = []
    for _ in frames:
        error = await client.expect("error", code="rate_limited")
        answers.append(error.get("ref"))
    return answers


async def test_a_frame_refused_for_flooding_is_named_on_both_sockets(lykta: ServerFactory) -> None:
    # Two frames at once, then (almost) nothing: every frame after the first two is refused.
    async with lykta(
        visitor_frame_rate=0.001,
        visitor_frame_burst=2,
        staff_frame_rate=0.001,
        staff_frame_burst=2,
        flood_tolerance=20,
    ) as server:
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna")
        visitor = await open_visitor(server)
        await visitor.send({"type": "ping"})
        await visitor.send({"type": "ping"})
        await visitor.expect("pong")
        await visitor.expect("pong")
        refused: list[Any] = [
            {"type": "start", "line": "support", "language": "sv"},
            {"type": "message", "text": "hello"},
            "not json",
            {"type": "no-such-type"},
            {"type": "ping"},
        ]
        assert await refusals(visitor, refused) == [
            "start",
            "message",
            None,
            "no-such-type",
            "ping",
        ]
        assert visitor.seen("chat.started") == [] and len(visitor.seen("pong")) == 2

        anna = await open_staff(server, "anna", PASSWORD, available=False)
        await anna.send({"type": "ping"})
        await anna.send({"type": "ping"})
        await anna.expect("pong")
        await anna.expect("pong")
        staff_refused: list[Any] = [
            {"type": "status", "status": "available"},
            {"type": "sync", "chat_id": "abcdefgh12", "last_seq": 0},
            b"binary",
        ]
        assert await refusals(anna, staff_refused) == ["status", "sync", None]
        assert anna.seen("status") == []


async def test_malformed_staff_frames(server: RunningServer) -> None:
    anna, visitor = await setup_chat(server)
    before = await snapshot(server, visitor.chat_id)
    for frame in MALFORMED_STAFF.values():
        await anna.send(frame)
        error = await anna.expect("error")
        assert error["code"] == "invalid_field", (frame, error)
    raw_cases: list[tuple[str | bytes, str]] = [
        ("nope", "malformed_json"),
        ('{"type": "launch"}', "unknown_type"),
        (b"\x01", "binary_not_supported"),
    ]
    for raw, code in raw_cases:
        await anna.send(raw)
        assert (await anna.expect("error"))["code"] == code
    await anna.send({"type": "message", "chat_id": visitor.chat_id, "text": "y" * 51})
    assert (await anna.expect("error"))["code"] == "message_too_long"
    await anna.send({"type": "note", "chat_id": visitor.chat_id, "text": "z" * 4001})
    assert (await anna.expect("error"))["code"] == "message_too_long"
    assert await snapshot(server, visitor.chat_id) == before
    await visitor.expect_none("message", within=0.3)


async def test_staff_frames_about_someone_elses_chat_are_refused(server: RunningServer) -> None:
    _, visitor = await setup_chat(server)
    await add_counsellor(server.runtime, "bo")
    bo = await open_staff(server, "bo", PASSWORD)
    chat = visitor.chat_id
    before = await snapshot(server, chat)
    attempts: list[tuple[dict[str, Any], str]] = [
        ({"type": "accept", "chat_id": chat}, "offer_not_found"),
        ({"type": "decline", "chat_id": chat}, "offer_not_found"),
        ({"type": "message", "chat_id": chat, "text": "hi"}, "not_in_chat"),
        ({"type": "typing", "chat_id": chat, "typing": True}, "not_in_chat"),
        ({"type": "note", "chat_id": chat, "text": "sneaky"}, "not_in_chat"),
        ({"type": "sync", "chat_id": chat, "last_seq": 0}, "not_in_chat"),
        ({"type": "transfer", "chat_id": chat, "line": "support"}, "not_in_chat"),
        ({"type": "end", "chat_id": chat}, "not_in_chat"),
        ({"type": "block", "chat_id": chat}, "not_in_chat"),
        ({"type": "wrapup", "chat_id": chat, "topics": [], "outcome": "referred"}, "not_in_chat"),
        # Bo is no supervisor: supervisor frames are refused whatever they name.
        ({"type": "live"}, "forbidden"),
        ({"type": "observe", "chat_id": chat}, "forbidden"),
        ({"type": "unobserve", "chat_id": chat}, "forbidden"),
        ({"type": "whisper", "chat_id": chat, "text": "psst"}, "forbidden"),
        ({"type": "takeover", "chat_id": chat}, "forbidden"),
        # Past the audit's per-minute cap: refused all the same.
        ({"type": "help", "chat_id": chat, "text": "look"}, "not_in_chat"),
        ({"type": "transfer.options", "chat_id": chat}, "not_in_chat"),
        ({"type": "team"}, "forbidden"),
        ({"type": "continuity.offer", "chat_id": chat, "note": "mine now"}, "not_in_chat"),
        (
            {
                "type": "referral",
                "chat_id": chat,
                "service_id": "00000000-0000-4000-8000-000000000000",
            },
            "not_in_chat",
        ),
        ({"type": "interpreter.request", "chat_id": chat}, "not_in_chat"),
        ({"type": "interpreter.remove", "chat_id": chat}, "not_in_chat"),
        # Bo is no interpreter.
        ({"type": "interpreter.accept", "chat_id": chat}, "forbidden"),
        ({"type": "interpreter.decline", "chat_id": chat}, "forbidden"),
        ({"type": "interpreter.leave", "chat_id": chat}, "forbidden"),
        # Taking from a line that offers its chats (past the audit's cap).
        ({"type": "take", "line": "support"}, "not_taken_here"),
        (
            {"type": "booking.offer", "chat_id": chat, "times": ["2030-01-07T18:00:00Z"]},
            "not_in_chat",
        ),
    ]
    attempts += [
        ({"type": "risk", "chat_id": chat, "level": "acute"}, "not_in_chat"),
        ({"type": "debrief", "chat_id": chat}, "not_in_chat"),
        ({"type": "debriefs"}, "forbidden"),
        (
            {"type": "debrief.open", "debrief_id": "00000000-0000-4000-8000-000000000000"},
            "forbidden",
        ),
    ]
    # Not about a chat: refused only when there is nothing to do (test_risk.py).
    assert {a[0]["type"] for a in attempts} == set(STAFF_FRAMES) - {
        "ping",
        "status",
        "ready",
        "shift",
    }
    for frame, code in attempts:
        await bo.send(frame)
        error = await bo.expect("error")
        assert error["code"] == code, (frame, error)
    assert await snapshot(server, chat) == before
    await visitor.expect_none("typing", within=0.3)
    assert bo.seen("message") == [] and bo.seen("note") == []
    # Audited, a few times a minute per connection (a probe flood must not flood the log).
    await written(server.runtime)
    async with unit_of_work(server.runtime.sessionmaker) as session:
        denied = await audit_service.search(
            session, AuditFilter(action="access.denied"), limit=50, offset=0
        )
    assert len(denied) == 10
    assert {str(e.actor_id) for e in denied} == {bo.staff_id}
    assert {e.detail["code"] for e in denied} == {"not_in_chat", "forbidden"}
    assert all(e.chat_id in (chat, None) for e in denied)


async def test_wrapup_is_checked_against_the_lines_lists(server: RunningServer) -> None:
    anna, visitor = await setup_chat(server)
    await anna.send(
        {"type": "wrapup", "chat_id": visitor.chat_id, "topics": [], "outcome": "referred"}
    )
    assert (await anna.expect("error"))["code"] == "invalid_state"
    await anna.send({"type": "end", "chat_id": visitor.chat_id})
    await anna.expect("wrapup.required")
    await anna.send(
        {
            "type": "wrapup",
            "chat_id": visitor.chat_id,
            "topics": ["astrology"],
            "outcome": "referred",
        }
    )
    assert (await anna.expect("error"))["code"] == "invalid_wrapup"
    await anna.send(
        {"type": "wrapup", "chat_id": visitor.chat_id, "topics": ["health"], "outcome": "shrugged"}
    )
    assert (await anna.expect("error"))["code"] == "invalid_wrapup"
    await anna.send(
        {"type": "wrapup", "chat_id": visitor.chat_id, "topics": ["health"], "outcome": "referred"}
    )
    await anna.expect("wrapup.saved")
    await anna.send(
        {"type": "wrapup", "chat_id": visitor.chat_id, "topics": ["health"], "outcome": "referred"}
    )
    assert (await anna.expect("error"))["code"] == "not_in_chat"


async def test_messages_after_the_end_are_refused(server: RunningServer) -> None:
    anna, visitor = await setup_chat(server)
    chat_id = visitor.chat_id
    await anna.send({"type": "end", "chat_id": chat_id})
    await visitor.expect("chat.ended")
    await visitor.send({"type": "message", "text": "wait"})
    assert (await visitor.expect("error"))["code"] == "not_allowed_now"
    await anna.send({"type": "message", "chat_id": chat_id, "text": "bye"})
    assert (await anna.expect("error"))["code"] == "chat_ended"
    again = await open_visitor(server)
    await again.send({"type": "resume", "chat_id": chat_id, "token": visitor.token})
    assert (await again.expect("error"))["code"] == "chat_ended"


async def test_staff_socket_needs_a_session_a_counsellor_and_our_origin(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna")
    signed_in = await sign_in_session(server, "anna", PASSWORD)
    cookie = signed_in.cookie
    cases: list[tuple[dict[str, str], int]] = [
        ({}, 4001),
        ({"Cookie": "lykta_session=forged-token-value"}, 4001),
        ({"Cookie": f"lykta_session={cookie}", "Origin": "https://evil.example"}, 4003),
    ]
    for headers, code in cases:
        async with connect(f"{server.ws_url}/ws/staff", additional_headers=headers) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    async with httpx.AsyncClient(base_url=server.url, cookies=signed_in.cookies) as http:
        assert (await http.delete("/api/staff/session")).status_code == 403
        assert (
            await http.delete("/api/staff/session", headers=signed_in.headers)
        ).status_code == 204
    async with connect(
        f"{server.ws_url}/ws/staff", additional_headers={"Cookie": f"lykta_session={cookie}"}
    ) as ws:
        with pytest.raises(ConnectionClosed) as signed_out:
            await ws.recv()
        assert signed_out.value.rcvd is not None and signed_out.value.rcvd.code == 4001


async def test_visitor_connection_flood_is_refused(lykta: ServerFactory) -> None:
    async with lykta(connection_rate_per_minute=3) as server:
        for _ in range(3):
            await (await open_visitor(server)).close()
        with pytest.raises(InvalidStatus) as refused:
            await open_visitor(server)
        assert refused.value.response.status_code == 429


async def test_http_endpoints_refuse_bad_input(lykta: ServerFactory) -> None:
    async with lykta(max_body_bytes=2048, sign_in_rate_per_minute=5) as server:
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna")
        async with httpx.AsyncClient(base_url=server.url) as http:
            malformed = await http.post(
                "/api/staff/session", content=b"{nope", headers={"content-type": "application/json"}
            )
            assert malformed.status_code == 422
            missing = await http.post("/api/staff/session", json={"username": "anna"})
            assert missing.status_code == 422
            oversized = await http.post(
                "/api/staff/session", json={"username": "anna", "password": "p" * 5000}
            )
            assert oversized.status_code == 413
            wrong = await http.post(
                "/api/staff/session", json={"username": "anna", "password": "wrong"}
            )
            assert wrong.status_code == 401 and wrong.json() == {
                "detail": "wrong username, password or code"
            }
            nobody = await http.post(
                "/api/staff/session", json={"username": "nobody", "password": "wrong"}
            )
            assert nobody.status_code == 401 and nobody.json() == wrong.json()
            flood = await http.post(
                "/api/staff/session", json={"username": "anna", "password": PASSWORD}
            )
            assert flood.status_code == 429 and flood.headers["retry-after"] == "60"
            assert (await http.get("/api/staff/me")).status_code == 401
            assert (await http.get("/api/lines/nowhere")).status_code == 404
            assert (await http.get("/api/lines/" + "x" * 3000)).status_code == 404


async def test_http_flood_is_refused(lykta: ServerFactory) -> None:
    async with lykta(http_rate_per_minute=5) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            statuses = [(await http.get("/api/lines")).status_code for _ in range(7)]
        assert statuses == [200] * 5 + [429] * 2


async def test_fixed_files_are_counted_apart_from_the_api(lykta: ServerFactory) -> None:
    # A console or chat page load fetches dozens of files; many people may share one address.
    async with lykta(http_rate_per_minute=3, file_rate_per_minute=8) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            files = [
                (await http.get(path)).status_code
                for path in ("/console", "/console/static/core.js", "/widget/chat.js") * 2
            ]
            api = [(await http.get("/api/lines")).status_code for _ in range(4)]
            more = [(await http.get("/console/static/core.js")).status_code for _ in range(3)]
        assert files == [200] * 6
        assert api == [200] * 3 + [429]
        assert more == [200] * 2 + [429]
