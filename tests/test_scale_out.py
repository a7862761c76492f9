"""Several Lykta processes on one Redis and one PostgreSQL, as production runs them.

Each process is a real `lykta serve` (uvicorn on uvloop) started, stopped and killed with real
signals; clients are real WebSocket clients that may reconnect to any process.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.broker.redis import RedisBroker
from app.chats.entries import EntryKind
from app.settings import Settings
from tests.conftest import REDIS_URL
from tests.support.clients import (
    Endpoint,
    Frame,
    StaffClient,
    VisitorClient,
    WsClient,
    open_chat,
    open_staff,
    open_visitor,
    sign_in,
)
from tests.support.processes import LyktaProcess, RedisServer, processes, seeding
from tests.support.seed import PASSWORD, TOTP_SECRETS, add_counsellor, add_line

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

# A bound on how long a test waits for the system to settle (failure only, not a claim).
SETTLE = 60.0


async def until(check: Callable[[], bool], what: str, timeout: float = SETTLE) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


async def closed_with(client: WsClient) -> int | None:
    """Read until the server closes the connection; its close code."""
    try:
        while True:
            await asyncio.wait_for(client.ws.recv(), SETTLE)
    except ConnectionClosed:
        pass
    return client.ws.close_code


async def resume_visitor(server: Endpoint, old: VisitorClient, last_seq: int) -> VisitorClient:
    back = await open_visitor(server)
    back.chat_id, back.token = old.chat_id, old.token
    await back.send(
        {"type": "resume", "chat_id": old.chat_id, "token": old.token, "last_seq": last_seq}
    )
    await back.expect("chat.resumed")
    return back


ENTRY_FRAMES = {"message", "note", "counsellor.joined", "counsellor.left", "chat.ended"}


def seqs(frames: list[Frame], chat_id: str) -> list[int]:
    """Sequence numbers of the transcript entries a client received (not acknowledgements)."""
    return [
        int(f["seq"])
        for f in frames
        if f.get("type") in ENTRY_FRAMES and f.get("chat_id") == chat_id
    ]


def last_seen(frames: list[Frame], chat_id: str) -> int:
    """What a client resumes from: the highest number it saw, acknowledgements included."""
    return max(
        (int(f["seq"]) for f in frames if "seq" in f and f.get("chat_id") == chat_id), default=0
    )


async def stored_messages(settings: Settings, chat_id: str) -> list[tuple[int, str | None]]:
    """(seq, client id) of every message in the chat's stored transcript."""
    async with seeding(settings) as runtime:
        await runtime.broker.start()
        try:
            entries = await runtime.transcript.read(chat_id, 0)
        finally:
            await runtime.broker.close()
    assert [seq for seq, _ in entries] == list(range(1, len(entries) + 1))
    return [(seq, e.client_id) for seq, e in entries if e.kind is EntryKind.message]


async def test_a_chat_across_two_processes_and_reconnects_to_either(
    tmp_path: Path, scale_settings: Callable[..., Settings], redis_prefix: str
) -> None:
    settings = scale_settings()
    async with seeding(settings) as rt:
        await add_line(rt)
        await add_counsellor(rt, "anna", alias="Anna")
    async with processes(settings, tmp_path) as (a, b):
        anna = await open_staff(b, "anna", PASSWORD)
        visitor = await open_chat(a, anna)
        chat_id = visitor.chat_id
        await visitor.expect("counsellor.joined", name="Anna")
        await visitor.say("hemligt från A", client_id="v1")
        got = await anna.expect("message", sender="visitor")
        assert got["text"] == "hemligt från A" and got["client_id"] == "v1"
        await anna.send({"type": "typing", "chat_id": chat_id, "typing": True})
        await visitor.expect("typing", sender="counsellor", typing=True)
        await anna.say(chat_id, "svar från B")
        last = await visitor.expect("message", text="svar från B")

        # Each side moves to the other process; nothing is lost or doubled.
        await visitor.close()
        await anna.expect("visitor.away", chat_id=chat_id)
        await anna.say(chat_id, "medan du var borta")
        moved = await resume_visitor(b, visitor, last["seq"])
        assert (await moved.expect("message"))["text"] == "medan du var borta"
        await anna.expect("visitor.back", chat_id=chat_id)
        anna_on_a = await open_staff(a, "anna", PASSWORD, available=False)
        await anna.close()
        assert [c["chat_id"] for c in anna_on_a.hello["chats"]] == [chat_id]
        await moved.say("tillbaka", client_id="v2")
        await anna_on_a.expect("message", sender="visitor", text="tillbaka")
        await anna_on_a.say(chat_id, "bra")
        await moved.expect("message", text="bra")
        await moved.expect_none("message", within=0.5)
        assert [cid for _, cid in await stored_messages(settings, chat_id)].count("v1") == 1

        # What Redis holds: no message text anywhere, and nothing without an expiry.
        broker = RedisBroker(REDIS_URL, redis_prefix)
        await broker.start()
        try:
            held = await broker.dump()
            assert chat_id in held
            for text in ("hemligt", "svar från B", "medan du", "tillbaka"):
                assert text not in held and text.encode().hex() not in held
            assert await broker.keys_without_ttl() == []
        finally:
            await broker.close()


class Console:
    """A counsellor who accepts every offer at once, recording what their own console shows."""

    def __init__(self, client: StaffClient, capacity: int) -> None:
        self.client = client
        self.capacity = capacity
        self.opened: list[str] = []
        self.open_now: set[str] = set()
        self.most_open = 0
        self.errors: list[Frame] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for raw in self.client.ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "offer":
                await self.client.send({"type": "accept", "chat_id": frame["chat_id"]})
            elif kind == "chat.opened":
                self.opened.append(frame["chat_id"])
                self.open_now.add(frame["chat_id"])
                self.most_open = max(self.most_open, len(self.open_now))
            elif kind in ("chat.ended", "chat.released"):
                self.open_now.discard(frame["chat_id"])
            elif kind == "error":
                self.errors.append(frame)

    async def end_one(self) -> str:
        chat_id = sorted(self.open_now)[0]
        await self.client.send({"type": "end", "chat_id": chat_id})
        return chat_id


async def test_fifty_visitors_and_ten_counsellors_on_two_processes(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    settings = scale_settings()
    capacity = 3
    names = [f"c{i}" for i in range(10)]
    async with seeding(settings) as rt:
        await add_line(rt, max_queue_length=100, offer_timeout_seconds=60)
        for name in names:
            await add_counsellor(rt, name, capacity=capacity)
    async with processes(settings, tmp_path) as servers:
        consoles = []
        for index, name in enumerate(names):
            client = await open_staff(servers[index % 2], name, PASSWORD)
            consoles.append(Console(client, capacity))
        visitors: list[VisitorClient] = []

        async def arrive(index: int) -> None:
            visitor = await open_visitor(servers[index % 2])
            await visitor.start()
            visitors.append(visitor)

        await asyncio.gather(*(arrive(i) for i in range(50)))

        def opened() -> list[str]:
            return [chat for c in consoles for chat in c.opened]

        await until(lambda: len(opened()) == 30, "30 chats answered")
        # A chat ends at each counsellor; the freed places go to ten of those waiting.
        ended = [await c.end_one() for c in consoles]
        await until(lambda: len(opened()) == 40, "40 chats answered")
        await asyncio.sleep(1.0)  # anything wrongly assigned late would show up now
        assert len(opened()) == 40
        assert len(set(opened())) == 40, "a chat was given to two counsellors"
        assert not set(ended) & {chat for c in consoles for chat in c.open_now}
        for console in consoles:
            assert console.most_open <= capacity, "a counsellor was pushed over capacity"
            assert len(console.open_now) == capacity
            assert console.errors == []
        assert {v.chat_id for v in visitors} >= set(opened())
        for console in consoles:
            console.task.cancel()


async def test_sigkill_of_one_process_loses_and_doubles_nothing(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    settings = scale_settings()
    async with seeding(settings) as rt:
        await add_line(rt, visitor_grace_seconds=3, counsellor_grace_seconds=3)
        for name in ("anna", "bo", "cleo", "dag"):
            await add_counsellor(rt, name, capacity=1)
    async with processes(settings, tmp_path) as (a, b):
        # Who is where: A will die.
        anna = await open_staff(b, "anna", PASSWORD)  # talks with v1 (on A, comes back)
        bo = await open_staff(a, "bo", PASSWORD, available=False)  # with v2, both on A
        cleo = await open_staff(b, "cleo", PASSWORD, available=False)  # v3 on A never returns
        dag = await open_staff(a, "dag", PASSWORD, available=False)  # on A, never returns
        pairs: list[tuple[StaffClient, VisitorClient]] = []
        for counsellor, server in ((anna, a), (bo, a), (cleo, a), (dag, b)):
            await counsellor.available()
            visitor = await open_chat(server, counsellor)
            await visitor.expect("counsellor.joined")
            await counsellor.send({"type": "status", "status": "away"})
            await counsellor.expect("status", status="away")
            pairs.append((counsellor, visitor))
        (_, v1), (_, v2), (_, v3), (_, v4) = pairs

        sent: dict[str, list[str]] = {v1.chat_id: [], v2.chat_id: []}
        for round_ in range(3):
            for counsellor, visitor in pairs[:2]:
                cid = f"v-{round_}-{uuid.uuid4().hex[:6]}"
                await visitor.say(f"visitor {round_}", client_id=cid)
                sent[visitor.chat_id].append(cid)
                sid = f"s-{round_}-{uuid.uuid4().hex[:6]}"
                await counsellor.say(visitor.chat_id, f"counsellor {round_}", client_id=sid)
                sent[visitor.chat_id].append(sid)
        # Mid-conversation: messages on the wire, acknowledgements not yet read.
        unacked = {v1.chat_id: f"v-last-{uuid.uuid4().hex[:6]}"}
        await v1.send({"type": "message", "text": "in flight", "client_id": unacked[v1.chat_id]})
        a.signal(signal.SIGKILL)
        assert await a.wait_exit() == -signal.SIGKILL

        # The visitors of A come back on B with the last number they saw and resend what was
        # not acknowledged; bo (on A too) comes back on B.
        v1_frames = v1.received
        v1_back = await resume_visitor(b, v1, last_seen(v1_frames, v1.chat_id))
        again = await v1_back.say("in flight", client_id=unacked[v1.chat_id])
        sent[v1.chat_id].append(unacked[v1.chat_id])
        v2_back = await resume_visitor(b, v2, last_seen(v2.received, v2.chat_id))
        bo_back = await open_staff(b, "bo", PASSWORD, available=False)
        assert [c["chat_id"] for c in bo_back.hello["chats"]] == [v2.chat_id]
        last_bo = max(seqs(bo.received, v2.chat_id))
        await bo_back.send({"type": "sync", "chat_id": v2.chat_id, "last_seq": last_bo})
        await bo_back.expect("synced", chat_id=v2.chat_id)
        for visitor, counsellor in ((v1_back, anna), (v2_back, bo_back)):
            cid = f"after-{uuid.uuid4().hex[:6]}"
            await visitor.say("after the crash", client_id=cid)
            sent[visitor.chat_id].append(cid)
            await counsellor.expect("message", text="after the crash")
        await anna.expect("message", text="in flight")
        assert again["seq"] in seqs(anna.received, v1.chat_id)

        # Crash detection: A never ran its disconnect handlers, yet grace periods start.
        away = await cleo.expect("visitor.away", chat_id=v3.chat_id, timeout=SETTLE)
        assert away["grace_until"] > 0
        ended = await cleo.expect("chat.ended", chat_id=v3.chat_id, timeout=SETTLE)
        assert ended["reason"] == "visitor_left"
        left = await v4.expect("counsellor.left", timeout=SETTLE)
        assert left["reason"] == "counsellor_disconnected"
        await v4.expect("queue.position", position=1)

        # Nothing lost, nothing doubled: in the store and in what each client saw.
        for chat_id, expected in sent.items():
            stored = [cid or "" for _, cid in await stored_messages(settings, chat_id)]
            assert sorted(stored) == sorted(expected)
        for old, back in ((v1, v1_back), (v2, v2_back)):
            seen = seqs(old.received, old.chat_id) + seqs(back.received, old.chat_id)
            assert len(seen) == len(set(seen)), "a client got an entry twice"
        staff_seen = seqs(bo.received, v2.chat_id) + seqs(bo_back.received, v2.chat_id)
        assert len(staff_seen) == len(set(staff_seen))
        # Everything else bo saw (his own messages are acknowledged, not echoed): no gap.
        acked = {
            int(f["seq"]) for f in bo.received + bo_back.received if f.get("type") == "message.ack"
        }
        covered = set(staff_seen) | acked
        assert sorted(covered) == list(range(1, max(covered) + 1))


async def test_a_visitor_whose_process_is_killed_is_away_before_back(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    settings = scale_settings()
    async with seeding(settings) as rt:
        await add_line(rt)
        await add_counsellor(rt, "anna", alias="Anna")
    async with processes(settings, tmp_path) as (a, b):
        anna = await open_staff(b, "anna", PASSWORD)
        visitor = await open_chat(a, anna)
        chat_id = visitor.chat_id
        await visitor.expect("counsellor.joined")
        await visitor.say("before")
        await anna.expect("message", text="before")
        a.signal(signal.SIGKILL)
        assert await a.wait_exit() == -signal.SIGKILL

        # The visitor comes back on B at once, before anything noticed A is gone.
        back = await resume_visitor(b, visitor, last_seen(visitor.received, chat_id))
        await anna.expect("visitor.back", chat_id=chat_id)
        told = [
            f["type"]
            for f in anna.received
            if f.get("type") in ("visitor.away", "visitor.back") and f.get("chat_id") == chat_id
        ]
        assert told == ["visitor.away", "visitor.back"]
        await back.say("after")
        await anna.expect("message", text="after")


async def test_sigterm_drains_clients_to_the_other_process(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    settings = scale_settings()
    async with seeding(settings) as rt:
        await add_line(rt)
        await add_counsellor(rt, "anna")
    async with processes(settings, tmp_path) as (a, b):
        anna = await open_staff(a, "anna", PASSWORD)
        visitor = await open_chat(a, anna)
        chat_id = visitor.chat_id
        await visitor.say("one", client_id="one")
        await anna.expect("message", text="one")
        await anna.say(chat_id, "two")
        await visitor.expect("message", text="two")

        a.signal(signal.SIGTERM)
        # Both are told the server is restarting (1012): reconnect and resume.
        assert await closed_with(visitor) == 1012
        assert await closed_with(anna) == 1012
        # A clean exit (uvicorn ends by re-raising the SIGTERM it handled), with no error.
        assert await a.wait_exit() in (0, -signal.SIGTERM)
        assert '"level":"ERROR"' not in a.log.read_text()
        anna_b = await open_staff(b, "anna", PASSWORD, available=False)
        assert [c["chat_id"] for c in anna_b.hello["chats"]] == [chat_id]
        await anna_b.say(chat_id, "three")
        back = await resume_visitor(b, visitor, max(seqs(visitor.received, chat_id)))
        assert (await back.expect("message"))["text"] == "three"
        await back.say("four", client_id="four")
        await anna_b.expect("message", text="four")
        stored = await stored_messages(settings, chat_id)
        assert [cid for _, cid in stored if cid in ("one", "four")] == ["one", "four"]
        assert len(stored) == 4


async def test_redis_restarting_mid_run(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    redis = RedisServer(tmp_path)  # our own: the shared Redis is never restarted
    await redis.start()
    settings = scale_settings(redis_url=redis.url)
    async with seeding(settings) as rt:
        await add_line(rt, max_queue_length=50)
        await add_counsellor(rt, "anna", capacity=2)
        await add_counsellor(rt, "bo", capacity=2)
    try:
        async with processes(settings, tmp_path) as (a, b):
            anna = await open_staff(b, "anna", PASSWORD)
            visitor = await open_chat(a, anna)
            chat_id = visitor.chat_id
            await visitor.say("before", client_id="before")
            await anna.expect("message", text="before")
            last_anna = max(seqs(anna.received, chat_id))

            await redis.stop()
            # Clients are told at once to come back shortly (1013) ...
            assert await closed_with(visitor) == 1013
            assert await closed_with(anna) == 1013
            # ... and new connections are turned away the same way while Redis is gone.
            async with connect(f"{a.ws_url}/ws/visitor", compression=None) as ws:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), SETTLE)
                assert ws.close_code == 1013

            await redis.start()
            back = await _retry(
                lambda: resume_visitor(a, visitor, max(seqs(visitor.received, chat_id)))
            )
            anna_back = await _retry(lambda: open_staff(b, "anna", PASSWORD, available=False))
            assert [c["chat_id"] for c in anna_back.hello["chats"]] == [chat_id]
            await anna_back.send({"type": "sync", "chat_id": chat_id, "last_seq": last_anna})
            await anna_back.expect("synced", chat_id=chat_id)
            await back.say("after", client_id="after")
            await anna_back.expect("message", text="after")

            # Routing works again, and no chat is given twice or beyond capacity.
            consoles = [
                Console(anna_back, 2),
                Console(await open_staff(a, "bo", PASSWORD), 2),
            ]
            await anna_back.send({"type": "status", "status": "available"})
            for index in range(5):
                newcomer = await open_visitor((a, b)[index % 2])
                await newcomer.start()
            await until(lambda: sum(len(c.opened) for c in consoles) == 3, "3 more answered")
            await asyncio.sleep(1.0)
            opened = [chat for c in consoles for chat in c.opened]
            assert len(opened) == len(set(opened)) == 3
            assert chat_id not in opened
            assert consoles[0].most_open <= 1 and consoles[1].most_open <= 2
            for console in consoles:
                console.task.cancel()
    finally:
        await redis.stop()


async def test_redis_restarting_empty(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    """A Redis without persistence restarts in the middle of a chat: the chat is gone, and
    the visitor and the counsellor are told so; the counsellor stays available."""
    redis = RedisServer(tmp_path, appendonly=False)
    await redis.start()
    settings = scale_settings(redis_url=redis.url)
    async with seeding(settings) as rt:
        await add_line(rt)
        await add_counsellor(rt, "anna", alias="Anna", capacity=2)
    try:
        async with processes(settings, tmp_path) as (a, b):
            anna = await open_staff(b, "anna", PASSWORD)
            visitor = await open_chat(a, anna)
            chat_id = visitor.chat_id
            await visitor.say("before", client_id="before")
            await anna.expect("message", text="before")

            await redis.stop()
            assert await closed_with(visitor) == 1013
            assert await closed_with(anna) == 1013
            await redis.start()  # empty

            # Each comes back through the process that held them, as clients usually do.
            async def resume() -> tuple[VisitorClient, Frame]:
                back = await open_visitor(a)
                last = last_seen(visitor.received, chat_id)
                await back.send(
                    {"type": "resume", "chat_id": chat_id, "token": visitor.token, "last_seq": last}
                )
                return back, await back.expect(frozenset({"chat.resumed", "chat.ended", "error"}))

            back, answer = await _retry(resume)
            told = (answer["type"], answer.get("by"), answer.get("reason"))
            assert told == ("chat.ended", "system", "lost"), answer
            assert answer["chat_id"] == chat_id and "seq" not in answer
            anna_back = await _retry(
                lambda: open_staff(b, "anna", PASSWORD, cookie=anna.cookie, available=False)
            )
            hello = anna_back.hello
            assert hello["lost"] == [{"chat_id": chat_id, "line": "support"}]
            assert hello["chats"] == [] and hello["wrapups"] == []
            # She was available, and still is: a new chat is offered to her at once.
            assert hello["status"] == "available"
            await back.start()
            offer = await anna_back.expect("offer", chat_id=back.chat_id)
            await anna_back.accept(offer["chat_id"])
            await back.expect("counsellor.joined", name="Anna")
            await back.say("after", client_id="after")
            await anna_back.expect("message", text="after")
            # Through the other process too, while the notice lasts.
            other = await open_visitor(b)
            await other.send(
                {"type": "resume", "chat_id": chat_id, "token": visitor.token, "last_seq": 0}
            )
            assert (await other.expect("chat.ended"))["reason"] == "lost"
    finally:
        await redis.stop()


async def _retry(attempt: Callable[[], Any], timeout: float = SETTLE) -> Any:
    """What a client does while the service recovers: try again after a short pause."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await attempt()
        except (ConnectionClosed, AssertionError, OSError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_clock_skew_between_processes_is_tolerated(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    settings = scale_settings()
    async with seeding(settings) as rt:
        await add_line(rt, offer_timeout_seconds=3)
        await add_counsellor(rt, "anna")
        await add_counsellor(rt, "bo")
    # One process's clock is a minute behind, the other's a minute ahead.
    async with processes(settings, tmp_path, skews=(-60.0, 60.0)) as (a, b):
        # TOTP is checked against each process's own clock: codes as its clock would show.
        anna = await open_staff(a, "anna", PASSWORD, cookie=await skewed_sign_in(a, "anna", -60))
        bo = await open_staff(b, "bo", PASSWORD, cookie=await skewed_sign_in(b, "bo", 60))
        visitor = await open_visitor(a)
        real = asyncio.get_running_loop().time()
        await visitor.start()
        offers = {}
        for counsellor in (anna, bo):
            try:
                offers[counsellor.staff_id] = await counsellor.expect("offer", timeout=2)
            except AssertionError:
                continue
        first = next(iter(offers.values()))
        # Deadlines are on Redis's clock, whichever process wrote them.
        assert abs(first["expires_at"] - (time.time() + 3)) < 3
        # The offer is neither withdrawn at once (a clock ahead) nor kept forever (behind):
        # after its timeout it moves to the other counsellor.
        first_is_anna = anna.staff_id in offers
        holder, other = (anna, bo) if first_is_anna else (bo, anna)
        withdrawn = await holder.expect("offer.withdrawn", chat_id=visitor.chat_id)
        assert withdrawn["reason"] == "expired"
        assert asyncio.get_running_loop().time() - real >= 2.0
        offer = await other.expect("offer", chat_id=visitor.chat_id)
        await other.accept(offer["chat_id"])
        await visitor.say("hej")
        message = await other.expect("message", text="hej")
        assert abs(message["at"] - time.time()) < 3


async def test_a_second_tab_on_another_process_keeps_the_counsellor_connected(
    tmp_path: Path, scale_settings: Callable[..., Settings]
) -> None:
    settings = scale_settings()
    async with seeding(settings) as rt:
        await add_line(rt, counsellor_grace_seconds=1)
        await add_counsellor(rt, "anna")
    async with processes(settings, tmp_path) as (a, b):
        cookie = await sign_in(a, "anna", PASSWORD)
        first = await open_staff(a, "anna", PASSWORD, cookie=cookie)
        second = await open_staff(b, "anna", PASSWORD, cookie=cookie, available=False)
        visitor = await open_visitor(b)
        await visitor.start()
        offer = await first.expect("offer")
        await second.expect("offer", chat_id=offer["chat_id"])
        await first.accept(offer["chat_id"])
        await first.close()
        await second.say(visitor.chat_id, "still here")
        await visitor.expect("message", text="still here")
        await visitor.expect_none("counsellor.left", within=3)


async def skewed_sign_in(server: LyktaProcess, username: str, skew: float) -> str:
    """Sign in with the code an authenticator synced to this server's skewed clock shows."""
    code = pyotp.TOTP(TOTP_SECRETS[username]).at(time.time() + skew)
    body = {"username": username, "password": PASSWORD, "code": code}
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/api/staff/session", json=body)
    assert response.status_code == 200, response.text
    cookie = response.cookies.get("lykta_session")
    assert cookie
    return cookie
