"""Serving the widget: the loader, assets and catalogues under /widget/, the chat page at
/chat/<line> and the safety page. Headers (no cookies, no-store, framing), fallbacks with a
notice, bad input, and the size budget."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import zlib
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
from sqlalchemy import select

from app.chats.frames import VisitorFeedback
from app.chats.protocol import ErrorCode, ProtocolError, VisitorConnection
from app.kit.db import Base, unit_of_work
from app.widget import compressed, pages
from tests.conftest import ServerFactory
from tests.support.clients import open_staff, open_visitor
from tests.support.processes import RedisServer
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer

EMBEDDER = "https://ngo.example"
# The budgets, as sent gzip-compressed (the chat page: itself and everything it loads).
LOADER_BUDGET = 5 * 1024
CHAT_PAGE_BUDGET = 20 * 1024


class Page(HTMLParser):
    """What a visitor's browser would make of a page: its title, texts, attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.title = ""
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._in_title = False
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        self.attrs.setdefault(tag, found)
        if found.get("id"):
            self.attrs["#" + str(found["id"])] = found
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.fixture
async def widget_server(lykta: ServerFactory) -> AsyncIterator[RunningServer]:
    async with lykta(embed_origins=EMBEDDER) as server:
        await add_line(server.runtime, "support", languages=["sv", "en"])
        await add_line(
            server.runtime,
            "youth",
            languages=["en", "ar", "fr", "xx"],
            closed_message={"en": "Closed."},
            alternatives={"ar": "112"},
        )
        yield server


async def get(server: RunningServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.get(path)


def visitor_headers(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "x-frame-options" not in response.headers  # embeddable


# The chat page ----------------------------------------------------------------------------


async def test_the_chat_page_is_neutral_embeddable_by_the_ngo_only_and_keeps_nothing(
    widget_server: RunningServer,
) -> None:
    response = await get(widget_server, "/chat/support?lang=en&embed=1")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    visitor_headers(response)
    policy = response.headers["content-security-policy"]
    ancestors = policy.split("frame-ancestors ")[1].split(";")[0].split()
    assert sorted(ancestors) == sorted([EMBEDDER, widget_server.settings.public_url])
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    page = Page(response.text)
    assert page.title == "Chat"  # neither the line's name nor what it is about
    assert page.attrs["html"] == {"lang": "en", "dir": "ltr"}
    assert page.attrs["link"]["href"] == "/widget/icon.svg"
    body = page.attrs["body"]
    assert body["data-line"] == "support" and body["data-embed"] == "1"
    assert page.attrs["#text"]["autocomplete"] == "off"
    assert page.attrs["#composer"]["autocomplete"] == "off"
    # Nothing from another origin, no inline script or style.
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not re.match(r"^(https?:)?//", value), (tag, value)
        assert "style" not in attrs, tag
        if tag == "script":
            # The one inline block is data (the catalogue and the line), never run as script.
            assert attrs.get("src") or attrs == {"type": "application/json", "id": "boot"}
    assert "<style" not in response.text
    # Screen readers hear new messages, queue changes and the connection's state.
    assert page.attrs["#queue"]["role"] == "status"
    assert page.attrs["#connection"]["role"] == "status"
    assert any(a.get("role") == "log" for _, a in page.tags)
    assert page.tags[page.tags.index(("body", body)) + 1][1]["id"] == "skip"
    assert page.attrs["#notice"] is not None
    assert "Quick exit" in page.all_text and "Shift" in page.all_text


async def test_each_language_of_the_line_and_right_to_left(widget_server: RunningServer) -> None:
    swedish = Page((await get(widget_server, "/chat/support?lang=sv")).text)
    assert swedish.title == "Chatt" and "Lämna snabbt" in swedish.all_text
    assert swedish.attrs["body"]["data-languages"] == "sv en"
    arabic = Page((await get(widget_server, "/chat/youth?lang=ar")).text)
    assert arabic.attrs["html"] == {"lang": "ar", "dir": "rtl"}
    assert "خروج سريع" in arabic.all_text
    # "xx" is one of the line's languages but has no catalogue: not offered by the widget.
    assert arabic.attrs["body"]["data-languages"] == "en ar fr"


@pytest.mark.parametrize(
    ("path", "notice"),
    [
        ("/chat/support?lang=de", "Det språket finns inte. Chatten visas på svenska."),
        ("/chat/support?lang=fr", "Det språket finns inte"),
        ("/chat/youth?lang=sv", "That language is not available. The chat is shown in English."),
        ("/chat/nothing-like-it", "Den chatten finns inte. Du är i ”Support” i stället."),
        ("/chat/nothing?lang=en", "That chat does not exist. You are in “Support” instead."),
    ],
)
async def test_unknown_lines_and_languages_fall_back_with_a_visible_notice(
    widget_server: RunningServer, path: str, notice: str
) -> None:
    response = await get(widget_server, path)
    assert response.status_code == 200
    visitor_headers(response)
    page = Page(response.text)
    assert page.attrs["#notice"]["role"] == "status"
    assert notice in page.all_text


async def test_no_line_at_all_says_so(server: RunningServer) -> None:
    page = Page((await get(server, "/chat/support")).text)
    assert "There is no chat here." in page.all_text
    assert page.attrs["body"]["data-line"] == ""


@pytest.mark.parametrize(
    "query",
    [
        "lang=%3Cscript%3Ealert(1)%3C/script%3E",
        "lang=" + "x" * 5000,
        "colour=red%22%20onload=%22alert(1)",
        "colour=%23abcdefff",
        "exit=javascript:alert(1)",
        "exit=data:text/html,hi",
        "exit=%20https://evil.example/",
        "exit=https://" + "a" * 3000 + ".example/",
        "embed=%3Cx%3E",
        "lang=sv&lang=en&lang=ar",
    ],
)
async def test_bad_query_values_are_ignored_never_echoed(
    widget_server: RunningServer, query: str
) -> None:
    response = await get(widget_server, f"/chat/support?{query}")
    assert response.status_code == 200
    visitor_headers(response)
    assert "<script>alert" not in response.text and "onload=" not in response.text
    body = Page(response.text).attrs["body"]
    assert body["data-colour"] == ""
    assert body["data-exit-url"] == "https://www.google.com/"
    assert body["data-embed"] == "0"
    assert body["data-lang"] in ("sv", "en", "ar")


async def test_good_query_values_reach_the_page(widget_server: RunningServer) -> None:
    page = Page(
        (
            await get(
                widget_server,
                "/chat/support?lang=en&colour=%235B2A86&exit=https://weather.example/today",
            )
        ).text
    )
    body = page.attrs["body"]
    assert body["data-colour"] == "#5b2a86"
    assert body["data-exit-url"] == "https://weather.example/today"


async def test_the_full_page_exit_destination_is_a_setting(lykta: ServerFactory) -> None:
    async with lykta(widget_exit_url="https://news.example/") as server:
        await add_line(server.runtime)
        page = Page((await get(server, "/chat/support")).text)
        assert page.attrs["body"]["data-exit-url"] == "https://news.example/"


# The safety page --------------------------------------------------------------------------


@pytest.mark.parametrize("language", sorted(pages.catalogues()))
async def test_the_safety_page_in_each_language(
    widget_server: RunningServer, language: str
) -> None:
    response = await get(widget_server, f"/widget/safety?lang={language}")
    assert response.status_code == 200
    visitor_headers(response)
    page = Page(response.text)
    for key in ("safety_heading", "safety_exit", "safety_cannot", "safety_private"):
        assert pages.text(language, key) in page.all_text
    assert page.attrs["html"]["dir"] == pages.text(language, "dir")
    assert page.title == pages.text(language, "page_title")


async def test_the_safety_page_falls_back_and_refuses_bad_exits(
    widget_server: RunningServer,
) -> None:
    page = Page((await get(widget_server, "/widget/safety?lang=zz&exit=javascript:x")).text)
    assert "Det språket finns inte" in page.all_text
    assert page.attrs["body"]["data-exit-url"] == "https://www.google.com/"


# Assets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/widget/embed.js", "text/javascript"),
        ("/widget/chat.js", "text/javascript"),
        ("/widget/exit.js", "text/javascript"),
        ("/widget/chat.css", "text/css"),
        ("/widget/icon.svg", "image/svg+xml"),
        ("/widget/i18n/sv.json", "application/json"),
        ("/widget/i18n/ar.json", "application/json"),
    ],
)
async def test_assets_are_served_with_their_type_and_no_cookie(
    widget_server: RunningServer, path: str, kind: str
) -> None:
    response = await get(widget_server, path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(kind)
    visitor_headers(response)
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/widget/chat.html",  # templates are not served raw
        "/widget/safety.html",
        "/widget/../pyproject.toml",
        "/widget/..%2F..%2Fpyproject.toml",
        "/widget/i18n/../../app/settings.py",
        "/widget/%2e%2e/app/settings.py",
        "/widget/i18n/de.json",
        "/widget/" + "a" * 3000,
        "/widget/",
        "/widget/embed.js%00.png",
    ],
)
async def test_nothing_else_is_served_under_widget(widget_server: RunningServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=widget_server.url) as http:
        response = await http.get(httpx.URL(widget_server.url + path))
    assert response.status_code == 404
    assert "set-cookie" not in response.headers
    assert b"lykta" not in response.content.lower()


async def test_a_flood_of_page_loads_is_refused(lykta: ServerFactory) -> None:
    async with lykta(file_rate_per_minute=20) as server:
        await add_line(server.runtime)
        async with httpx.AsyncClient(base_url=server.url) as http:
            answers = [(await http.get("/chat/support")).status_code for _ in range(25)]
    assert answers[0] == 200 and answers[-1] == 429


async def test_posting_to_the_pages_is_refused(widget_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=widget_server.url) as http:
        for path in ("/chat/support", "/widget/embed.js", "/widget/safety"):
            response = await http.post(path, content=b"x" * 100)
            assert response.status_code == 405
            assert "set-cookie" not in response.headers


# Catalogues and budget --------------------------------------------------------------------


def test_every_catalogue_has_every_text() -> None:
    # Keys, placeholders, plural forms and review states: tests/test_visitor_languages.py.
    catalogues = pages.catalogues()
    assert {"sv", "en", "ar"} <= set(catalogues)
    assert pages.text("ar", "dir") == "rtl"


def test_the_loaders_own_labels_match_the_catalogues() -> None:
    source = (pages.WIDGET_DIR / "embed.js").read_text(encoding="utf-8")
    for code, texts in pages.catalogues().items():
        match = re.search(rf"{code}: \[([^\]]+)\]", source)
        assert match, f"the loader has no labels for {code}"
        labels = json.loads(f"[{match.group(1).replace(chr(39), chr(34))}]")
        assert labels == [
            texts["launcher"],
            texts["quick_exit"],
            texts["quick_exit_hint"],
            texts["skip_to_exit"],
        ]


async def sent(server: RunningServer, path: str, accept_encoding: str) -> httpx.Response:
    """The response as it crossed the socket: its body still encoded, as the client got it."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        request = http.build_request("GET", path, headers={"Accept-Encoding": accept_encoding})
        response = await http.send(request, stream=True)
        response._content = b"".join([chunk async for chunk in response.aiter_raw()])
        await response.aclose()
    return response


def decoded(response: httpx.Response) -> bytes:
    coding = response.headers.get("content-encoding")
    if coding == "br":
        return bytes(brotli.decompress(response.content))
    if coding == "gzip":
        return gzip.decompress(response.content)
    assert coding is None, coding
    return response.content


def loads(page: str) -> list[str]:
    """What a browser fetches for the chat page: style, scripts, preloaded modules, icon."""
    parsed = Page(page)
    found = [a["href"] for t, a in parsed.tags if t == "link" and a.get("href")]
    found += [a["src"] for t, a in parsed.tags if t == "script" and a.get("src")]
    return [str(path) for path in found]


# Every visitor-side file and page, by what it is served from.
VISITOR_PATHS = [f"/widget/{name}" for name in sorted(pages.assets())] + [
    "/chat/support?lang=sv",
    "/chat/youth?lang=ar&embed=1&colour=%23112233&exit=https://ngo.example/",
    "/widget/safety?lang=en",
]


@pytest.mark.parametrize("path", VISITOR_PATHS)
async def test_each_visitor_file_is_sent_compressed_when_the_client_takes_it(
    widget_server: RunningServer, path: str
) -> None:
    plain = await sent(widget_server, path, "identity")
    assert plain.status_code == 200
    assert "content-encoding" not in plain.headers
    if path.startswith("/widget/") and "safety" not in path:
        assert plain.content == (pages.WIDGET_DIR / path.removeprefix("/widget/")).read_bytes()
    for accept, coding in (
        ("gzip, deflate, br, zstd", "br"),  # what Chromium sends
        ("gzip", "gzip"),
        ("br;q=0, gzip;q=0.5", "gzip"),
        ("br", "br"),
    ):
        response = await sent(widget_server, path, accept)
        assert response.status_code == 200
        # Pages also vary by the browser's languages (their language may come from them).
        vary = "Accept-Encoding" + (", Accept-Language" if "." not in path.split("?")[0] else "")
        assert response.headers["vary"] == vary
        visitor_headers(response)
        assert decoded(response) == plain.content, (path, accept)
        if response.headers.get("content-encoding") != coding:
            # Sent as it is only where that coding would not make it smaller (the tiny icon).
            assert "content-encoding" not in response.headers
            squeezed = brotli.compress if coding == "br" else zlib.compress
            assert len(squeezed(plain.content)) >= len(plain.content) - 20, (path, accept)
        else:
            assert int(response.headers["content-length"]) < len(plain.content)
    for refusal in ("", "identity", "gzip;q=0, br;q=0", "compress, zstd"):
        response = await sent(widget_server, path, refusal)
        assert "content-encoding" not in response.headers, refusal
        assert response.content == plain.content


async def test_odd_or_oversized_accept_encoding_gets_the_file_as_it_is(
    widget_server: RunningServer,
) -> None:
    original = (pages.WIDGET_DIR / "chat.js").read_bytes()
    for odd in ("br;q=abc, gzip;q=", ";;;,,,", "BR;Q=0.0, GZIP;Q=0", "x" * 4000, "zstd, *;q=0"):
        response = await sent(widget_server, "/widget/chat.js", odd)
        assert response.status_code == 200, odd
        assert "content-encoding" not in response.headers, odd
        assert response.content == original
    # Upper case and a wildcard are what they say.
    assert (await sent(widget_server, "/widget/chat.js", "GZIP")).headers[
        "content-encoding"
    ] == "gzip"
    assert (await sent(widget_server, "/widget/chat.js", "*")).headers["content-encoding"] == "br"


def test_a_page_is_compressed_once_and_few_are_kept() -> None:
    cache = compressed.PageCache(size=2)
    first = cache.get(b"<p>one</p>" * 50)
    assert cache.get(b"<p>one</p>" * 50) is first  # not compressed again
    cache.get(b"<p>two</p>" * 50)
    cache.get(b"<p>one</p>" * 50)  # recently served: kept
    cache.get(b"<p>three</p>" * 50)  # the least recently served goes
    assert cache.get(b"<p>one</p>" * 50) is first
    assert len(cache) == 2


def boot_of(page: str) -> dict[str, Any]:
    """The data block the chat page carries for its script."""
    block = re.search(r'<script type="application/json" id="boot">(.*?)</script>', page, re.S)
    assert block is not None
    found: dict[str, Any] = json.loads(block.group(1))
    return found


async def test_the_line_inside_the_page_cannot_end_its_block(lykta: ServerFactory) -> None:
    odd = "</script><script>alert(1)</script> & <!-- -->"
    async with lykta() as server:
        await add_line(
            server.runtime, "odd", languages=["en"], closed_message={}, alternatives={"en": odd}
        )
        page = (await get(server, "/chat/odd?lang=en")).text
    block = re.search(r'<script type="application/json" id="boot">(.*?)</script>', page, re.S)
    assert block is not None
    assert "<" not in block.group(1) and ">" not in block.group(1)
    boot = json.loads(block.group(1))
    assert boot["line"]["alternatives"] == {"en": odd}
    assert boot["line"]["open"] is False  # nobody on duty: the script shows the closed state
    assert boot["texts"] == pages.page_texts(pages.catalogues()["en"])


@pytest.mark.redis
async def test_the_page_comes_while_the_broker_is_away(
    lykta: ServerFactory, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path, appendonly=False)
    await redis.start()
    try:
        async with lykta(redis_url=redis.url, redis_prefix="page") as server:
            await add_line(server.runtime, "support", languages=["sv", "en"])
            assert boot_of((await get(server, "/chat/support?lang=sv")).text)["line"]["key"]
            await redis.stop()
            for _ in range(500):
                if not server.runtime.broker.available:
                    break
                await asyncio.sleep(0.01)
            response = await get(server, "/chat/support?lang=sv")
            # Whether the line is open is unknown: the script asks again (and says it cannot
            # reach the chat while that fails).
            assert response.status_code == 200
            boot = boot_of(response.text)
            assert boot["line"] is None and boot["texts"] == pages.page_texts(
                pages.catalogues()["sv"]
            )
            assert Page(response.text).attrs["body"]["data-line"] == "support"
    finally:
        await redis.stop()


async def test_api_answers_are_never_compressed(widget_server: RunningServer) -> None:
    # They may carry a token beside text a visitor chose (BREACH): sent as they are.
    for path in ("/api/lines/support", "/api/lines", "/healthz"):
        response = await sent(widget_server, path, "gzip, deflate, br, zstd")
        assert response.status_code == 200
        assert "content-encoding" not in response.headers, path


async def test_the_size_budget_on_the_wire(widget_server: RunningServer) -> None:
    """What a browser really receives (bodies as sent, gzip only), within the budget."""
    loader = len((await sent(widget_server, "/widget/embed.js", "gzip")).content)
    page = await sent(widget_server, "/chat/support?lang=sv", "gzip")
    fetched = loads(decoded(page).decode())
    # One request after the page for each: the catalogue comes with the page.
    assert sorted(fetched) == [
        "/widget/chat.css",
        "/widget/chat.js",
        "/widget/exit.js",
        "/widget/icon.svg",
    ]
    chat = len(page.content)
    for path in fetched:
        chat += len((await sent(widget_server, path, "gzip")).content)
    print(f"\nloader {loader} B gzip (budget {LOADER_BUDGET}); chat page {chat} B gzip")
    assert loader < LOADER_BUDGET
    assert chat < CHAT_PAGE_BUDGET


def test_the_chat_page_loads_nothing_from_another_origin() -> None:
    for name in (
        "chat.html",
        "safety.html",
        "chat.js",
        "exit.js",
        "safety.js",
        "mailbox.js",
        "chat.css",
    ):
        source = (pages.WIDGET_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"https?://|url\(|@import|//[a-z0-9.-]+\.[a-z]{2,}/", source), name
    # The loader names no origin but its own (and the default exit destination).
    loader = re.sub(
        r"/\*.*?\*/", "", (pages.WIDGET_DIR / "embed.js").read_text(encoding="utf-8"), flags=re.S
    )
    assert set(re.findall(r"https?://[^'\"/\\]+", loader)) == {"https://www.google.com"}
    assert "localStorage" not in loader and "cookie" not in loader
    for name in ("chat.js", "exit.js", "safety.js", "mailbox.js"):
        source = (pages.WIDGET_DIR / name).read_text(encoding="utf-8")
        for forbidden in (
            "localStorage",
            "indexedDB",
            "document.cookie",
            "caches.",
            "innerHTML",
            "serviceWorker",
            "pushState",
            "location.assign",
            "location.href =",
        ):
            assert forbidden not in source, (name, forbidden)


# The one anonymous question after a chat ------------------------------------------------

METRICS_TOKEN = "metrics-token-for-widget-tests-0123"


def fresh_visitor() -> VisitorConnection:
    return VisitorConnection(rate=5, burst=20, tolerance=3, clock=lambda: 1000.0)


def test_feedback_comes_once_after_an_ended_chat_as_pure_protocol() -> None:
    conn = fresh_visitor()
    frame = '{"type": "feedback", "answer": "helped"}'
    before = conn.receive_text(frame)
    assert isinstance(before, ProtocolError) and before.code is ErrorCode.not_allowed_now
    conn.entered("abcdefghijkl")
    during = conn.receive_text(frame)
    assert isinstance(during, ProtocolError) and during.code is ErrorCode.not_allowed_now
    conn.ended()
    assert isinstance(conn.receive_text(frame), VisitorFeedback)
    again = conn.receive_text(frame)
    assert isinstance(again, ProtocolError) and again.code is ErrorCode.not_allowed_now
    # A new chat on the same connection earns one more answer.
    conn.entered("abcdefghijkm")
    conn.ended()
    assert isinstance(
        conn.receive_text('{"type": "feedback", "answer": "partly"}'), VisitorFeedback
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "feedback"}',
        '{"type": "feedback", "answer": "very good"}',
        '{"type": "feedback", "answer": 5}',
        '{"type": "feedback", "answer": "<script>x</script>"}',
        '{"type": "feedback", "answer": ["helped"]}',
        json.dumps({"type": "feedback", "answer": "helped" * 10_000}),
    ],
)
def test_malformed_feedback_is_refused(text: str) -> None:
    conn = fresh_visitor()
    conn.ended()
    result = conn.receive_text(text)
    assert isinstance(result, ProtocolError) and result.code is ErrorCode.invalid_field
    # A refused answer does not use up the one the visitor may give.
    assert conn.feedback_due


async def metrics(server: RunningServer) -> str:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    return response.text


async def test_feedback_is_counted_per_line_and_nothing_else(lykta: ServerFactory) -> None:
    async with lykta(metrics_token=METRICS_TOKEN, visitor_frame_burst=8) as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna")
        anna = await open_staff(server, "anna", PASSWORD)
        visitor = await open_visitor(server)
        await visitor.send({"type": "feedback", "answer": "helped"})
        assert (await visitor.expect("error", ref="feedback"))["code"] == "not_allowed_now"
        await visitor.start()
        chat_id = visitor.chat_id
        await anna.accept_offer()
        await visitor.send({"type": "feedback", "answer": "helped"})
        assert (await visitor.expect("error", ref="feedback"))["code"] == "not_allowed_now"
        await visitor.send({"type": "end"})
        await visitor.expect("chat.ended")
        await visitor.send({"type": "feedback", "answer": "partly"})
        await visitor.expect("feedback.thanks")
        # Once only, and a flood of answers is refused like any flood.
        answers = []
        for _ in range(12):
            await visitor.send({"type": "feedback", "answer": "not_helped"})
            answers.append((await visitor.expect("error"))["code"])
        assert set(answers) == {"not_allowed_now", "rate_limited"}
        text = await metrics(server)
        assert 'lykta_visitor_feedback_total{answer="partly",line="support"} 1.0' in text
        assert 'lykta_visitor_feedback_total{answer="not_helped",line="support"} 0.0' in text
        assert chat_id not in text
        # Nothing about it in SQL: no table, no row holds an answer.
        async with unit_of_work(rt.sessionmaker) as session:
            for table in Base.metadata.sorted_tables:
                assert "feedback" not in table.name
                rows = (await session.execute(select(table))).all()
                assert not any("partly" in str(row) for row in rows), table.name
