"""Security headers on every HTTP response: pages, API answers and errors alike.

Pages get a Content Security Policy without inline or third-party scripts; JSON gets one that
allows nothing at all. Only the visitor chat pages (`/chat/...`, `/widget/...`) may be framed,
and only by Lykta itself and the embedding sites of this deployment (LYKTA_EMBED_ORIGINS).
Nothing is cached, no page leaks a referrer, and visitor paths never set a cookie.
"""

from __future__ import annotations

import logging

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit import jsonutil
from app.settings import Settings
from app.web.origins import own_origin

logger = logging.getLogger(__name__)

# Pages a visitor may see inside an NGO's site.
EMBEDDABLE_PREFIXES = ("/chat/", "/widget/")
# Everything a visitor touches: none of it may ever set a cookie.
VISITOR_PREFIXES = ("/ws/visitor", "/api/visitor/", "/api/lines", "/chat/", "/widget/", "/healthz")
# FastAPI's interactive docs load scripts from a CDN; they exist only in development.
DEV_DOCS = ("/api/docs", "/docs/oauth2-redirect")

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DEV_DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "frame-ancestors 'none'"
)


# The console frames Lykta's own chat page to play a visitor on a practice line; nothing else
# frames anything.
CONSOLE_PREFIX = "/console"


def page_policy(settings: Settings, frame_ancestors: str, *, frames: bool = False) -> str:
    origin = own_origin(settings.public_url)
    socket_origin = origin.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"font-src 'self'; connect-src 'self' {socket_origin}; manifest-src 'self'; "
        + ("frame-src 'self'; " if frames else "")
        + f"base-uri 'none'; form-action 'self'; frame-ancestors {frame_ancestors}"
    )


def security_headers(settings: Settings, path: str, content_type: str) -> dict[str, str]:
    """The headers every response to `path` gets (computed, not configured per route)."""
    embeddable = path.startswith(EMBEDDABLE_PREFIXES)
    headers = {
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        "X-DNS-Prefetch-Control": "off",
    }
    if settings.is_development and path in DEV_DOCS:
        headers["Content-Security-Policy"] = DEV_DOCS_POLICY
    elif content_type.startswith("text/html"):
        ancestors = " ".join(sorted(settings.visitor_origins)) if embeddable else "'none'"
        headers["Content-Security-Policy"] = page_policy(
            settings, ancestors, frames=path.startswith(CONSOLE_PREFIX)
        )
    else:
        headers["Content-Security-Policy"] = API_POLICY
    if not embeddable:
        headers["X-Frame-Options"] = "DENY"
        headers["Cross-Origin-Resource-Policy"] = "same-origin"
    if settings.is_https:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    return headers


class SecurityHeaders:
    """Adds `security_headers` to every response; answers a crash with a plain 500 that has
    them too (and no details)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        started = False

        async def secured_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in security_headers(
                    self.settings, path, headers.get("content-type", "")
                ).items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
                if path.startswith(VISITOR_PREFIXES):
                    del headers["set-cookie"]
            await send(message)

        try:
            await self.app(scope, receive, secured_send)
        except Exception:
            if started or scope["type"] != "http":
                raise
            logger.exception("request failed")
            body = jsonutil.dumpb({"detail": "internal error"})
            await secured_send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await secured_send({"type": "http.response.body", "body": body})
