"""Per-client limits on HTTP requests and new WebSocket connections, and a body size cap.

It is the first thing every request meets: the client's address becomes a keyed hash and is
removed from the request before anything else runs (see ratelimit.take_client).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.abuse.ratelimit import Limit
from app.broker.base import BrokerUnavailableError
from app.kit import jsonutil

if TYPE_CHECKING:
    from app.runtime import Runtime

logger = logging.getLogger(__name__)

STAFF_SOCKET = "/ws/staff"
# The fixed files of the console and the widget: a page load fetches dozens of them, and many
# people may share one address (an NGO's office, a carrier's NAT), so they are counted apart
# from the API's requests, under a limit of their own.
FILE_PREFIXES = ("/console/static/", "/widget/", "/chat/")
FILE_PAGES = frozenset({"/console", "/enrol"})


class RequestLimits:
    """Refuse floods with 429 (HTTP) or close 1013 (WebSocket) and bodies over the cap with 413."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        runtime: Runtime = scope["app"].state.runtime
        settings = runtime.settings
        limiter = runtime.rate_limiter
        bucket, limit = _bucket(
            scope,
            settings.http_rate_per_minute,
            settings.sign_in_rate_per_minute,
            settings.connection_rate_per_minute,
            settings.file_rate_per_minute,
        )
        try:
            key = await limiter.take_client(scope)
            allowed = await limiter.allow(bucket, key, limit)
        except BrokerUnavailableError:
            # The hashing key and the counters live in the broker; for the seconds it is away
            # (or loading), limits are off (WebSocket endpoints turn clients away meanwhile).
            allowed = True
        if not allowed:
            # Counted per interval, not a line each (app/kit/logging.py): a flood sets the pace.
            logger.warning("client over its limit; refused", extra={"code": f"{bucket}_limited"})
            if scope["type"] == "websocket":
                await _refuse_websocket(receive, send)
            else:
                await _json(
                    send, 429, "too many requests; wait a minute", [(b"retry-after", b"60")]
                )
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > settings.max_body_bytes:
            await _json(send, 413, "the request body is too large")
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, _capped(receive, settings.max_body_bytes), tracking_send)
        except _TooLargeError:
            if not started:
                await _json(send, 413, "the request body is too large")


def _bucket(
    scope: Scope, http_rate: int, sign_in_rate: int, connection_rate: int, file_rate: int
) -> tuple[str, Limit]:
    if scope["type"] == "websocket":
        # Counsellors and visitors are counted apart: a flood of visitor connections from one
        # address (a shelter's Wi-Fi, a carrier's NAT, an attacker) must not lock out the
        # counsellors who share it.
        bucket = "staff_ws" if scope["path"] == STAFF_SOCKET else "ws"
        return bucket, Limit(connection_rate, 60)
    if scope["path"] == "/api/staff/session" and scope["method"] == "POST":
        return "signin", Limit(sign_in_rate, 60)
    path = scope["path"]
    if scope["method"] in ("GET", "HEAD") and (
        path in FILE_PAGES or path.startswith(FILE_PREFIXES)
    ):
        return "files", Limit(file_rate, 60)
    return "http", Limit(http_rate, 60)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _TooLargeError(Exception):
    pass


def _capped(receive: Receive, cap: int) -> Receive:
    """Count streamed bytes too: a missing or false Content-Length does not get past the cap."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                raise _TooLargeError
        return message

    return wrapped


async def _json(
    send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = jsonutil.dumpb({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(receive: Receive, send: Send) -> None:
    """Answer the handshake with 429 (the WebSocket denial response) instead of upgrading."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    body = jsonutil.dumpb({"detail": "too many connections; wait a minute"})
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 429,
            "headers": [(b"content-type", b"application/json"), (b"retry-after", b"60")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})
