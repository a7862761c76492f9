"""WebSocket test clients that read frames until the one a test waits for."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import pyotp
from websockets.asyncio.client import ClientConnection, connect

from tests.support.seed import RECOVERY_CODES, TOTP_SECRETS

Frame = dict[str, Any]


class Endpoint(Protocol):
    """A running Lykta: in the test's event loop or a separate process."""

    @property
    def url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...


# How long a test waits for a frame before failing (a bound on failure, not a timing claim).
WAIT = 10.0


class FrameTimeoutError(AssertionError):
    pass


class WsClient:
    """A test client reads only the frames a test waits for. It is opened with `max_queue=None`
    so that it never stops reading from the socket: frames it has not read yet wait in its
    memory, and it still sees the server close the connection (a client that read nothing
    is the business of tests/test_slow_consumer.py)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[Frame] = []
        self._unread: list[Frame] = []

    async def send(self, frame: Frame | str | bytes) -> None:
        if isinstance(frame, dict):
            await self.ws.send(json.dumps(frame))
        else:
            await self.ws.send(frame)

    async def _next(self, timeout: float) -> Frame:
        if self._unread:
            return self._unread.pop(0)
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame: Frame = json.loads(raw)
        self.received.append(frame)
        return frame

    async def expect(
        self,
        kind: str | frozenset[str],
        *,
        timeout: float = WAIT,
        where: Callable[[Frame], bool] | None = None,
        **fields: Any,
    ) -> Frame:
        """The next frame of this type, or of any of these types (and fields); frames read on
        the way stay readable."""
        skipped: list[Frame] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError
                frame = await self._next(remaining)
                if (
                    (
                        frame.get("type") == kind
                        if isinstance(kind, str)
                        else frame.get("type") in kind
                    )
                    and all(frame.get(k) == v for k, v in fields.items())
                    and (where is None or where(frame))
                ):
                    return frame
                skipped.append(frame)
        except TimeoutError:
            raise FrameTimeoutError(
                f"no {kind!r} frame {fields or ''} within {timeout}s; "
                f"got {[f.get('type') for f in skipped]}"
            ) from None
        finally:
            self._unread[:0] = skipped

    async def expect_none(self, kind: str, *, within: float, **fields: Any) -> None:
        """Fail if a frame of this type arrives within the window."""
        try:
            frame = await self.expect(kind, timeout=within, **fields)
        except FrameTimeoutError:
            return
        raise AssertionError(f"unexpected {kind!r} frame: {frame}")

    def seen(self, kind: str) -> list[Frame]:
        return [f for f in self.received if f.get("type") == kind]

    def drain(self) -> None:
        self._unread.clear()

    async def close(self) -> None:
        await self.ws.close()


class VisitorClient(WsClient):
    chat_id: str
    token: str

    async def start(self, line: str = "support", language: str = "sv", **extra: Any) -> Frame:
        await self.send({"type": "start", "line": line, "language": language, **extra})
        started = await self.expect("chat.started")
        self.chat_id = started["chat_id"]
        self.token = started["token"]
        return started

    async def say(self, text: str, client_id: str | None = None) -> Frame:
        client_id = client_id or uuid.uuid4().hex
        await self.send({"type": "message", "text": text, "client_id": client_id})
        return await self.expect("message.ack", client_id=client_id)


class StaffClient(WsClient):
    staff_id: str
    hello: Frame
    # The session it connected with: a console reconnecting (or a second tab) uses it again,
    # while signing in anew starts a new session, which starts away.
    cookie: str

    async def available(self) -> None:
        await self.send({"type": "status", "status": "available"})
        await self.expect("status", status="available")

    async def accept(self, chat_id: str) -> Frame:
        await self.send({"type": "accept", "chat_id": chat_id})
        return await self.expect("chat.opened", chat_id=chat_id)

    async def accept_offer(self) -> Frame:
        """Wait for the next offer and accept it: the `chat.opened` frame."""
        offer = await self.expect("offer")
        return await self.accept(offer["chat_id"])

    async def say(self, chat_id: str, text: str, client_id: str | None = None) -> Frame:
        client_id = client_id or uuid.uuid4().hex
        await self.send(
            {"type": "message", "chat_id": chat_id, "text": text, "client_id": client_id}
        )
        return await self.expect("message.ack", client_id=client_id)


async def open_visitor(
    server: Endpoint, headers: dict[str, str] | None = None, query: str = ""
) -> VisitorClient:
    """A visitor connection; `headers` as a browser or a proxy in front of Lykta would add."""
    ws = await connect(
        f"{server.ws_url}/ws/visitor{query}",
        compression=None,
        max_size=2**22,
        additional_headers=headers,
        max_queue=None,
    )
    client = VisitorClient(ws)
    await client.expect("hello")
    return client


async def open_chat(server: Endpoint, counsellor: StaffClient) -> VisitorClient:
    """A visitor whose new chat `counsellor` accepts from the offer: how most chat tests
    begin (the visitor's `counsellor.joined` is still to be read)."""
    visitor = await open_visitor(server)
    await visitor.start()
    await counsellor.accept_offer()
    return visitor


# Per TOTP secret: the last time step whose code a test used (each code works once).
_USED_STEPS: dict[str, int] = {}


async def fresh_code(username: str) -> str:
    """A TOTP code not used before, as the person's authenticator app shows it.

    The server accepts the codes of the step before, of now and of the next step. This takes
    now's or the next one (the step before could lapse on its way to the server); when a test
    has used both, it takes one of the account's recovery codes, as a person in a hurry
    would, and only when those are gone waits for the next step.
    """
    secret = TOTP_SECRETS[username]
    totp = pyotp.TOTP(secret)
    while True:
        now = time.time()
        step = int(now // 30)
        for candidate in (step, step + 1):
            if candidate > _USED_STEPS.get(secret, -1):
                _USED_STEPS[secret] = candidate
                return totp.at(candidate * 30)
        if RECOVERY_CODES.get(username):
            return RECOVERY_CODES[username].pop()
        await asyncio.sleep((step + 1) * 30 - now + 0.05)


def code_used_now(secret: str) -> None:
    """A test used this moment's code itself (e.g. to enrol): fresh_code moves past it."""
    _USED_STEPS[secret] = max(_USED_STEPS.get(secret, -1), int(time.time() // 30))


@dataclass(frozen=True, slots=True)
class SignedIn:
    cookie: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    @property
    def cookies(self) -> dict[str, str]:
        return {"lykta_session": self.cookie}


async def sign_in_session(server: Endpoint, username: str, password: str) -> SignedIn:
    body: dict[str, str] = {"username": username, "password": password}
    if username in TOTP_SECRETS:
        body["code"] = await fresh_code(username)
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/api/staff/session", json=body)
        assert response.status_code == 200, response.text
        cookie = response.cookies.get("lykta_session")
        assert cookie
        return SignedIn(cookie, response.json()["csrf_token"])


async def sign_in(server: Endpoint, username: str, password: str) -> str:
    return (await sign_in_session(server, username, password)).cookie


async def open_staff(
    server: Endpoint,
    username: str,
    password: str,
    *,
    available: bool = True,
    cookie: str | None = None,
) -> StaffClient:
    cookie = cookie or await sign_in(server, username, password)
    ws = await connect(
        f"{server.ws_url}/ws/staff",
        additional_headers={"Cookie": f"lykta_session={cookie}"},
        compression=None,
        max_queue=None,
    )
    client = StaffClient(ws)
    client.cookie = cookie
    client.hello = await client.expect("hello")
    client.staff_id = client.hello["staff"]["id"]
    if available:
        await client.available()
    return client


async def api(
    server: Endpoint,
    who: SignedIn | None,
    method: str,
    path: str,
    *,
    json: Any = None,
    csrf: bool = True,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> httpx.Response:
    """One HTTP request as a signed-in staff member (with their CSRF token) or anonymously."""
    all_headers = dict(who.headers) if who is not None and csrf else {}
    all_headers.update(headers or {})
    async with httpx.AsyncClient(
        base_url=server.url, cookies=who.cookies if who is not None else None
    ) as http:
        return await http.request(method, path, json=json, headers=all_headers, params=params)


async def connect_staff_socket(server: Endpoint, who: SignedIn) -> ClientConnection:
    return await connect(
        f"{server.ws_url}/ws/staff",
        additional_headers={"Cookie": f"lykta_session={who.cookie}"},
        compression=None,
        max_queue=None,
    )
