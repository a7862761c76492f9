"""Browser-facing hardening: allowed origins, security headers on every response, no cookies
for visitors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.chats.crypto import generate_kek
from app.settings import Settings
from app.web.headers import SecurityHeaders, security_headers
from tests.conftest import ServerFactory
from tests.support.clients import open_staff, open_visitor
from tests.support.routes import http_routes
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer

PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "secret_key": "s" * 40,
    "keks": generate_kek("k1"),
    "public_url": "https://lykta.example",
    "embed_origins": "https://ngo.example, https://www.ngo.example",
}
SettingsFactory = Callable[..., Settings]


def check_headers(headers: httpx.Headers, path: str, *, https: bool = True) -> None:
    policy = headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, path
    if not path.startswith(("/widget/", "/chat/")):
        assert "frame-ancestors 'none'" in policy, path
    assert "default-src 'none'" in policy, path
    assert headers["referrer-policy"] == "no-referrer", path
    assert headers["x-content-type-options"] == "nosniff", path
    if not path.startswith(("/widget/", "/chat/")):
        assert headers["x-frame-options"] == "DENY", path
    assert headers["cache-control"] == "no-store", path
    assert headers["cross-origin-opener-policy"] == "same-origin", path
    if https:
        assert headers["strict-transport-security"].startswith("max-age="), path
    else:
        assert "strict-transport-security" not in headers, path


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "support", path)


# Requests per minute in the header test: enough for every route, then the flood.
FLOOD = 150


async def test_security_headers_on_every_route_and_every_error(lykta: ServerFactory) -> None:
    async with lykta(http_rate_per_minute=FLOOD, max_body_bytes=2048, **PRODUCTION) as server:
        await add_line(server.runtime)
        routes = http_routes(server.app.routes)
        assert {concrete(r.path) for r in routes} >= {
            "/api/lines",
            "/api/lines/support",
            "/api/visitor/exit",
            "/api/staff/session",
            "/healthz",
        }
        async with httpx.AsyncClient(base_url=server.url) as http:
            seen = 0
            for route in routes:
                for method in sorted(route.methods or ()):
                    response = await http.request(method, concrete(route.path), json={})
                    check_headers(response.headers, route.path)
                    seen += 1
            assert seen >= len(routes)
            errors = [
                await http.get("/nowhere"),  # 404
                await http.get("/widget/nothing-here-yet"),  # 404 under an embeddable path
                await http.put("/api/lines"),  # 405
                await http.post("/api/staff/session", content=b"{"),  # 422
                await http.post("/api/visitor/exit", content=b"x" * 5000),  # 413
                await http.get("/api/docs"),  # no docs in production
            ]
            assert [r.status_code for r in errors] == [404, 404, 405, 422, 413, 404]
            for response in errors:
                check_headers(response.headers, response.url.path)
            flood = [await http.get("/healthz") for _ in range(FLOOD)]
            assert flood[-1].status_code == 429
            check_headers(flood[-1].headers, "429")


async def test_no_hsts_without_tls(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        check_headers((await http.get("/api/lines")).headers, "/api/lines", https=False)


def test_visitor_pages_may_be_framed_by_the_embedding_sites_only(
    settings_for: SettingsFactory,
) -> None:
    settings = settings_for(**PRODUCTION)
    widget = security_headers(settings, "/widget/chat", "text/html; charset=utf-8")
    policy = widget["Content-Security-Policy"]
    ancestors = policy.split("frame-ancestors ")[1].split(";")[0].split()
    assert sorted(ancestors) == [
        "https://lykta.example",
        "https://ngo.example",
        "https://www.ngo.example",
    ]
    assert "script-src 'self';" in policy and "connect-src 'self' wss://lykta.example" in policy
    assert "X-Frame-Options" not in widget
    chat_page = security_headers(settings, "/chat/support", "text/html")
    assert chat_page["Content-Security-Policy"] == policy
    # Any other page (a staff console, say) may not be framed at all.
    console = security_headers(settings, "/console", "text/html")
    assert "frame-ancestors 'none'" in console["Content-Security-Policy"]
    assert console["X-Frame-Options"] == "DENY"


async def test_a_crash_answers_500_with_the_headers_and_no_details(
    settings_for: SettingsFactory,
) -> None:
    async def crashing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("a secret the visitor typed")

    app = SecurityHeaders(crashing, settings_for(**PRODUCTION))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        response = await http.get("/api/lines")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    check_headers(response.headers, "500")


async def test_the_visitor_socket_checks_origin(lykta: ServerFactory) -> None:
    async with lykta(embed_origins="https://ngo.example") as server:
        await add_line(server.runtime)
        await add_counsellor(server.runtime, "anna")
        await open_staff(server, "anna", PASSWORD)
        allowed = [
            None,  # no Origin: not a browser (`lykta client visitor`, an app)
            "http://127.0.0.1:8000",  # Lykta's own pages (public_url)
            "https://ngo.example",
            "HTTPS://NGO.example:443",
        ]
        for origin in allowed:
            headers = {"Origin": origin} if origin else None
            visitor = await open_visitor(server, headers)
            await visitor.start()
            await visitor.close()
        for origin in ("https://evil.example", "null", "https://ngo.example.evil", "nonsense"):
            async with connect(
                f"{server.ws_url}/ws/visitor", additional_headers={"Origin": origin}
            ) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
        assert len(await server.runtime.broker.line_chat_ids("support")) == len(allowed)


async def test_visitors_never_get_a_cookie(server: RunningServer) -> None:
    await add_line(server.runtime)
    await add_counsellor(server.runtime, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_visitor(server)
    assert visitor.ws.response is not None
    assert "set-cookie" not in {k.lower() for k in visitor.ws.response.headers}
    await visitor.start()
    await anna.accept_offer()
    await visitor.say("hello")
    async with httpx.AsyncClient(base_url=server.url) as http:
        responses = [
            await http.get("/api/lines"),
            await http.get("/api/lines/support"),
            await http.get("/healthz"),
            await http.post(
                "/api/visitor/exit", json={"chat_id": visitor.chat_id, "token": visitor.token}
            ),
        ]
        assert [r.status_code for r in responses] == [200, 200, 200, 200]
        assert all("set-cookie" not in r.headers for r in responses)
        assert not http.cookies


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"embed_origins": "https://ngo.example/chat"}, "no path"),
        ({"embed_origins": "ftp://ngo.example"}, "not an origin"),
        ({"embed_origins": "ngo.example"}, "not an origin"),
        ({**PRODUCTION, "embed_origins": "http://ngo.example"}, "https"),
        ({"public_url": "lykta.example"}, "LYKTA_PUBLIC_URL"),
    ],
)
def test_bad_origin_settings_are_refused(
    settings_for: SettingsFactory, overrides: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        settings_for(**overrides)


def test_an_onion_site_may_embed_over_http_in_production(settings_for: SettingsFactory) -> None:
    onion = "http://" + "a" * 56 + ".onion"
    settings = settings_for(**{**PRODUCTION, "embed_origins": onion})
    assert onion in settings.visitor_origins
