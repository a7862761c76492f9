"""The visitor widget in real Chromium: an NGO's page on a second origin embeds Lykta's loader;
a visitor chats with a counsellor driven through the staff WebSocket, waits in the queue, loses
the network and comes back, and leaves by quick exit (button and keyboard). Every state is
checked by axe-core and saved as screenshots at phone and desktop sizes."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.async_api import (
    BrowserContext,
    Frame,
    Page,
    ViewportSize,
    WebSocketRoute,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Route as BrowserRoute
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from app.broker.base import Broker
from app.chats.lost import Held, write_back
from app.models.enums import Qualification, StaffRole
from app.settings import Settings
from tests.conftest import FAST
from tests.support.brokers import transcript_gone
from tests.support.browser import axe_violations, chromium, describe, screenshot
from tests.support.clients import StaffClient, open_staff, open_visitor
from tests.support.roster import http_as, local_now, shift_fields
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer, bound_socket, run_server
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}


# The NGO's site: a second origin (localhost, while Lykta is on 127.0.0.1: another site, as in
# real life), with a strict CSP of its own that allows Lykta's script and frame and nothing else.


def host_app(lykta: str, host: str) -> Starlette:
    policy = (
        f"default-src 'self'; script-src 'self' {lykta}; frame-src {lykta}; "
        "style-src 'self'; img-src 'self'"
    )

    def page(title: str, body: str) -> HTMLResponse:
        html = (
            f'<!doctype html><html lang="sv"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title></head><body><main><h1>{title}</h1>{body}</main></body></html>"
        )
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})

    async def home(request: HttpRequest) -> Response:
        return page("Föreningen", "<p>Välkommen till föreningens webbplats.</p>")

    async def embeds(request: HttpRequest) -> Response:
        exit_url = f"{host}/neutral"
        return page(
            "Om oss",
            "<p>Vi finns här för dig.</p>"
            f'<script src="{lykta}/widget/embed.js" data-line="support" data-language="sv" '
            f'data-exit-url="{exit_url}"></script>'
            f'<script src="{lykta}/widget/embed.js" data-line="youth" data-language="en" '
            f'data-position="left" data-colour="#5b2a86" data-launcher-text="Youth chat" '
            f'data-exit-url="{exit_url}"></script>',
        )

    async def neutral(request: HttpRequest) -> Response:
        # Slow, as real sites can be: the quick exit must not start over (or be aborted by a
        # second navigation) while the first is under way.
        await asyncio.sleep(1.2)
        return page("Väder", "<p>Uppehåll, 12 grader.</p>")

    return Starlette(routes=[Route("/", home), Route("/about", embeds), Route("/neutral", neutral)])


@dataclass
class World:
    lykta: RunningServer
    host: str
    context: BrowserContext
    page: Page
    requests: list[str] = field(default_factory=list)
    # The visitor sockets of the page, through Playwright, so that a test can cut them.
    sockets: list[WebSocketRoute] = field(default_factory=list)
    network_down: bool = False

    async def route_socket(self, ws: WebSocketRoute) -> None:
        if self.network_down:
            await ws.close(code=4000, reason="no network")
            return
        ws.connect_to_server()
        self.sockets.append(ws)

    async def drop_network(self) -> None:
        """The phone loses its connection: open sockets break, new ones fail."""
        self.network_down = True
        await self.context.set_offline(True)
        for ws in self.sockets:
            await ws.close(code=4000, reason="network lost")
        self.sockets.clear()

    async def restore_network(self) -> None:
        self.network_down = False
        await self.context.set_offline(False)

    @property
    def broker(self) -> Broker:
        return self.lykta.runtime.broker


@contextlib.asynccontextmanager
async def serve_host(lykta_origin: str) -> AsyncIterator[str]:
    sock = bound_socket()
    port = sock.getsockname()[1]
    host = f"http://localhost:{port}"
    server = uvicorn.Server(
        uvicorn.Config(host_app(lykta_origin, host), log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield host
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    lykta_sock = bound_socket()
    lykta = f"http://127.0.0.1:{lykta_sock.getsockname()[1]}"
    async with serve_host(lykta) as host:
        settings = Settings(database_url=database_url, public_url=lykta, embed_origins=host, **FAST)
        async with run_server(settings, sock=lykta_sock) as server, chromium() as browser:
            rt = server.runtime
            await add_line(
                rt,
                "support",
                max_message_length=200,
                privacy_note={"sv": "Vi sparar inget om dig.", "en": "We keep nothing about you."},
            )
            await add_line(
                rt,
                "youth",
                required_qualification="volunteer",
                languages=["en", "sv", "ar"],
                privacy_note={"en": "Nobody sees who you are.", "sv": "Ingen ser vem du är."},
            )
            context = await browser.new_context(viewport=PHONE, locale="sv-SE")
            page = await context.new_page()
            w = World(server, host, context, page)
            context.on("request", lambda r: w.requests.append(r.url))
            await context.route_web_socket(re.compile(r"/ws/visitor$"), w.route_socket)
            try:
                yield w
            finally:
                await context.close()


# Helpers ----------------------------------------------------------------------------------


async def axe_clean(where: Page | Frame, state: str) -> None:
    violations = await axe_violations(where)
    assert violations == [], f"{state}:\n{describe(violations)}"


async def shots(page: Page, name: str) -> None:
    """The page as it is now at phone and at desktop size."""
    before = page.viewport_size
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await page.wait_for_timeout(50)  # the loader re-places its panel on resize
        await screenshot(page, f"widget-{name}-{label}")
    assert before is not None
    await page.set_viewport_size(before)


async def chat_frame(page: Page) -> Frame:
    handle = await page.wait_for_selector("iframe")
    assert handle is not None
    frame = await handle.content_frame()
    assert frame is not None
    await frame.wait_for_selector("#exit")
    return frame


async def open_launcher(page: Page, text: str = "Chatta") -> Frame:
    await page.get_by_role("button", name=text, exact=True).click()
    frame = await chat_frame(page)
    await frame.wait_for_selector("#view-intro:not([hidden]), #view-closed:not([hidden])")
    return frame


async def storage_is_empty(where: Page | Frame) -> None:
    """Nothing kept for this document's origin (storage a browser denies to a third-party
    frame counts as empty: nothing can be kept there either)."""
    found = await where.evaluate(
        """async () => {
            const count = async (f) => { try { return await f(); } catch { return 0; } };
            return {
                session: await count(() => sessionStorage.length),
                local: await count(() => localStorage.length),
                cookies: await count(() => document.cookie.length),
                databases: await count(async () => (await indexedDB.databases()).length),
                caches: await count(async () => (await caches.keys()).length),
                workers: await count(
                    async () => (await navigator.serviceWorker.getRegistrations()).length),
            };
        }"""
    )
    assert found == {
        "session": 0,
        "local": 0,
        "cookies": 0,
        "databases": 0,
        "caches": 0,
        "workers": 0,
    }


def only_two_origins(w: World) -> None:
    allowed = {w.host, w.lykta.url}
    others = {
        f"{urlsplit(u).scheme}://{urlsplit(u).netloc}"
        for u in w.requests
        if not u.startswith(("data:", "about:", "blob:"))
    } - allowed
    assert others == set(), f"requests to other origins: {others}"


async def offered(staff: StaffClient) -> str:
    chat_id: str = (await staff.expect("offer"))["chat_id"]
    return chat_id


# The whole visit -------------------------------------------------------------------------


async def test_a_visitor_chats_from_an_ngo_page_loses_the_network_and_leaves_by_quick_exit(
    world: World,
) -> None:
    w, page = world, world.page
    rt = w.lykta.runtime
    await add_counsellor(rt, "anna", alias="Anna")
    anna = await open_staff(w.lykta, "anna", PASSWORD)

    await page.goto(f"{w.host}/")
    await page.goto(f"{w.host}/about")
    # Two lines embedded on one page: two launchers, each with its quick exit beside it.
    await page.wait_for_selector("[data-lykta=youth]")
    assert await page.locator("[data-lykta]").count() == 2
    assert await page.get_by_role("button", name="Lämna snabbt").count() == 1
    assert await page.get_by_role("button", name="Quick exit").count() == 1
    await axe_clean(page, "host page with launchers")
    await shots(page, "launcher")
    history = await page.evaluate("history.length")

    frame = await open_launcher(page)
    assert await frame.evaluate("document.title") == "Chatt"
    await frame.get_by_text("Vi sparar inget om dig.").wait_for()
    # The page brought its catalogue and the line's state: Start is enabled with no request
    # for either, and no other language's catalogue is fetched before the visitor picks it.
    await frame.wait_for_selector("#start:enabled")
    assert [u for u in w.requests if "/widget/i18n/" in u or "/api/lines" in u] == []
    # Another language, in place: no navigation, no history entry.
    await frame.select_option("#language", "en")
    await frame.get_by_role("button", name="Start chat").wait_for()
    assert [u for u in w.requests if "/widget/i18n/" in u] == [f"{w.lykta.url}/widget/i18n/en.json"]
    await frame.get_by_text("We keep nothing about you.").wait_for()
    assert await frame.evaluate("document.documentElement.lang") == "en"
    await frame.select_option("#language", "sv")
    await frame.get_by_role("button", name="Starta chatten").wait_for()
    assert await frame.get_attribute("#text", "autocomplete") == "off"
    await axe_clean(frame, "intro")
    await shots(page, "intro")

    await frame.get_by_role("button", name="Starta chatten").click()
    await frame.wait_for_selector("#view-chat:not([hidden])")
    chat_id = await offered(anna)
    queue = frame.locator("#queue")
    await queue.filter(has_text="näst på tur").wait_for()
    await axe_clean(frame, "waiting")
    await shots(page, "waiting")

    await anna.accept(chat_id)
    await frame.get_by_role("heading", name="Du chattar med Anna").wait_for()

    # Script and markup travel and show as text, both ways.
    hostile = "<b>hej</b><script>parent.pwned=1</script>"
    await frame.fill("#text", hostile)
    await frame.press("#text", "Enter")
    got = await anna.expect("message", sender="visitor")
    assert got["text"] == hostile
    await anna.send({"type": "typing", "chat_id": chat_id, "typing": True})
    await frame.locator("#typing").filter(has_text="Anna skriver").wait_for()
    await anna.say(chat_id, '<img src="x" id="evil"> Jag finns här.')
    await frame.locator(".msg.counsellor .text").filter(has_text="<img").wait_for()
    assert await frame.locator("#log img, #log b, #log script").count() == 0
    assert await frame.locator(".msg.visitor .text").first.text_content() == hostile

    # Too long for the line (200 characters): refused before sending, with a visible count.
    await frame.fill("#text", "x" * 230)
    await frame.locator("#count").filter(has_text="30 tecken för långt").wait_for()
    await frame.press("#text", "Enter")
    assert await frame.input_value("#text") == "x" * 230
    await frame.fill("#text", "")
    await axe_clean(frame, "active")
    await shots(page, "active")
    # Zoomed to 400 % on a 1280 px screen (WCAG reflow): nothing scrolls sideways.
    await page.set_viewport_size({"width": 320, "height": 256})
    assert await frame.evaluate("document.documentElement.scrollWidth <= innerWidth")
    await screenshot(page, "widget-active-reflow-320")
    await page.set_viewport_size(PHONE)

    # The network goes; the counsellor keeps writing, the visitor too; nothing is lost or doubled.
    await w.drop_network()
    await frame.locator("#connection").filter(has_text="Ansluter igen").wait_for()
    for text in ("Är du kvar?", "Jag väntar här."):
        await anna.say(chat_id, text)
    await frame.fill("#text", "skrivet utan nät")
    await frame.press("#text", "Enter")
    await axe_clean(frame, "reconnecting")
    await shots(page, "reconnecting")
    await w.restore_network()
    await frame.locator("#connection").filter(has_text="Ansluten igen").wait_for(timeout=30_000)
    await frame.locator(".msg.counsellor").nth(2).wait_for()
    await anna.expect("message", sender="visitor", text="skrivet utan nät")
    texts = await frame.locator(".msg .text").all_text_contents()
    assert texts == [
        hostile,
        '<img src="x" id="evil"> Jag finns här.',
        "Är du kvar?",
        "Jag väntar här.",
        "skrivet utan nät",
    ]
    await anna.expect_none("message", within=0.5, text="skrivet utan nät")
    assert await page.evaluate("history.length") == history
    assert await page.evaluate("window.pwned") is None

    # Quick exit by the button in the chat.
    await frame.get_by_role("button", name="Lämna snabbt").click()
    await page.wait_for_url(f"{w.host}/neutral")
    ended = await anna.expect("chat.ended", chat_id=chat_id)
    assert ended["reason"] == "visitor_exit"
    await eventually(lambda: transcript_gone(w.broker, chat_id), what="transcript shredded")
    await storage_is_empty(page)
    await page.go_back()
    assert page.url == f"{w.host}/", "Back must not return to the page with the chat"
    assert await w.context.cookies() == []
    # Lykta's side, in this tab's own partition: nothing to resume, nothing kept.
    await page.goto(f"{w.host}/about")
    frame = await open_launcher(page)
    await storage_is_empty(frame)
    await frame.wait_for_selector("#view-intro:not([hidden])")
    only_two_origins(w)


async def test_a_chat_the_server_lost_with_its_data_says_so_in_words(world: World) -> None:
    w, page = world, world.page
    rt = w.lykta.runtime
    await add_counsellor(rt, "anna", alias="Anna")
    anna = await open_staff(w.lykta, "anna", PASSWORD)
    await page.goto(f"{w.host}/about")
    frame = await open_launcher(page)
    await frame.get_by_role("button", name="Starta chatten").click()
    chat_id = await offered(anna)
    await anna.accept(chat_id)
    await frame.get_by_role("heading", name="Du chattar med Anna").wait_for()
    await w.drop_network()
    # The chat goes as with a Redis restarted empty, and the server writes back what its
    # clients had then (app/chats/lost.py; on Redis, tests/test_scale_out.py restarts one).
    await rt.broker.delete_chat(chat_id)
    await write_back(rt.broker, rt.transcript, Held(chats={chat_id: "support"}))
    await w.restore_network()
    ended = frame.locator("#ended-by")
    await ended.filter(has_text="chatten gick förlorad").wait_for(timeout=30_000)
    await axe_clean(frame, "lost")
    await shots(page, "lost")
    await frame.get_by_role("button", name="Starta en ny chatt").click()
    # The widget asks for the line again first, retrying with growing delays if that fails:
    # a bound on failure, not on speed.
    await frame.get_by_role("button", name="Starta chatten").click(timeout=90_000)
    assert await offered(anna) != chat_id


async def test_the_queue_position_moves_and_a_closed_line_says_when_it_opens(world: World) -> None:
    w, page = world, world.page
    rt = w.lykta.runtime
    await add_counsellor(rt, "bo", capacity=1)
    bo = await open_staff(w.lykta, "bo", PASSWORD)
    first = await open_visitor(w.lykta)
    await first.start()
    await bo.accept(await offered(bo))
    second = await open_visitor(w.lykta)
    await second.start()

    await page.set_viewport_size(DESKTOP)
    await page.goto(f"{w.lykta.url}/chat/support?lang=en&exit={w.host}/neutral")
    await page.get_by_role("button", name="Start chat").click()
    await page.locator("#queue").filter(has_text="number 2").wait_for()
    await axe_clean(page, "queue")
    await shots(page, "queue-full-page")
    await second.send({"type": "end"})
    await page.locator("#queue").filter(has_text="next in the queue").wait_for()

    await first.send({"type": "end"})
    chat_id = await offered(bo)
    await bo.accept(chat_id)
    await page.get_by_role("heading", name="You are chatting with Bo").wait_for()
    await bo.say(chat_id, "Hello, I am Bo.")
    await page.get_by_text("Hello, I am Bo.").wait_for()
    # A reload (the tab's sessionStorage keeps the token) comes back to the same chat, whole.
    history = await page.evaluate("history.length")
    await page.reload()
    await page.get_by_role("heading", name="You are chatting with Bo").wait_for()
    await page.get_by_text("Hello, I am Bo.").wait_for()
    assert await page.locator(".msg.counsellor").count() == 1
    assert await page.evaluate("[sessionStorage.length, localStorage.length]") == [1, 0]
    assert await page.evaluate("history.length") == history
    # Ending asks once; "No" keeps the chat, "Yes" ends it.
    await page.get_by_role("button", name="End chat").click()
    await page.get_by_role("button", name="No, continue").click()
    assert await page.get_by_role("button", name="Yes, end it").is_hidden()
    await page.get_by_role("button", name="End chat").click()
    await page.get_by_role("button", name="Yes, end it").click()
    assert (await bo.expect("chat.ended", chat_id=chat_id))["by"] == "visitor"
    await page.get_by_role("heading", name="The chat has ended").wait_for()
    await page.locator("#ended-by").filter(has_text="You ended").wait_for()
    assert await page.evaluate("sessionStorage.length") == 0
    await axe_clean(page, "ended")
    await shots(page, "ended")
    # The one optional question: counted for the line, nothing else.
    await page.get_by_role("button", name="Partly").click()
    await page.get_by_text("Thank you for answering.").wait_for()
    counters = w.lykta.runtime.chats.counters

    async def counted() -> bool:
        return counters.feedback[("support", "partly")] == 1

    await eventually(counted, what="feedback counted")

    # Nobody on duty on this line: closed, with its hours, other help and when the roster
    # opens it next (tomorrow at 18:00 in the line's time zone), no spinner.
    await add_staff(rt, "ella", StaffRole.coordinator)
    eva = await add_counsellor(
        rt, "eva", lines=("youth",), qualification=Qualification.volunteer, on_duty=False
    )
    tomorrow = local_now().replace(hour=18, minute=0, second=0, microsecond=0) + timedelta(days=1)
    async with http_as(w.lykta, "ella") as ella:
        shift = await ella.post(
            "/api/roster/lines/youth/extra-shifts",
            json={**shift_fields(tomorrow, tomorrow + timedelta(hours=3)), "needed": 1},
        )
        assert shift.status_code == 201, shift.text
        assigned = await ella.post(
            "/api/roster/assignments", json={"staff_id": eva, "extra_shift_id": shift.json()["id"]}
        )
        assert assigned.status_code == 201, assigned.text
    await page.goto(f"{w.lykta.url}/chat/youth?lang=en")
    await page.get_by_role("heading", name="The chat is closed right now").wait_for()
    next_open = await page.locator("#next-open").text_content()
    assert next_open is not None and next_open.startswith("Next open: ")
    assert tomorrow.strftime("%A") in next_open and "6:00" in next_open, next_open
    assert await page.locator("#opening-hours").text_content() == "Mon-Thu 18-21"
    assert "112" in (await page.locator("#alternatives").text_content() or "")
    await axe_clean(page, "closed")
    await shots(page, "closed")
    only_two_origins(w)


async def test_fallbacks_right_to_left_and_a_server_that_is_down(world: World) -> None:
    w, page = world, world.page
    await add_counsellor(
        w.lykta.runtime, "cleo", lines=("youth",), qualification=Qualification.volunteer
    )
    cleo = await open_staff(w.lykta, "cleo", PASSWORD)
    assert cleo.hello["lines"]

    # Both lines of the NGO's page open side by side, each in its own frame and language.
    await page.set_viewport_size(DESKTOP)
    await page.goto(f"{w.host}/about")
    await page.get_by_role("button", name="Youth chat").click()
    youth = page.frame_locator("iframe[src*='/chat/youth']")
    await youth.get_by_role("button", name="Start chat").wait_for()
    await page.get_by_role("button", name="Chatta", exact=True).click()
    support = page.frame_locator("iframe[src*='/chat/support']")
    await support.get_by_role("heading", name="Chatten är stängd just nu").wait_for()
    assert await page.locator("iframe").count() == 2
    await page.get_by_role("button", name="Youth chat").click()  # minimises it again
    assert await page.locator("iframe[src*='/chat/youth']").is_hidden()
    await page.set_viewport_size(PHONE)

    # An unknown line and an unknown language fall back, saying so.
    await page.goto(f"{w.lykta.url}/chat/no-such-line?lang=xx")
    notice = await page.locator("#notice").text_content()
    assert notice is not None and "Den chatten finns inte" in notice and "språket" in notice
    await axe_clean(page, "fallback notice")
    await shots(page, "fallback")

    # Arabic: right to left, in the chat as a whole.
    await page.goto(f"{w.lykta.url}/chat/youth?lang=ar")
    await page.get_by_role("button", name="ابدأ الدردشة").wait_for()
    assert await page.evaluate("document.documentElement.dir") == "rtl"
    exit_box = await page.locator("#exit").bounding_box()
    assert exit_box is not None and exit_box["x"] > PHONE["width"] / 2, "exit sits at the start"
    await axe_clean(page, "rtl intro")
    await shots(page, "rtl")

    # Keyboard: the first Tab stop is the skip link, which leads to quick exit.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "skip"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "exit"
    assert page.url.endswith("/chat/youth?lang=ar")

    # The safety page, in each language.
    await page.goto(f"{w.lykta.url}/widget/safety?lang=en")
    await page.get_by_role("heading", name="Your safety").wait_for()
    await axe_clean(page, "safety")
    await shots(page, "safety")

    # Lykta unreachable once the page is there (it brings the line's state with it): Start
    # leads to a clear state with other help, and a way to try again.
    await page.goto(f"{w.lykta.url}/chat/youth?lang=en")
    await page.route(f"{w.lykta.url}/api/**", lambda route: route.abort())

    async def unreachable(socket: WebSocketRoute) -> None:
        await socket.close()

    await page.route_web_socket(re.compile(r".*/ws/visitor"), unreachable)
    await page.get_by_role("button", name="Start chat").click()
    await page.get_by_role("heading", name="We cannot reach the chat right now").wait_for()
    assert "112" in (await page.locator("#alternatives").text_content() or "")
    await axe_clean(page, "down")
    await shots(page, "down")
    await page.unroute(f"{w.lykta.url}/api/**")
    await page.get_by_role("button", name="Try again").click()
    await page.get_by_role("button", name="Start chat").wait_for()

    # A page made while the broker was away carries no line state: its script asks for it,
    # and says it cannot reach the chat while that fails.
    await page.route(f"{w.lykta.url}/api/**", lambda route: route.abort())

    async def made_without_broker(route: BrowserRoute) -> None:
        answer = await route.fetch()
        body = re.sub(
            r',"line":\{.*\}\}</script>', ',"line":null}</script>', await answer.text(), flags=re.S
        )
        skip = ("content-encoding", "content-length")
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in skip}
        await route.fulfill(status=answer.status, headers=headers, body=body)

    await page.route(f"{w.lykta.url}/chat/**", made_without_broker)
    await page.goto(f"{w.lykta.url}/chat/youth?lang=en")
    await page.get_by_role("heading", name="We cannot reach the chat right now").wait_for()
    await page.unroute(f"{w.lykta.url}/api/**")
    await page.unroute(f"{w.lykta.url}/chat/**")
    await page.get_by_role("button", name="Try again").click()
    await page.wait_for_selector("#start:enabled")
    only_two_origins(w)


async def test_quick_exit_by_keyboard_in_the_chat_and_on_the_host_page(world: World) -> None:
    w, page = world, world.page
    rt = w.lykta.runtime
    await add_counsellor(rt, "dag", alias="Dag")
    dag = await open_staff(w.lykta, "dag", PASSWORD)
    await page.set_viewport_size(DESKTOP)

    # Full page: Shift with other keys (capitals, Shift+Enter) never counts.
    await page.goto(f"{w.host}/")
    await page.goto(f"{w.lykta.url}/chat/support?lang=sv&exit={w.host}/neutral")
    await page.get_by_role("button", name="Starta chatten").click()
    chat_id = await offered(dag)
    await dag.accept(chat_id)
    await page.get_by_role("heading", name="Du chattar med Dag").wait_for()
    await page.focus("#text")
    for _ in range(3):
        await page.keyboard.press("Shift+A")
    await page.keyboard.press("Shift+Enter")
    assert page.url.startswith(w.lykta.url)
    for _ in range(3):
        await page.keyboard.press("Shift")
    await page.wait_for_url(f"{w.host}/neutral")
    assert (await dag.expect("chat.ended", chat_id=chat_id))["reason"] == "visitor_exit"
    await eventually(lambda: transcript_gone(w.broker, chat_id), what="transcript shredded")
    await page.go_back()
    assert page.url == f"{w.host}/"
    # The tab's Lykta storage holds nothing to come back to.
    await page.goto(f"{w.lykta.url}/widget/safety")
    await storage_is_empty(page)

    # Embedded: Shift three times on the NGO's page itself ends the chat in the frame too.
    await page.goto(f"{w.host}/about")
    frame = await open_launcher(page)
    await frame.get_by_role("button", name="Starta chatten").click()
    chat_id = await offered(dag)
    await dag.accept(chat_id)
    await frame.get_by_role("heading", name="Du chattar med Dag").wait_for()
    await page.get_by_role("heading", name="Om oss").click()  # focus back on the host page
    for _ in range(3):
        await page.keyboard.press("Shift")
    await page.wait_for_url(f"{w.host}/neutral")
    assert (await dag.expect("chat.ended", chat_id=chat_id))["reason"] == "visitor_exit"
    await eventually(lambda: transcript_gone(w.broker, chat_id), what="transcript shredded")
    await page.go_back()
    assert page.url == f"{w.lykta.url}/widget/safety", "Back must not return to the chat"
    await storage_is_empty(page)
    assert await w.context.cookies() == []

    # Offline: leaving needs no network. The page goes, and the token with it; the server
    # ends the chat when the visitor is not back within the line's grace period.
    await add_line(rt, "support", visitor_grace_seconds=2)
    await page.goto(f"{w.lykta.url}/chat/support?lang=sv&exit={w.host}/neutral")
    await page.get_by_role("button", name="Starta chatten").click()
    chat_id = await offered(dag)
    await dag.accept(chat_id)
    await page.get_by_role("heading", name="Du chattar med Dag").wait_for()
    token = await page.evaluate("JSON.parse(sessionStorage.getItem('lykta.chat.support')).token")
    await w.drop_network()
    await page.get_by_role("button", name="Lämna snabbt").click()
    # The exit page cannot load offline: the browser shows its own error page instead; either
    # way nothing of the chat is on the screen.
    with contextlib.suppress(PlaywrightError):
        await page.wait_for_url(f"{w.host}/neutral")
    assert await page.locator("#view-chat, .msg").count() == 0
    assert (await dag.expect("chat.ended", chat_id=chat_id))["reason"] == "visitor_left"
    await eventually(lambda: transcript_gone(w.broker, chat_id), what="transcript shredded")
    await w.restore_network()
    await page.goto(f"{w.lykta.url}/widget/safety")
    await storage_is_empty(page)
    assert not any(token in url or chat_id in url for url in w.requests), "a token in a URL"

    # The launcher's own quick exit, reached by the host page's skip link, before any chat.
    await page.goto(f"{w.host}/about")
    await page.wait_for_selector("[data-lykta=support]")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Hoppa till snabb utgång"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.textContent") == "Lämna snabbt"
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{w.host}/neutral")
    only_two_origins(w)
