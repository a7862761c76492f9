"""Lykta's WebSocket protocol reads whole text frames itself and writes frames at once
(app/web/websocket.py): what a client sees must be exactly what the WebSocket standard and
websockets itself give, whatever the frames and however TCP splits them.

A raw-socket client writes the frames byte for byte, so every split, fragment, control frame
and broken frame can be sent as a misbehaving or unlucky client would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
from collections.abc import AsyncIterator

import orjson
import pytest

from tests.support.server import RunningServer

Frame = tuple[int, bool, bytes]  # opcode, fin, payload

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, length: int | None = None
) -> bytes:
    """A client frame; `length` overrides the declared payload length (a lying header)."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def text(data: object, **kwargs: bool) -> bytes:
    return frame(TEXT, orjson.dumps(data), **kwargs)


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send_raw(self, data: bytes, *, split: int | None = None) -> None:
        """Write `data`, in pieces of `split` bytes each with a pause between (TCP splits)."""
        if split is None:
            self.writer.write(data)
            await self.writer.drain()
            return
        for index in range(0, len(data), split):
            self.writer.write(data[index : index + split])
            await self.writer.drain()
            await asyncio.sleep(0.002)

    async def read_frame(self) -> Frame:
        head = await asyncio.wait_for(self.reader.readexactly(2), 5)
        assert not head[1] & 0x80, "a server's frames are never masked"
        size = head[1] & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return head[0] & 0x0F, bool(head[0] & 0x80), await self.reader.readexactly(size)

    async def json(self) -> dict[str, object]:
        """The next JSON frame (text), skipping nothing: the order is part of what is tested."""
        opcode, fin, payload = await self.read_frame()
        assert (opcode, fin) == (TEXT, True)
        value = orjson.loads(payload)
        assert isinstance(value, dict)
        return value

    async def close_code(self) -> int:
        """Read until the server's close frame; its status code."""
        while True:
            opcode, _, payload = await self.read_frame()
            if opcode == CLOSE:
                code: int = struct.unpack("!H", payload[:2])[0]
                return code

    async def closed_by_server(self) -> bool:
        """Whether the server ends the TCP connection (after any frames still on the way)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), 5):
                pass
        except ConnectionResetError:
            pass
        return True


def upgrade_request(port: int) -> bytes:
    """A visitor socket's opening handshake, as a browser sends it."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        "GET /ws/visitor HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


@pytest.fixture
async def raw(server: RunningServer) -> AsyncIterator[RawClient]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request(server.port))
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert answer.startswith(b"HTTP/1.1 101")
    client = RawClient(reader, writer)
    assert (await client.json())["type"] == "hello"
    yield client
    writer.close()


PING_FRAME = {"type": "ping"}


async def test_frames_split_anyhow_and_joined_in_one_write_all_arrive_in_order(
    raw: RawClient,
) -> None:
    # Three frames in one write, then one frame a byte at a time, then one with a 16-bit
    # length split inside its header.
    await raw.send_raw(text(PING_FRAME) * 3)
    for _ in range(3):
        assert (await raw.json())["type"] == "pong"
    await raw.send_raw(text(PING_FRAME), split=1)
    assert (await raw.json())["type"] == "pong"
    padded = {"type": "ping", "pad": "x" * 300}
    await raw.send_raw(text(padded), split=3)
    assert (await raw.json())["type"] == "pong"
    # A frame that is not JSON is answered as before, in order with the rest.
    await raw.send_raw(frame(TEXT, b"not json") + text(PING_FRAME))
    assert (await raw.json())["code"] == "malformed_json"
    assert (await raw.json())["type"] == "pong"


async def test_fragments_and_control_frames_between_them_follow_the_standard(
    raw: RawClient,
) -> None:
    body = orjson.dumps(PING_FRAME)
    await raw.send_raw(
        frame(TEXT, body[:4], fin=False)
        + frame(PING, b"are you there")  # a control frame inside a fragmented message
        + frame(CONT, body[4:9], fin=False)
        + frame(CONT, body[9:])
        + text(PING_FRAME)
    )
    assert await raw.read_frame() == (PONG, True, b"are you there")
    assert (await raw.json())["type"] == "pong"  # the fragmented message
    assert (await raw.json())["type"] == "pong"
    # Binary frames reach the protocol, which refuses them with its own error.
    await raw.send_raw(frame(BINARY, b"\x00\x01"))
    assert (await raw.json())["code"] == "binary_not_supported"


async def test_a_new_message_inside_a_fragmented_one_is_a_protocol_error(raw: RawClient) -> None:
    await raw.send_raw(frame(TEXT, b'{"type":', fin=False) + text(PING_FRAME))
    assert await raw.close_code() == 1002


async def test_an_unmasked_frame_is_a_protocol_error(raw: RawClient) -> None:
    await raw.send_raw(text(PING_FRAME, masked=False))
    assert await raw.close_code() == 1002


async def test_a_frame_declared_too_big_is_refused_without_waiting_for_its_payload(
    raw: RawClient,
) -> None:
    # The header alone: the payload never comes, the server answers at once.
    await raw.send_raw(frame(TEXT, b"", length=1 << 40)[:14])
    assert await raw.close_code() == 1009


async def test_invalid_utf8_is_refused(raw: RawClient) -> None:
    await raw.send_raw(frame(TEXT, b'{"type":"ping","x":"\xff\xfe"}'))
    assert await raw.close_code() == 1007


async def test_the_close_handshake_is_answered_and_later_frames_are_ignored(
    raw: RawClient,
) -> None:
    await raw.send_raw(frame(CLOSE, struct.pack("!H", 1000) + b"bye") + text(PING_FRAME))
    assert await raw.close_code() == 1000
    assert await raw.closed_by_server()


async def test_a_frame_begun_before_the_handshake_answer_is_read_by_websockets(
    server: RunningServer,
) -> None:
    """A client that starts a frame right behind its request (not allowed, but possible):
    websockets holds its first bytes, so websockets reads everything on that connection, and
    treats it as it would without Lykta's reading (the frame began before the connection was
    open, and websockets fails the connection): nothing on it is ever read as a frame."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    early = text(PING_FRAME)
    writer.write(upgrade_request(server.port) + early[:5])
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 101")
    client = RawClient(reader, writer)
    assert (await client.json())["type"] == "hello"
    with contextlib.suppress(ConnectionError):
        await client.send_raw(early[5:] + text(PING_FRAME), split=3)
    with contextlib.suppress(ConnectionError, TimeoutError):
        assert await asyncio.wait_for(reader.read(1), 2) == b""
    writer.close()
