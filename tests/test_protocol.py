"""The chat protocol as pure code: no sockets, no broker, an injected clock."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from app.chats.frames import (
    HELP_COOLDOWN_SECONDS,
    STAFF_FRAMES,
    VISITOR_FRAMES,
    AcceptOffer,
    AskSupervisor,
    StartChat,
    VisitorExit,
    VisitorMessage,
)
from app.chats.protocol import (
    CLOSE_POLICY_VIOLATION,
    Close,
    Cooldown,
    ErrorCode,
    Phase,
    ProtocolError,
    StaffConnection,
    TokenBucket,
    VisitorConnection,
    check_text,
    parse_frame,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def visitor(
    clock: Clock | None = None, *, rate: float = 5, burst: int = 20, tolerance: int = 3
) -> VisitorConnection:
    return VisitorConnection(rate=rate, burst=burst, tolerance=tolerance, clock=clock or Clock())


def code_of(result: object) -> ErrorCode:
    assert isinstance(result, ProtocolError), result
    return result.code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", ErrorCode.malformed_json),
        ("", ErrorCode.malformed_json),
        ("[1, 2]", ErrorCode.invalid_frame),
        ('"start"', ErrorCode.invalid_frame),
        ("{}", ErrorCode.invalid_frame),
        ('{"type": 7}', ErrorCode.invalid_frame),
        ('{"type": "launch"}', ErrorCode.unknown_type),
        ('{"type": "start"}', ErrorCode.invalid_field),
        ('{"type": "start", "line": "support"}', ErrorCode.invalid_field),
        (
            '{"type": "start", "line": "support", "language": "not a language"}',
            ErrorCode.invalid_field,
        ),
        (
            '{"type": "start", "line": "support", "language": "sv", "peer": "maybe"}',
            ErrorCode.invalid_field,
        ),
        (
            '{"type": "start", "v": 2, "line": "support", "language": "sv"}',
            ErrorCode.unsupported_version,
        ),
        ('{"type": "resume", "chat_id": "x", "token": "y"}', ErrorCode.invalid_field),
        (
            '{"type": "resume", "chat_id": "abcdefgh12", "token": "t", "last_seq": -1}',
            ErrorCode.invalid_field,
        ),
    ],
)
def test_bad_visitor_frames_get_stable_codes(text: str, code: ErrorCode) -> None:
    assert code_of(parse_frame(text, VISITOR_FRAMES)) is code


def test_missing_field_is_named() -> None:
    error = parse_frame('{"type": "start", "language": "sv"}', VISITOR_FRAMES)
    assert isinstance(error, ProtocolError)
    assert error.message == "missing field 'line'"
    assert error.frame() == {
        "type": "error",
        "code": "invalid_field",
        "message": "missing field 'line'",
        "ref": "start",
    }


def test_unknown_type_is_truncated_in_the_error() -> None:
    error = parse_frame(json.dumps({"type": "x" * 500}), VISITOR_FRAMES)
    assert isinstance(error, ProtocolError)
    assert len(error.message) < 80


def test_valid_frames_parse_to_types() -> None:
    frame = parse_frame(
        '{"type": "start", "line": "support", "language": "sv", "extra": 1}', VISITOR_FRAMES
    )
    assert frame == StartChat(type="start", line="support", language="sv")
    message = parse_frame(
        '{"type": "message", "text": "<script>alert(1)</script>"}', VISITOR_FRAMES
    )
    assert isinstance(message, VisitorMessage)
    assert message.text == "<script>alert(1)</script>"  # text stays text; nothing is interpreted
    assert parse_frame('{"type": "accept", "chat_id": "abcdefgh12"}', STAFF_FRAMES) == AcceptOffer(
        type="accept", chat_id="abcdefgh12"
    )


def test_staff_frames_need_their_chat() -> None:
    assert (
        code_of(parse_frame('{"type": "message", "text": "hi"}', STAFF_FRAMES))
        is ErrorCode.invalid_field
    )
    assert (
        code_of(
            parse_frame(
                '{"type": "wrapup", "chat_id": "abcdefgh12", "topics": "x", "outcome": "y"}',
                STAFF_FRAMES,
            )
        )
        is ErrorCode.invalid_field
    )
    assert (
        code_of(parse_frame('{"type": "status", "status": "asleep"}', STAFF_FRAMES))
        is ErrorCode.invalid_field
    )


def test_visitor_must_start_before_chatting() -> None:
    conn = visitor()
    assert (
        code_of(conn.receive_text('{"type": "message", "text": "hi"}')) is ErrorCode.not_allowed_now
    )
    assert code_of(conn.receive_text('{"type": "end"}')) is ErrorCode.not_allowed_now
    assert isinstance(conn.receive_text('{"type": "ping"}'), object)
    start = conn.receive_text('{"type": "start", "line": "support", "language": "sv"}')
    assert isinstance(start, StartChat)
    conn.entered("abcdefgh12")
    assert conn.phase is Phase.in_chat
    assert isinstance(conn.receive_text('{"type": "message", "text": "hi"}'), VisitorMessage)
    assert (
        code_of(conn.receive_text('{"type": "start", "line": "support", "language": "sv"}'))
        is ErrorCode.not_allowed_now
    )
    conn.ended()
    assert (
        code_of(conn.receive_text('{"type": "message", "text": "hi"}')) is ErrorCode.not_allowed_now
    )


def test_quick_exit_is_allowed_in_every_phase() -> None:
    conn = visitor()
    assert isinstance(conn.receive_text('{"type": "exit"}'), VisitorExit)
    conn.entered("abcdefgh12")
    assert isinstance(conn.receive_text('{"type": "exit", "extra": "ignored"}'), VisitorExit)
    conn.ended()
    assert isinstance(conn.receive_text('{"type": "exit"}'), VisitorExit)


def test_binary_frames_are_refused_with_a_code() -> None:
    assert code_of(visitor().receive_bytes(b"\x00\x01")) is ErrorCode.binary_not_supported


def test_a_flood_is_slowed_then_closed() -> None:
    clock = Clock()
    conn = visitor(clock, rate=1, burst=3, tolerance=2)
    results = [conn.receive_text('{"type": "ping"}') for _ in range(6)]
    assert [type(r).__name__ for r in results[:3]] == ["Ping", "Ping", "Ping"]
    assert code_of(results[3]) is ErrorCode.rate_limited
    assert code_of(results[4]) is ErrorCode.rate_limited
    assert results[5] == Close(CLOSE_POLICY_VIOLATION, "too many frames")


def test_a_burst_now_and_then_is_forgiven() -> None:
    clock = Clock()
    conn = visitor(clock, rate=1, burst=2, tolerance=2)
    for _ in range(5):
        # Each minute: two frames pass, two are refused, none closes the connection.
        results = [conn.receive_text('{"type": "ping"}') for _ in range(4)]
        assert not any(isinstance(r, Close) for r in results)
        clock.now += 61


def test_token_bucket_refills_with_time() -> None:
    bucket = TokenBucket(rate=2, burst=2, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.take(0.5)
    assert not bucket.take(0.5)
    assert bucket.take(10.0) and bucket.take(10.0) and not bucket.take(10.0)


def test_staff_connection_parses_every_frame_type() -> None:
    conn = StaffConnection(rate=100, burst=100, tolerance=1, clock=Clock())
    frames: list[dict[str, Any]] = [
        {"type": "status", "status": "break"},
        {"type": "accept", "chat_id": "abcdefgh12"},
        {"type": "decline", "chat_id": "abcdefgh12"},
        {"type": "message", "chat_id": "abcdefgh12", "text": "hej"},
        {"type": "typing", "chat_id": "abcdefgh12", "typing": False},
        {"type": "note", "chat_id": "abcdefgh12", "text": "handover"},
        {"type": "sync", "chat_id": "abcdefgh12", "last_seq": 3},
        {"type": "transfer", "chat_id": "abcdefgh12", "line": "youth"},
        {"type": "end", "chat_id": "abcdefgh12"},
        {"type": "block", "chat_id": "abcdefgh12"},
        {"type": "wrapup", "chat_id": "abcdefgh12", "topics": ["a"], "outcome": "b"},
        {"type": "ping"},
        {"type": "live"},
        {"type": "observe", "chat_id": "abcdefgh12"},
        {"type": "unobserve", "chat_id": "abcdefgh12"},
        {"type": "whisper", "chat_id": "abcdefgh12", "text": "ask about safety"},
        {"type": "takeover", "chat_id": "abcdefgh12"},
        {"type": "continuity.offer", "chat_id": "abcdefgh12", "note": "likes tea"},
        {"type": "referral", "chat_id": "abcdefgh12", "service_id": str(uuid.uuid4())},
        {"type": "help", "chat_id": "abcdefgh12", "text": "suicide risk"},
        {"type": "transfer.options", "chat_id": "abcdefgh12"},
        {"type": "team"},
        {"type": "interpreter.request", "chat_id": "abcdefgh12", "language": "ro"},
        {"type": "interpreter.remove", "chat_id": "abcdefgh12"},
        {"type": "interpreter.accept", "chat_id": "abcdefgh12"},
        {"type": "interpreter.decline", "chat_id": "abcdefgh12"},
        {"type": "interpreter.leave", "chat_id": "abcdefgh12"},
        {"type": "risk", "chat_id": "abcdefgh12", "level": "concern"},
        {"type": "ready"},
        {"type": "debrief", "chat_id": "abcdefgh12"},
        {"type": "shift"},
        {"type": "debriefs"},
        {"type": "debrief.open", "debrief_id": str(uuid.uuid4())},
        {"type": "take", "line": "support"},
        {"type": "booking.offer", "chat_id": "abcdefgh12", "times": ["2026-12-08T18:00:00Z"]},
    ]
    assert {f["type"] for f in frames} == set(STAFF_FRAMES)
    for frame in frames:
        parsed = conn.receive_text(json.dumps(frame))
        assert not isinstance(parsed, ProtocolError | Close), (frame, parsed)
        assert getattr(parsed, "type", None) == frame["type"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", ErrorCode.empty_message),
        ("   \n", ErrorCode.empty_message),
        ("x" * 11, ErrorCode.message_too_long),
    ],
)
def test_check_text(text: str, code: ErrorCode) -> None:
    assert code_of(check_text(text, 10)) is code


def test_check_text_counts_characters_not_bytes() -> None:
    assert check_text("å" * 10, 10) is None


def staff(clock: Clock | None = None) -> StaffConnection:
    return StaffConnection(rate=100, burst=100, tolerance=3, clock=clock or Clock())


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"type": "help"}', ErrorCode.invalid_field),
        ('{"type": "help", "chat_id": "short"}', ErrorCode.invalid_field),
        ('{"type": "help", "chat_id": "abcdefgh12", "text": 7}', ErrorCode.invalid_field),
        (
            json.dumps({"type": "help", "chat_id": "abcdefgh12", "text": "x" * 501}),
            ErrorCode.invalid_field,
        ),
        ('{"type": "help", "chat_id": "../../etc/passwd"}', ErrorCode.invalid_field),
        ('{"type": "transfer.options"}', ErrorCode.invalid_field),
        ('{"type": "transfer.options", "chat_id": ["abcdefgh12"]}', ErrorCode.invalid_field),
        (json.dumps({"type": "transfer.options", "chat_id": "a" * 65}), ErrorCode.invalid_field),
        ('{"type": "team", "v": 2}', ErrorCode.unsupported_version),
        ('{"type": "Team"}', ErrorCode.unknown_type),
    ],
)
def test_bad_console_frames_get_stable_codes(frame: str, code: ErrorCode) -> None:
    assert code_of(staff().receive_text(frame)) is code


def test_asking_for_help_is_limited_per_chat() -> None:
    clock = Clock()
    conn = staff(clock)
    ask = '{"type": "help", "chat_id": "abcdefgh12", "text": "please look"}'
    first = conn.receive_text(ask)
    assert isinstance(first, AskSupervisor) and first.text == "please look"
    again = conn.receive_text(ask)
    assert code_of(again) is ErrorCode.rate_limited
    assert isinstance(again, ProtocolError) and again.ref == "help"
    assert "30 s" in again.message
    # Another chat may ask at once; the same chat once the cooldown is over.
    assert isinstance(
        conn.receive_text('{"type": "help", "chat_id": "otherchat12"}'), AskSupervisor
    )
    clock.now += HELP_COOLDOWN_SECONDS - 1
    assert code_of(conn.receive_text(ask)) is ErrorCode.rate_limited
    clock.now += 1
    assert isinstance(conn.receive_text(ask), AskSupervisor)


def test_a_help_flood_still_closes_the_connection() -> None:
    clock = Clock()
    conn = StaffConnection(rate=1, burst=2, tolerance=2, clock=clock)
    ask = '{"type": "help", "chat_id": "abcdefgh12"}'
    results = [conn.receive_text(ask) for _ in range(5)]
    assert isinstance(results[0], AskSupervisor)
    assert code_of(results[1]) is ErrorCode.rate_limited  # the cooldown
    assert code_of(results[2]) is ErrorCode.rate_limited  # the bucket
    assert code_of(results[3]) is ErrorCode.rate_limited
    assert results[4] == Close(CLOSE_POLICY_VIOLATION, "too many frames")


def test_cooldown_forgets_old_keys() -> None:
    cooldown = Cooldown(10)
    for n in range(100):
        assert cooldown.take(f"chat{n}", float(n * 20))
    assert len(cooldown._last) == 1
    assert cooldown.retry_after("chat99", 1985.0) == 5.0
    assert cooldown.retry_after("never", 0.0) == 0.0


@pytest.mark.parametrize(
    "frame", ['{"type": "team"}', '{"type": "transfer.options", "chat_id": "abcdefgh12"}']
)
def test_console_frames_are_flood_controlled_like_any_other(frame: str) -> None:
    conn = StaffConnection(rate=1, burst=2, tolerance=1, clock=Clock())
    results = [conn.receive_text(frame) for _ in range(4)]
    assert not isinstance(results[0], ProtocolError | Close)
    assert not isinstance(results[1], ProtocolError | Close)
    assert code_of(results[2]) is ErrorCode.rate_limited
    assert results[3] == Close(CLOSE_POLICY_VIOLATION, "too many frames")
