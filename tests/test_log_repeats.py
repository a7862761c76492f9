"""Lines that a flood or an outage repeats at will are written once per kind and interval,
with a count (app/kit/logging.py, `Repeats`); a client going away while frames are sent to
it is no error at all. Against real `lykta serve` processes, reading their logs."""

from __future__ import annotations

import base64
import fcntl
import itertools
import json
import logging
import os
import socket
import struct
import termios
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from app.kit.logging import STATE_CHANGE, JsonFormatter, Repeats
from app.settings import Settings
from tests.support.clients import open_chat, open_staff, open_visitor
from tests.support.processes import LyktaProcess, RedisServer, free_port, process_env, seeding
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.waiting import eventually

SettingsFactory = Callable[..., Settings]
# Sent by every client of these tests: it must reach no log line.
CANARY_AGENT = "canary-agent-7f3a"

Line = dict[str, Any]


def log_lines(app: LyktaProcess) -> list[Line]:
    lines = []
    for raw in app.log.read_text().splitlines():
        line = json.loads(raw)  # every line is JSON: a traceback printed as text fails here
        assert isinstance(line, dict)
        lines.append(line)
    return lines


def kind_of(line: Line) -> tuple[Any, ...]:
    fields = sorted(
        (k, str(v)) for k, v in line.items() if k not in ("time", "stack", "repeats", "count")
    )
    return tuple(fields)


def by_kind(lines: list[Line]) -> dict[tuple[Any, ...], list[Line]]:
    kinds: dict[tuple[Any, ...], list[Line]] = defaultdict(list)
    for line in lines:
        kinds[kind_of(line)].append(line)
    return kinds


def weight(line: Line) -> int:
    """How many occurrences a line stands for: itself, or the count it carries."""
    repeats = line.get("repeats")
    return int(repeats) if repeats is not None else 1


def at(line: Line) -> float:
    return datetime.fromisoformat(line["time"]).timestamp()


def no_client_in(app: LyktaProcess) -> None:
    text = app.log.read_text()
    assert CANARY_AGENT not in text
    # The only address in the log is the process's own, as it starts.
    assert "127.0.0.1" not in text.replace(f"127.0.0.1:{app.port}", "")


def record(message: str, level: int = logging.ERROR, name: str = "uvicorn.error") -> Any:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_one_line_per_kind_and_interval_then_the_count() -> None:
    written: list[logging.LogRecord] = []
    now = [0.0]
    repeats = Repeats(written.append, 10.0, clock=lambda: now[0])
    refused = "ASGI callable returned without completing handshake."
    try:
        assert repeats.filter(record(refused))
        assert not any(repeats.filter(record(refused)) for _ in range(5))
        # Another kind is another line; Lykta's own INFO lines and changes of state pass.
        assert repeats.filter(record("Exception in ASGI application\n"))
        assert all(repeats.filter(record("sweep", logging.INFO, "app.x")) for _ in range(3))
        lost = record("Redis connection lost", logging.WARNING, "app.broker")
        lost.__dict__.update(STATE_CHANGE)
        assert repeats.filter(lost) and repeats.filter(lost)
        now[0] = 10.0
        repeats.flush(ended_only=True)
        assert len(written) == 1
        line = json.loads(JsonFormatter().format(written[0]))
        assert line["event"] == refused and line["repeats"] == 5 and line["level"] == "ERROR"
        # Counting goes on for another interval: still one line per interval.
        assert not repeats.filter(record(refused))
        now[0] = 20.0
        repeats.flush(ended_only=True)
        assert [r.__dict__["repeats"] for r in written] == [5, 1]
        # A quiet interval, and the kind is forgotten: its next line goes out at once.
        now[0] = 30.0
        repeats.flush(ended_only=True)
        assert repeats.filter(record(refused))
        assert len(written) == 2
    finally:
        repeats.close()


async def start(settings: Settings, log: Path, port: int | None = None) -> LyktaProcess:
    env = {**process_env(settings), "LYKTA_LOG_LEVEL": "INFO"}
    app = LyktaProcess("lykta", env, log, port=port or free_port())
    await app.start()
    return app


FLOOD = 40


@pytest.mark.parametrize("adapter", [True, False], ids=["adapter", "plain-uvicorn"])
async def test_a_flood_of_refused_handshakes_is_counted_not_written_line_by_line(
    tmp_path: Path, settings_for: SettingsFactory, adapter: bool
) -> None:
    settings = settings_for(connection_rate_per_minute=2, websocket_adapter=adapter)
    app = await start(settings, tmp_path / "lykta.log")
    try:
        agent = {"User-Agent": CANARY_AGENT}
        for _ in range(2):
            await (await open_visitor(app, agent)).close()
        for _ in range(FLOOD):
            with pytest.raises(InvalidStatus) as refused:
                await open_visitor(app, agent)
            assert refused.value.response.status_code == 429
    finally:
        await app.stop()
    lines = log_lines(app)
    limited = [line for line in lines if line.get("code") == "ws_limited"]
    # The first refusal at once; the others as one count (written at shutdown at the latest).
    assert len(limited) == 2, limited
    assert sum(weight(line) for line in limited) == FLOOD
    assert limited[0]["level"] == "WARNING"
    # Nothing else is written once per refusal either (uvicorn's error about the refused
    # handshakes, without the adapter, is counted the same way).
    for kind, group in by_kind(lines).items():
        assert len(group) <= 2, kind
    if adapter:
        assert [line for line in lines if line["level"] == "ERROR"] == []
    no_client_in(app)


def raw_staff_socket(port: int, cookie: str) -> socket.socket:
    """A counsellor's connection that reads nothing but the handshake's answer, with a
    receive buffer far smaller than what it asks for."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/staff HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"User-Agent: {CANARY_AGENT}\r\nCookie: lykta_session={cookie}\r\n\r\n"
        ).encode()
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)  # one at a time: nothing past the answer's head is taken
        assert byte, head
        head += byte
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def masked_text(text: str) -> bytes:
    """A client's text frame (RFC 6455: masked)."""
    payload = text.encode()
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([0x81, 0x80 | size]) if size < 126 else bytes([0x81, 0x80 | 126])
    if size >= 126:
        head += struct.pack("!H", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def pending(sock: socket.socket) -> int:
    """Bytes received and not yet read."""
    buffer = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    count: int = struct.unpack("i", buffer)[0]
    return count


# Long messages, asked for again and again: far more than the socket buffers hold, so the
# server is still sending when the client vanishes.
MESSAGES = 200
SYNCS = 25


@pytest.mark.both_brokers  # on Redis, leaving takes round trips: the writer meets the loss
async def test_a_counsellor_vanishing_while_frames_are_sent_is_no_error(
    tmp_path: Path, settings_for: SettingsFactory
) -> None:
    port = free_port()
    settings = settings_for(
        public_url=f"http://127.0.0.1:{port}", staff_frame_rate=500.0, staff_frame_burst=500
    )
    async with seeding(settings) as rt:
        await add_line(rt)
        await add_counsellor(rt, "anna")
    app = await start(settings, tmp_path / "lykta.log", port)
    try:
        anna = await open_staff(app, "anna", PASSWORD)
        visitor = await open_chat(app, anna)
        chat_id = visitor.chat_id
        for index in range(MESSAGES):
            await anna.say(chat_id, f"{index} " + "x" * 3_900)
        raw = raw_staff_socket(app.port, anna.cookie)

        async def greeted() -> bool:
            return pending(raw) > 0

        await eventually(greeted, what="the hello")
        greeting = pending(raw)
        sync = json.dumps({"type": "sync", "chat_id": chat_id, "last_seq": 0})
        raw.sendall(b"".join(masked_text(sync) for _ in range(SYNCS)))

        async def sending() -> bool:
            return pending(raw) > greeting + 3_900

        await eventually(sending, what="the transcript on its way")
        # Gone at once (a reset), mid-transcript.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()
        # The process goes on as before.
        await anna.say(chat_id, "still here")
        await visitor.expect("message", text="still here")
    finally:
        await app.stop()
    text = app.log.read_text()
    assert "Exception in ASGI application" not in text
    assert [line for line in log_lines(app) if line["level"] in ("ERROR", "CRITICAL")] == []
    no_client_in(app)


# Short, so that an outage of a few seconds spans several intervals.
INTERVAL = 1.0


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_redis_outage_is_one_line_per_kind_and_interval(
    tmp_path: Path, scale_settings: SettingsFactory
) -> None:
    redis = RedisServer(tmp_path, appendonly=False)  # our own, to stop
    await redis.start()
    settings = scale_settings(redis_url=redis.url, log_repeat_seconds=INTERVAL)
    app = await start(settings, tmp_path / "lykta.log")
    try:
        await redis.stop()

        async def counted_for_a_while() -> bool:
            counts = [line for line in log_lines(app) if "repeats" in line]
            return any(len(group) >= 3 for group in by_kind(counts).values())

        await eventually(counted_for_a_while, timeout=30, what="three intervals of counts")
        await redis.start()

        async def restored() -> bool:
            return any(line["event"] == "Redis connection restored" for line in log_lines(app))

        await eventually(restored, timeout=30, what="Redis back")
    finally:
        # At shutdown the counts not yet written go out at once: not part of the outage.
        stopping = time.time()
        await app.stop()
        await redis.stop()
    lines = [line for line in log_lines(app) if at(line) < stopping]
    assert [line["event"] for line in lines if line["event"].startswith("Redis connection")] == [
        "Redis connection lost; clients are told to reconnect",
        "Redis connection restored",
    ]
    # The background loops' failures are reported, as warnings without a stack: the outage
    # itself is the line above, and no error of Lykta's is behind them.
    failures = [line for line in lines if line.get("code") == "broker_unavailable"]
    assert failures, "the background loops' failures are still reported"
    assert all(line["level"] == "WARNING" and "stack" not in line for line in failures)
    assert [line["event"] for line in lines if line["level"] in ("ERROR", "CRITICAL")] == []
    for kind, group in by_kind(lines).items():
        times = [at(line) for line in group]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        # Never two lines of a kind within an interval (times are to the millisecond).
        assert all(gap >= INTERVAL - 0.01 for gap in gaps), (kind, gaps)
    assert any(line.get("repeats", 0) > 1 for line in failures)
