"""An interpreter in a chat, in real Chromium: the counsellor asks for one in the console, the
interpreter accepts in theirs, and the visitor's widget shows them joining, their messages
labelled and a button to decline them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from app.models.enums import Qualification
from app.settings import Settings
from tests.support.browser import axe_violations, chromium, describe
from tests.support.clients import VisitorClient, open_visitor
from tests.support.console import sign_in_console
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer, bound_socket, run_server

pytestmark = [pytest.mark.browser]

SHOTS = Path("/tmp/shots/interpreters")
SHOTS.mkdir(parents=True, exist_ok=True)
NOTE = "Asked about her passport"


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


async def accessible(page: Page, name: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{name}: {describe(violations)}"


async def available(page: Page) -> None:
    await page.locator(".status-choice label", has_text="Available").click()
    await expect(page.locator(".status-choice input[value=available]")).to_be_checked()
    await expect(page.locator(".chat-empty")).to_contain_text("Offers appear under Offers")


@pytest.fixture
async def server(settings_for: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    # The console's own origin is the server's address (sign-in and its socket check it).
    sock = bound_socket()
    settings = settings_for(public_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    async with run_server(settings, sock=sock) as running:
        yield running


async def test_a_chat_with_an_interpreter_in_both_consoles_and_the_widget(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await add_line(rt)
    # Anna answers in Swedish only; Ion interprets English.
    await add_counsellor(rt, "anna", alias="Anna", languages=("sv",))
    await add_counsellor(
        rt, "ion", alias="Ion", qualification=Qualification.interpreter, languages=("en",)
    )
    errors: list[str] = []
    async with chromium() as browser:
        pages: list[Page] = []
        for viewport in ({"width": 1280, "height": 800},) * 2 + ({"width": 390, "height": 844},):
            context = await browser.new_context(viewport=viewport, locale="en-GB")  # type: ignore[arg-type]
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            pages.append(page)
        anna, ion, visitor = pages

        await sign_in_console(anna, server, "anna", PASSWORD)
        await available(anna)
        await sign_in_console(ion, server, "ion", PASSWORD)
        await available(ion)

        await visitor.goto(f"{server.url}/chat/support?lang=en")
        await visitor.get_by_role("button", name="Start chat").click()
        offer = anna.locator(".offer-card")
        await expect(offer.locator(".tag.interpreter")).to_have_text(
            "Nobody on duty speaks English; an interpreter is on duty"
        )
        await offer.locator("button", has_text="Accept").click()
        await visitor.get_by_role("heading", name="You are chatting with Anna").wait_for()
        await visitor.locator("#text").fill("I need help, I don't speak Swedish")
        await visitor.locator("#send").click()
        panel = anna.locator(".chat-panel:not([hidden])")
        await expect(panel.locator(".from-visitor .text")).to_have_text(
            "I need help, I don't speak Swedish"
        )
        await panel.locator("details.note-box summary").click()
        await panel.locator("textarea[name=note]").fill(NOTE)
        await panel.get_by_role("button", name="Save note").click()
        await expect(panel.locator(".entry.note")).to_contain_text(NOTE)

        await panel.get_by_role("button", name="Ask for an interpreter").click()
        await expect(panel.locator(".chat-notices")).to_contain_text(
            "An interpreter for English has been asked"
        )
        card = ion.locator(".offer-card")
        await expect(card).to_contain_text("Interpreting: English")
        await expect(card).to_contain_text("Anna asks for an interpreter")
        await shot(ion, "interpreter-offer-1280")
        await card.locator("button", has_text="Accept").click()

        # The visitor is told, sees the interpreter's messages labelled, and may decline.
        await visitor.get_by_text("An interpreter for English has joined the chat.").wait_for()
        decline = visitor.get_by_role("button", name="I don't want an interpreter")
        await expect(decline).to_be_visible()
        mine = ion.locator(".chat-panel:not([hidden])")
        await expect(mine.locator(".interpreter-line")).to_contain_text("You interpret between")
        # Nothing from before the join, and never the note.
        await expect(mine.locator(".entry.system")).to_contain_text("Ion joined as interpreter")
        assert await mine.locator(".from-visitor").count() == 0
        assert await mine.locator(".entry.note").count() == 0
        await expect(panel.locator(".interpreter-line")).to_have_text(
            "Interpreter in this chat: Ion"
        )

        await panel.locator("textarea[name=text]").fill("Hej, jag heter Anna. Hur kan jag hjälpa?")
        await panel.locator("textarea[name=text]").press("Enter")
        await expect(mine.locator(".from-staff .text")).to_have_text(
            "Hej, jag heter Anna. Hur kan jag hjälpa?"
        )
        await mine.locator("textarea[name=text]").fill("Hi, I am Anna. How can I help?")
        await mine.locator("textarea[name=text]").press("Enter")
        labelled = visitor.locator(".msg.interpreter")
        await expect(labelled.locator(".text")).to_have_text("Hi, I am Anna. How can I help?")
        await expect(labelled.locator(".who")).to_have_text("Ion (interpreter)")
        await expect(panel.locator(".from-interpreter .entry-who")).to_have_text(
            "Ion (interpreter)"
        )
        await visitor.locator("#text").fill("He keeps my passport")
        await visitor.locator("#send").click()
        await expect(mine.locator(".from-visitor .text")).to_have_text("He keeps my passport")
        await mine.locator("textarea[name=text]").fill("Han har mitt pass")
        await mine.locator("textarea[name=text]").press("Enter")
        await expect(panel.locator(".from-interpreter .text").last).to_have_text(
            "Han har mitt pass"
        )
        await expect(panel.get_by_role("button", name="Remove interpreter")).to_be_visible()

        for page, name in ((anna, "counsellor"), (ion, "interpreter")):
            await accessible(page, name)
            await shot(page, f"{name}-chat-1280")
        await accessible(visitor, "widget")
        await shot(visitor, "widget-interpreter-390")

        # The visitor declines: the interpreter is out at once, everyone is told.
        await decline.click()
        await visitor.get_by_text("The interpreter has left the chat.").wait_for()
        await expect(decline).to_be_hidden()
        await expect(panel.locator(".entry.system").last).to_contain_text(
            "The visitor declined the interpreter Ion"
        )
        await expect(ion.locator(".chat-panel")).to_have_count(0)
        await expect(ion.locator(".flash, .notice").first).to_contain_text(
            "the visitor declined an interpreter"
        )
        await shot(anna, "counsellor-after-decline-1280")
    assert errors == [], errors


async def test_a_request_outlives_a_reload_holds_the_place_and_goes_when_the_chat_ends(
    server: RunningServer,
) -> None:
    """Ion (one place) reloads his console and still has Anna's request; while it waits, her
    request in another chat finds every interpreter busy; when its chat ends, his offer
    leaves his console at once, saying why."""
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna", languages=("sv",))
    await add_counsellor(
        rt,
        "ion",
        alias="Ion",
        qualification=Qualification.interpreter,
        languages=("en",),
        capacity=1,
    )
    errors: list[str] = []
    async with chromium() as browser:
        pages: list[Page] = []
        for _ in range(2):
            context = await browser.new_context(
                viewport={"width": 1280, "height": 800}, locale="en-GB"
            )
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            pages.append(page)
        anna, ion = pages
        await sign_in_console(anna, server, "anna", PASSWORD)
        await available(anna)
        await sign_in_console(ion, server, "ion", PASSWORD)
        await available(ion)

        async def answered() -> VisitorClient:
            visitor = await open_visitor(server)
            await visitor.start(language="en")
            offer = anna.locator(f'.offer-card[data-chat="{visitor.chat_id}"]')
            await offer.locator("button", has_text="Accept").click()
            await visitor.expect("counsellor.joined")
            return visitor

        first = await answered()
        second = await answered()
        panel = anna.locator(f'.chat-panel[data-chat="{second.chat_id}"]')
        await expect(panel).to_be_visible()
        await panel.get_by_role("button", name="Ask for an interpreter").click()
        card = ion.locator(f'.offer-card[data-chat="{second.chat_id}"]')
        await expect(card).to_contain_text("Anna asks for an interpreter")

        await ion.reload()
        await expect(card).to_contain_text("Interpreting: English")
        await expect(card).to_contain_text("Anna asks for an interpreter")
        await expect(card.locator(".countdown")).to_contain_text("s")

        await anna.locator(f'.chat-tab[data-chat="{first.chat_id}"]').click()
        other = anna.locator(f'.chat-panel[data-chat="{first.chat_id}"]')
        await other.get_by_role("button", name="Ask for an interpreter").click()
        await expect(other.locator(".chat-notices")).to_contain_text(
            "Every interpreter for English is busy. Try again in a while."
        )

        await second.send({"type": "end"})
        await expect(card).to_have_count(0)
        await expect(ion.locator(".flash, .notice").first).to_contain_text(
            "A request for an interpreter was withdrawn: the chat ended."
        )
        await shot(ion, "interpreter-request-withdrawn-1280")
        await accessible(ion, "interpreter-withdrawn")
    assert errors == [], errors
