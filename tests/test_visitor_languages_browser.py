"""The visitor side in twelve languages, in real Chromium: the language from the browser's
settings (Playwright's locale), Arabic right to left, the host page's data-language first,
switching, a line's text in another language saying so, plural forms as Intl has them, and
every language axe-clean with a screenshot at 390×844 in /tmp/shots/languages/."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, Route
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route as Path_

from app.settings import Settings
from app.widget import pages
from tests.support.browser import axe_violations, chromium, describe
from tests.support.clients import StaffClient, open_staff
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer, bound_socket, run_server
from tests.test_visitor_languages import LANGUAGES

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots/languages")
PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


def host_app(lykta: str) -> Starlette:
    """An NGO's page (another origin) embedding the chat, with or without data-language."""

    async def embed(request: Request) -> Response:
        language = request.query_params.get("language", "")
        attribute = f' data-language="{language}"' if language.isalpha() else ""
        return HTMLResponse(
            '<!doctype html><html lang="sv"><head><meta charset="utf-8"><title>NGO</title>'
            "</head><body><main><h1>NGO</h1></main>"
            f'<script src="{lykta}/widget/embed.js" data-line="support"{attribute}></script>'
            "</body></html>"
        )

    return Starlette(routes=[Path_("/", embed)])


@contextlib.asynccontextmanager
async def serve_host(lykta: str) -> AsyncIterator[str]:
    sock = bound_socket()
    host = f"http://localhost:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(host_app(lykta), log_config=None, access_log=False))
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


@contextlib.asynccontextmanager
async def lykta(database_url: str, host: str = "") -> AsyncIterator[RunningServer]:
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(database_url=database_url, public_url=url, embed_origins=host or url)
    async with run_server(settings, sock=sock) as server:
        await add_line(
            server.runtime,
            "support",
            languages=list(LANGUAGES),
            # Texts only in some languages: the others show one with a note, never a blank.
            privacy_note={"sv": "Du är anonym.", "en": "You are anonymous.", "ro": "Ești anonimă."},
            closed_message={"en": "Closed right now."},
            opening_hours={"en": "Mon-Thu 18-21", "ar": "من الاثنين إلى الخميس ١٨-٢١"},
        )
        yield server


@contextlib.asynccontextmanager
async def on_duty(server: RunningServer) -> AsyncIterator[StaffClient]:
    """A counsellor on duty and connected: the line is open."""
    await add_counsellor(server.runtime, "anna", languages=("sv", "en", "ro"))
    staff = await open_staff(server, "anna", PASSWORD)
    try:
        yield staff
    finally:
        await staff.close()


async def context(browser: Browser, locale: str, **extra: object) -> BrowserContext:
    return await browser.new_context(viewport=PHONE, locale=locale, **extra)  # type: ignore[arg-type]


async def intro(page: Page) -> None:
    await page.locator("#view-intro:not([hidden]), #view-closed:not([hidden])").wait_for()
    await page.locator("#start:not([disabled]), #view-closed:not([hidden])").wait_for()


async def axe_clean(page: Page, what: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{what}: {describe(violations)}"


async def shot(page: Page, name: str) -> None:
    # Playwright makes the folder.
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_the_widget_opens_in_romanian_from_the_browsers_languages(
    browser: Browser, database_url: str
) -> None:
    async with lykta(database_url) as server, on_duty(server):
        # Accept-Language and navigator.languages both say Romanian.
        ctx = await context(browser, "ro-RO")
        page = await ctx.new_page()
        await page.goto(f"{server.url}/chat/support")
        await intro(page)
        assert await page.evaluate("document.documentElement.lang") == "ro"
        await page.get_by_role("button", name="Începe chatul").wait_for()
        assert await page.locator("#language").input_value() == "ro"
        assert await page.locator("#privacy-note").text_content() == "Ești anonimă."
        await ctx.close()

        # A browser whose Accept-Language names nothing the line offers, while its languages
        # (navigator.languages) do: the page switches by itself.
        ctx = await context(browser, "ro-RO")
        page = await ctx.new_page()

        async def german(route: Route) -> None:
            headers = {**route.request.headers, "accept-language": "de"}
            await route.continue_(headers=headers)

        await page.route("**/chat/support", german)
        await page.goto(f"{server.url}/chat/support")
        assert await page.evaluate("document.body.dataset.chosenBy") == "line"
        await page.get_by_role("button", name="Începe chatul").wait_for()
        assert await page.evaluate("document.documentElement.lang") == "ro"
        await ctx.close()

        # Nothing the line offers anywhere: its first language.
        ctx = await context(browser, "de-DE")
        page = await ctx.new_page()
        await page.goto(f"{server.url}/chat/support")
        await page.get_by_role("button", name="Starta chatten").wait_for()
        assert await page.evaluate("document.documentElement.lang") == "sv"
        await ctx.close()


async def test_arabic_lays_out_right_to_left_with_a_note_on_texts_in_another_language(
    browser: Browser, database_url: str
) -> None:
    async with lykta(database_url) as server, on_duty(server):
        ctx = await context(browser, "ar-EG")
        page = await ctx.new_page()
        await page.goto(f"{server.url}/chat/support")
        await intro(page)
        assert await page.evaluate("document.documentElement.dir") == "rtl"
        for selector in ("body", "#view-intro", "#start", "#help"):
            direction = await page.locator(selector).evaluate("e => getComputedStyle(e).direction")
            assert direction == "rtl", selector
        # Mirrored: quick exit at the start of the bar (the right), text aligned right.
        exit_box = await page.locator("#exit").bounding_box()
        assert exit_box is not None and exit_box["x"] > PHONE["width"] / 2
        # The privacy note exists only in Swedish, English and Romanian: the line's first
        # language is shown, marked as Swedish, with a note in Arabic saying so.
        note = page.locator("#privacy-note")
        assert await note.text_content() == "Du är anonym."
        assert await note.get_attribute("lang") == "sv"
        said = await page.locator("#privacy-note + *").count()
        fallback = page.locator(".fallback-note").first
        assert said >= 0 and await fallback.is_visible()
        text = await fallback.text_content()
        assert text is not None and text.startswith("هذا النص باللغة") and "السويدية" in text
        await axe_clean(page, "arabic")
        await shot(page, "ar-fallback-note")
        await ctx.close()


async def test_a_closed_line_in_romanian_shows_its_english_texts_saying_so(
    browser: Browser, database_url: str
) -> None:
    async with lykta(database_url) as server:  # nobody on duty: closed
        ctx = await context(browser, "ro-RO")
        page = await ctx.new_page()
        await page.goto(f"{server.url}/chat/support")
        await page.get_by_role("heading", name="Chatul este închis acum").wait_for()
        assert await page.locator("#closed-message").text_content() == "Closed right now."
        assert await page.locator("#closed-message").get_attribute("lang") == "en"
        notes = await page.locator(".fallback-note:visible").all_text_contents()
        assert "Acest text este în engleză." in notes
        # Switching to Arabic redraws them: the opening hours exist in Arabic, no note there.
        await page.locator("#language").select_option("ar")
        await page.get_by_role("heading", name="الدردشة مغلقة الآن").wait_for()
        assert await page.locator("#opening-hours").get_attribute("lang") is None
        await axe_clean(page, "closed with fallback")
        await shot(page, "ar-closed")
        await page.locator("#language").select_option("ro")
        await page.get_by_role("heading", name="Chatul este închis acum").wait_for()
        await axe_clean(page, "closed with fallback")
        await shot(page, "ro-closed-fallback")
        await ctx.close()


async def test_the_host_pages_data_language_wins_over_the_browser(
    browser: Browser, database_url: str
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        # Lykta must know the host's origin before it starts: the host's port first.
        sock = bound_socket()
        lykta_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        host = await stack.enter_async_context(serve_host(lykta_url))
        settings = Settings(database_url=database_url, public_url=lykta_url, embed_origins=host)
        server = await stack.enter_async_context(run_server(settings, sock=sock))
        await add_line(server.runtime, "support", languages=list(LANGUAGES))
        await stack.enter_async_context(on_duty(server))
        ctx = await context(browser, "ro-RO")
        page = await ctx.new_page()

        await page.goto(f"{host}/?language=bg")
        await page.get_by_role("button", name="Чат", exact=True).click()
        frame = page.frame_locator("iframe[src*='/chat/support']")
        await frame.get_by_role("button", name="Започни чат").wait_for()
        assert await frame.locator("html").get_attribute("lang") == "bg"

        # Without data-language, the browser's Romanian (the loader's labels too).
        await page.goto(f"{host}/")
        await page.get_by_role("button", name="Ieșire rapidă").wait_for()
        await page.get_by_role("button", name="Chat", exact=True).click()
        frame = page.frame_locator("iframe[src*='/chat/support']")
        await frame.get_by_role("button", name="Începe chatul").wait_for()
        assert await frame.locator("html").get_attribute("lang") == "ro"
        await ctx.close()


async def test_the_visitor_can_always_switch_language(browser: Browser, database_url: str) -> None:
    async with lykta(database_url) as server, on_duty(server):
        ctx = await context(browser, "en-GB")
        page = await ctx.new_page()
        await page.goto(f"{server.url}/chat/support")
        await intro(page)
        for code in ("pl", "ar", "th", "en"):
            await page.locator("#language").select_option(code)
            await page.get_by_role("button", name=pages.text(code, "start")).wait_for()
            assert await page.evaluate("document.documentElement.lang") == code
            direction = await page.locator("body").evaluate("e => getComputedStyle(e).direction")
            assert direction == pages.text(code, "dir")
            assert await page.title() == pages.text(code, "page_title")
        # A counted text follows the language's plural rules (Russian: 4000 → "many").
        await page.locator("#language").select_option("ru")
        await page.get_by_role("button", name=pages.text("ru", "start")).wait_for()
        count = await page.locator("#count").text_content()
        assert count == "0 из 4000 знаков"
        await ctx.close()


async def test_plural_forms_are_exactly_those_intl_knows(
    browser: Browser, database_url: str
) -> None:
    async with lykta(database_url) as server:
        ctx = await context(browser, "en-GB")
        page = await ctx.new_page()
        await page.goto(f"{server.url}/chat/support")
        for code in sorted(pages.catalogues()):
            wanted = await page.evaluate(
                "c => new Intl.PluralRules(c).resolvedOptions().pluralCategories", code
            )
            for key, value in pages.catalogues()[code].items():
                if isinstance(value, dict):
                    assert set(value) - {"plural"} == set(wanted), (code, key)
        await ctx.close()


async def test_every_language_is_accessible_and_looked_at(
    browser: Browser, database_url: str
) -> None:
    async with lykta(database_url) as server, on_duty(server):
        ctx = await context(browser, "en-GB")
        page = await ctx.new_page()
        for code in LANGUAGES:
            await page.goto(f"{server.url}/chat/support?lang={code}")
            await intro(page)
            await page.locator("#code-entry summary").click()
            assert await page.evaluate("document.documentElement.lang") == code
            await axe_clean(page, code)
            await shot(page, code)
            await page.goto(f"{server.url}/widget/safety?lang={code}")
            await page.get_by_role("heading", name=pages.text(code, "safety_heading")).wait_for()
            await axe_clean(page, f"safety {code}")
        await shot(page, "safety-uk")
        await ctx.close()
