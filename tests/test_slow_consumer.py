"""A client that stops reading is dropped and told to reconnect; nobody else is held up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ServerFactory
from tests.support.clients import Frame, VisitorClient, open_chat, open_staff, open_visitor
from tests.support.seed import PASSWORD, add_counsellor, add_line

# The chat core's behaviour, on both brokers (issue 6).
pytestmark = pytest.mark.both_brokers


async def stalled_visitor(ws_url: str) -> VisitorClient:
    """A visitor whose device stops reading: a tiny receive buffer and no reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    host, port = ws_url.removeprefix("ws://").split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    ws = await connect(f"{ws_url}/ws/visitor", sock=sock, compression=None, max_queue=1)
    client = VisitorClient(ws)
    await client.expect("hello")
    return client


async def test_a_slow_consumer_is_dropped_and_resumes_without_loss(lykta: ServerFactory) -> None:
    async with lykta(
        send_queue_size=8, staff_frame_rate=10_000.0, staff_frame_burst=10_000
    ) as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna", capacity=2)
        anna = await open_staff(server, "anna", PASSWORD)
        slow = await stalled_visitor(server.ws_url)
        await slow.start()
        await anna.accept_offer()
        other = await open_chat(server, anna)
        await other.expect("counsellor.joined")

        # The counsellor keeps writing long messages to a visitor who reads nothing.
        texts: list[str] = []
        dropped = False
        for index in range(3000):
            text = f"{index:05d} " + "x" * 3900
            await anna.send({"type": "message", "chat_id": slow.chat_id, "text": text})
            texts.append(text)
            try:
                await anna.expect("visitor.away", chat_id=slow.chat_id, timeout=0.001)
            except AssertionError:
                continue
            dropped = True
            break
        assert dropped, "the stalled visitor was never dropped"
        # Meanwhile the other visitor is served as usual.
        await anna.say(other.chat_id, "you are not held up")
        await other.expect("message", text="you are not held up")

        # The stalled client learns why it was closed: too far behind, reconnect.
        drained: list[Frame] = []
        with contextlib.suppress(ConnectionClosed):
            while True:
                drained.append(json.loads(await asyncio.wait_for(slow.ws.recv(), 10)))
        assert slow.ws.close_code == 4008
        frames = slow.received + drained
        seen = [f for f in frames if f.get("type") == "message"]
        back = await open_visitor(server)
        last = max((f["seq"] for f in frames if "seq" in f), default=0)
        await back.send(
            {"type": "resume", "chat_id": slow.chat_id, "token": slow.token, "last_seq": last}
        )
        await back.expect("chat.resumed")
        rest = [(await back.expect("message"))["text"] for _ in range(len(texts) - len(seen))]
        assert [f["text"] for f in seen] + rest == texts
