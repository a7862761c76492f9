"""The forensic test: a few hundred chats through real uvicorn, with canaries everywhere a
visitor or a counsellor could leave a trace, then a search of everything Lykta leaves behind.

Canaries go in as message text, replies, staff notes, and as X-Forwarded-For, Forwarded,
X-Real-IP, User-Agent, Referer, Accept-Language, cookies, URL queries, Origin values (allowed
and refused), a malformed HTTP request and an invalid WebSocket frame. During the chats the
broker is copied and searched for the words of the chats; after the last retention ran out
every SQL table (and the database files), every broker key and value, every log line, all of
stdout and stderr, and the subpoena drill's output are searched for every canary.

It runs once per broker variant (tests/support/brokers.py): the in-process broker now; the
Redis variant (KEYS * with typed reads and DUMP) plugs in by adding it to BROKER_VARIANTS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, create_engine, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.broker.records import ChatState
from app.continuity.codes import normalise
from app.kit.logging import configure_logging, stop_repeats
from app.models.enums import Qualification
from app.settings import Settings
from tests.support.brokers import MemoryVariant, RedisVariant, transcript_gone
from tests.support.clients import StaffClient, VisitorClient, fresh_code, open_staff, open_visitor
from tests.support.held import written
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer, run_server
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]
# "redis" joins once Lykta runs on Redis (issue 6): RedisVariant(prefix=...) below.
BROKER_VARIANTS = ["memory", "redis"]
BATCHES = int(os.environ.get("FORENSIC_BATCHES", "10"))
BATCH = 20  # 14 on the support line (no retention), 6 on the youth line (2 s retention)
IP_PREFIXES = ("203.0.113.", "2001:db8:c0de:")
RETENTION = 2
Variant = MemoryVariant | RedisVariant


class Canaries:
    """Distinctive strings; every one of them must vanish."""

    def __init__(self) -> None:
        self.run = secrets.token_hex(4)
        self.all: list[str] = []
        self.words: list[str] = []  # what was said: must not be in the broker in clear

    def new(self, kind: str, *, said: bool = False) -> str:
        value = f"canary{kind}{self.run}n{len(self.all)}"
        self.all.append(value)
        if said:
            self.words.append(value)
        return value

    def address(self, n: int) -> str:
        return f"203.0.113.{n % 250 + 1}" if n % 3 else f"2001:db8:c0de::{n:x}"

    def leaked(self, blob: bytes, *, words_only: bool = False) -> list[str]:
        low = blob.lower()
        needles = self.words if words_only else [*self.all, *IP_PREFIXES]
        return [n for n in needles if n.lower().encode() in low]


@pytest.fixture(params=BROKER_VARIANTS)
async def variant(request: pytest.FixtureRequest) -> AsyncIterator[Variant]:
    chosen: Variant = (
        MemoryVariant()
        if request.param == "memory"
        else RedisVariant(prefix=f"lykta-forensic-{secrets.token_hex(6)}")
    )
    try:
        yield chosen
    finally:
        await chosen.close()


@pytest.fixture
def production_logging(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Lykta's own logging, as `lykta serve` sets it up, at DEBUG; restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    raising = logging.raiseExceptions
    access = logging.getLogger("uvicorn.access")
    configure_logging("DEBUG")
    try:
        yield
    finally:
        stop_repeats()
        root.handlers[:], level, sys.excepthook, threading.excepthook = saved
        root.setLevel(level)
        access.disabled = False
        logging.captureWarnings(False)
        logging.raiseExceptions = raising


@dataclass
class Bot:
    """A counsellor who accepts every offer, answers, writes a note, and wraps up."""

    client: StaffClient
    canaries: Canaries
    owned: dict[str, Bot]
    noted: set[str] = field(default_factory=set)
    heard: list[str] = field(default_factory=list)
    # Handover notes this counsellor saw when a returning visitor's chat opened.
    handovers: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.client.ws.send(json.dumps(frame))

    async def run(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.client.ws:
                await self.handle(json.loads(raw))

    async def handle(self, frame: dict[str, Any]) -> None:
        kind, chat_id = frame.get("type"), frame.get("chat_id")
        if kind == "offer":
            await self.send({"type": "accept", "chat_id": chat_id})
        elif kind == "chat.opened" and isinstance(chat_id, str):
            self.owned[chat_id] = self
        elif kind == "message" and frame.get("sender") == "visitor":
            self.heard.append(frame["text"])
            reply = self.canaries.new("reply", said=True)
            await self.send({"type": "message", "chat_id": chat_id, "text": reply})
            note = self.canaries.new("note", said=True)
            await self.send({"type": "note", "chat_id": chat_id, "text": note})
        elif kind == "note" and isinstance(chat_id, str):
            self.noted.add(chat_id)
        elif kind == "handover":
            self.handovers.append(frame["text"])
        elif kind == "wrapup.required":
            await self.send(
                {"type": "wrapup", "chat_id": chat_id, "topics": ["other"], "outcome": "referred"}
            )
        elif kind == "error" and frame.get("code") != "offer_expired":
            self.errors.append(frame)


def visitor_headers(canaries: Canaries, n: int, origin: str) -> dict[str, str]:
    return {
        "X-Forwarded-For": canaries.address(n),
        "Forwarded": f"for={canaries.address(n + 1000)};host={canaries.new('fwdhost')}.example",
        "X-Real-IP": canaries.address(n + 2000),
        "X-Forwarded-Host": f"{canaries.new('xfh')}.example",
        "User-Agent": f"Mozilla/5.0 {canaries.new('agent')}",
        "Referer": f"https://{canaries.new('referer')}.example/help?from={canaries.new('query')}",
        "Accept-Language": f"sv-SE,{canaries.new('lang')};q=0.5",
        "Cookie": f"tracker={canaries.new('cookie')}",
        "Origin": origin,
    }


MODES = ("visitor_end", "counsellor_end", "quick_exit", "quick_exit_http", "abandoned")


async def test_nothing_identifying_survives_a_few_hundred_chats(
    variant: Variant,
    production_logging: None,
    settings_for: Callable[..., Settings],
    database_url: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    canaries = Canaries()
    embed = f"https://{canaries.new('embed')}.example"
    settings = settings_for(
        **variant.settings,
        log_level="DEBUG",
        embed_origins=embed,
        trusted_proxies=["127.0.0.1"],
        sweep_seconds=1.0,
        # A counsellor bot answers faster than a person; flood control is tested elsewhere.
        staff_frame_rate=200.0,
        staff_frame_burst=400,
        # Hundreds of chats load the machine: a stalled loop must not let the bots' leases run
        # out (the line would read as closed); dropped processes are tested elsewhere.
        heartbeat_seconds=3.0,
    )
    chats: list[tuple[str, str]] = []  # (chat id, line)
    owned: dict[str, Bot] = {}
    bots: list[Bot] = []
    blocked_addresses: list[str] = []
    async with run_server(settings, variant.broker) as server:
        rt = server.runtime
        await add_line(rt, visitor_grace_seconds=1)
        await add_line(
            rt,
            "youth",
            required_qualification="volunteer",
            visitor_grace_seconds=1,
            transcript_retention_seconds=RETENTION,
        )
        for name in ("anna", "bo", "cleo", "dag"):
            await add_counsellor(rt, name, capacity=5)
        for name in ("eva", "finn"):
            await add_counsellor(
                rt, name, lines=("youth",), qualification=Qualification.volunteer, capacity=5
            )
        for name in ("anna", "bo", "cleo", "dag", "eva", "finn"):
            async with httpx.AsyncClient(
                base_url=server.url, headers={"User-Agent": canaries.new("staffagent")}
            ) as http:
                signed = await http.post(
                    "/api/staff/session",
                    json={"username": name, "password": PASSWORD, "code": await fresh_code(name)},
                )
                cookie = signed.cookies["lykta_session"]
            bot = Bot(await open_staff(server, name, PASSWORD, cookie=cookie), canaries, owned)
            bots.append(bot)
        tasks = [asyncio.create_task(bot.run()) for bot in bots]

        await noise(server, canaries, embed)
        for batch in range(BATCHES):
            visitors = await asyncio.gather(
                *(
                    visit(
                        server, canaries, batch * BATCH + i, embed, "youth" if i < 6 else "support"
                    )
                    for i in range(BATCH)
                )
            )
            chats.extend(
                (v.chat_id, "youth" if i < 6 else "support") for i, v in enumerate(visitors)
            )
            await eventually(
                lambda batch=visitors: _all_noted(bots, batch),  # type: ignore[misc]
                timeout=30,
                what="every note written",
            )
            # A copy of the broker during the chats: their words are there only encrypted.
            during = await variant.dump(rt)
            assert all(v.chat_id.encode() in during for v in visitors)
            assert canaries.leaked(during, words_only=True) == []
            assert [n for n in IP_PREFIXES if n.encode() in during] == []
            await asyncio.gather(
                *(
                    leave(server, canaries, v, MODES[i % len(MODES)], owned, embed)
                    for i, v in enumerate(visitors)
                )
            )
            if batch == 0:
                blocked_addresses.append(await block_one(server, canaries, owned, embed, bots))
        # Continuity codes: the code and the handover note are canaries like everything else.
        chats.extend(await continuity_round(server, canaries, owned, embed, variant))
        await eventually(
            lambda: _all_shredded(server, chats), timeout=RETENTION + 60, what="all shredded"
        )
        # The hour's batch of rows about these chats, as once the hour is over (the
        # broker's copy below has no held rows left then).
        await written(rt)
        said = sum(len(b.heard) for b in bots)
        assert said >= BATCHES * BATCH
        assert [e for b in bots for e in b.errors] == []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    after = await variant.dump(None)

    assert canaries.leaked(after) == []
    tables, files = sql_everything(database_url)
    assert b"chat_statistics" in tables and tables.count(b"'support'") >= BATCHES * 14
    assert canaries.leaked(tables) == []
    assert canaries.leaked(files) == []
    drill = run_drill(database_url)
    assert set(drill) == {
        "window",
        "staff records",
        "audit log",
        "hourly aggregates",
        "configuration",
        "continuity codes",
        "mailbox threads",
    }
    assert len(drill["continuity codes"]["continuity_codes"]) == 1
    assert len(drill["hourly aggregates"]["chat_statistics"]) >= BATCHES * BATCH
    assert canaries.leaked(json.dumps(drill).encode()) == []
    output = capfd.readouterr()
    logged = (output.out + output.err).encode()
    lines = [json.loads(line) for line in output.err.splitlines() if line.startswith("{")]
    assert len(lines) > 20  # the logs were captured: server start, DEBUG lines, warnings
    assert any(line["event"] == "Invalid HTTP request received." for line in lines)
    assert canaries.leaked(logged) == []
    assert blocked_addresses


async def _all_noted(bots: list[Bot], visitors: list[VisitorClient]) -> bool:
    noted: set[str] = set().union(*(b.noted for b in bots))
    return all(v.chat_id in noted for v in visitors)


async def _all_shredded(server: RunningServer, chats: list[tuple[str, str]]) -> bool:
    broker = server.runtime.broker
    for chat_id, _ in chats:
        if not await transcript_gone(broker, chat_id):
            return False
        record = await broker.get_chat(chat_id)
        if record is not None and record.state is not ChatState.ended:
            return False
    return True


async def visit(
    server: RunningServer, canaries: Canaries, n: int, origin: str, line: str
) -> VisitorClient:
    visitor = await open_visitor(
        server, visitor_headers(canaries, n, origin), query=f"?page={canaries.new('wsquery')}"
    )
    await visitor.start(line, "sv")
    await visitor.expect("counsellor.joined", timeout=30)
    await visitor.say(canaries.new("msg", said=True))
    await visitor.expect("message", sender="counsellor", timeout=30)
    return visitor


async def leave(
    server: RunningServer,
    canaries: Canaries,
    visitor: VisitorClient,
    mode: str,
    owned: dict[str, Bot],
    origin: str,
) -> None:
    if mode == "visitor_end":
        await visitor.send({"type": "end"})
        await visitor.expect("chat.ended")
    elif mode == "counsellor_end":
        await owned[visitor.chat_id].send({"type": "end", "chat_id": visitor.chat_id})
        await visitor.expect("chat.ended")
    elif mode == "quick_exit":
        await visitor.send({"type": "exit"})
        await visitor.expect("exited")
    elif mode == "quick_exit_http":
        headers = visitor_headers(canaries, 3000, origin)
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
            response = await http.post(
                "/api/visitor/exit", json={"chat_id": visitor.chat_id, "token": visitor.token}
            )
        assert response.json() == {"status": "exited"}
    await visitor.close()  # "abandoned": just gone; the grace period ends the chat


async def block_one(
    server: RunningServer, canaries: Canaries, owned: dict[str, Bot], origin: str, bots: list[Bot]
) -> str:
    """A counsellor blocks a visitor, who then cannot start again from the same address."""
    headers = visitor_headers(canaries, 4000, origin)
    visitor = await open_visitor(server, headers)
    await visitor.start("support", "sv")
    await visitor.expect("counsellor.joined", timeout=30)
    await visitor.say(canaries.new("abuse", said=True))
    await visitor.expect("message", sender="counsellor", timeout=30)
    await owned[visitor.chat_id].send({"type": "block", "chat_id": visitor.chat_id})
    await visitor.expect("chat.ended")
    again = await open_visitor(server, {**headers, "User-Agent": canaries.new("agent")})
    await again.send({"type": "start", "line": "support", "language": "sv"})
    assert (await again.expect("line.closed"))["reason"] == "unavailable"
    await again.close()
    await visitor.close()
    return headers["X-Forwarded-For"]


async def continuity_round(
    server: RunningServer,
    canaries: Canaries,
    owned: dict[str, Bot],
    origin: str,
    variant: Variant,
) -> list[tuple[str, str]]:
    """A visitor takes a continuity code, comes back with it on a new connection and is
    answered by the same counsellor, who sees the note; the code and note are canaries."""
    visitor = await open_visitor(server, visitor_headers(canaries, 9000, origin))
    await visitor.start("support", "sv")
    await visitor.expect("counsellor.joined", timeout=30)
    await visitor.say(canaries.new("msg", said=True))
    await visitor.expect("message", sender="counsellor", timeout=30)
    bot = owned[visitor.chat_id]
    note = canaries.new("handover", said=True)
    await bot.send({"type": "continuity.offer", "chat_id": visitor.chat_id, "note": note})
    await visitor.expect("continuity.offered")
    await visitor.send({"type": "continuity.accept"})
    code = str((await visitor.expect("continuity.code"))["code"])
    normal = normalise(code)
    assert normal is not None
    # The code, in every form it could be kept in, must be nowhere afterwards.
    canaries.all.extend({code, normal, normal.replace(" ", "")})
    await visitor.send({"type": "end"})
    await visitor.expect("chat.ended")
    await visitor.close()
    back = await open_visitor(server, visitor_headers(canaries, 9001, origin))
    await back.send({"type": "start", "line": "support", "language": "sv", "code": code.upper()})
    await back.expect("continuity.found")
    started = await back.expect("chat.started")
    back.chat_id, back.token = started["chat_id"], started["token"]
    await back.expect("counsellor.joined", timeout=30)
    await eventually(lambda: _saw(bot, note), what="the counsellor saw the handover note")
    assert owned[back.chat_id] is bot
    during = await variant.dump(server.runtime)
    assert canaries.leaked(during, words_only=True) == []
    await back.send({"type": "exit"})
    await back.expect("exited")
    await back.close()
    return [(visitor.chat_id, "support"), (back.chat_id, "support")]


async def _saw(bot: Bot, note: str) -> bool:
    return note in bot.handovers


async def noise(server: RunningServer, canaries: Canaries, origin: str) -> None:
    """Requests that make uvicorn and Lykta log, refuse or fail, each carrying canaries."""
    headers = visitor_headers(canaries, 5000, origin)
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        assert (await http.get("/api/lines")).status_code == 200
        assert (await http.get(f"/api/lines/{canaries.new('path')}")).status_code == 404
        assert (
            await http.get(f"/{canaries.new('nowhere')}?q={canaries.new('q')}")
        ).status_code == 404
        await http.post(
            "/api/staff/session", json={"username": canaries.new("user"), "password": "x"}
        )
        await http.post("/api/visitor/exit", content=canaries.new("body").encode())
    # Refused origins.
    for n in range(3):
        evil = {
            **visitor_headers(canaries, 6000 + n, origin),
            "Origin": f"https://{canaries.new('evil')}.example",
        }
        async with connect(f"{server.ws_url}/ws/visitor", additional_headers=evil) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
    # A malformed HTTP request, and a WebSocket frame that is not UTF-8.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    raw = (
        f"GET /{canaries.new('raw')} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: "
        f"{canaries.address(7)}\r\nUser-Agent: {canaries.new('rawagent')}\r\n\x00bad\r\n\r\n"
    )
    writer.write(raw.encode())
    await writer.drain()
    await reader.read()
    writer.close()
    broken = await open_visitor(server, visitor_headers(canaries, 7000, origin))
    await broken.ws.send(
        f'{{"type": "message", "text": "{canaries.new("utf8")}'.encode() + b'\xff"}', text=True
    )
    with pytest.raises(ConnectionClosed):
        await broken.ws.recv()
    # Malformed frames that echo nothing back into a log.
    other = await open_visitor(server, visitor_headers(canaries, 8000, origin))
    await other.send({"type": canaries.new("type")})
    await other.expect("error")
    await other.send(
        {"type": "resume", "chat_id": canaries.new("chatid")[:60], "token": canaries.new("token")}
    )
    await other.expect("error")
    await other.close()


def sql_everything(database_url: str) -> tuple[bytes, bytes]:
    """Every row of every table (as the database has them), and the raw database files."""
    path = Path(database_url.split(":///", 1)[1])
    engine = create_engine(f"sqlite:///{path}")
    metadata = MetaData()
    rows: list[str] = []
    with engine.connect() as connection:
        metadata.reflect(connection)
        for table in metadata.sorted_tables:
            rows.append(table.name)
            rows.extend(repr(tuple(row)) for row in connection.execute(select(table)))
    engine.dispose()
    files = b"".join(
        candidate.read_bytes()
        for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
        if candidate.exists()
    )
    return "\n".join(rows).encode(), files


def run_drill(database_url: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYKTA_")}
    env.update(LYKTA_DATABASE_URL=database_url, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "privacy",
            "drill",
            "--from",
            (now - timedelta(days=1)).isoformat(),
            "--to",
            (now + timedelta(days=1)).isoformat(),
        ],
        capture_output=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.redis
async def test_the_redis_dump_reads_every_kind_of_key() -> None:
    """The Redis variant's eyes, checked on the real Redis (a prefix of its own, removed)."""
    import redis.asyncio as aioredis

    from tests.support.brokers import REDIS_URL, redis_dump

    variant = RedisVariant(prefix=f"lykta-dumptest-{secrets.token_hex(6)}")
    p = variant.prefix
    client: Any = aioredis.from_url(REDIS_URL)
    try:
        # Long and repetitive, so DUMP compresses it: only the typed read shows it in clear.
        await client.set(f"{p}:s", "canarystring" * 50)
        await client.hset(f"{p}:h", mapping={"canaryfield": "canaryhashvalue"})
        await client.rpush(f"{p}:l", "canarylist")
        await client.sadd(f"{p}:set", "canaryset")
        await client.zadd(f"{p}:z", {"canaryzset": 1.0})
        await client.xadd(f"{p}:x", {"e": "canarystream"})
        dump = await variant.dump(None)
        for word in ("canarystring", "canaryhashvalue", "canarylist", "canaryset", "canaryzset"):
            assert word.encode() in dump, word
        assert b"canarystream" in dump
    finally:
        await client.aclose()
        await variant.close()
    assert await redis_dump(REDIS_URL, p) == b""
