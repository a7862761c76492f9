"""Continuity codes, peer requests and referral cards in the visitor's widget, in real
Chromium: one browser context takes a code, a new context comes back with it and reaches the
same counsellor (driven through the staff WebSocket), who sees the note."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from playwright.async_api import Browser, FilePayload, Page
from sqlalchemy import select

from app.kit.db import unit_of_work
from app.models import ContinuityCode
from app.models.enums import StaffRole
from app.settings import Settings
from tests.support.browser import axe_violations, chromium, describe, screenshot, trace_sockets
from tests.support.clients import StaffClient, open_staff, open_visitor
from tests.support.console import sign_in_console
from tests.support.roster import http_as
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer, bound_socket, run_server
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@contextlib.asynccontextmanager
async def serving(settings_for: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    """Lykta on a port known beforehand: its public URL is the origin the pages load from."""
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with run_server(settings_for(public_url=url), sock=sock) as server:
        yield server


async def visitor_page(browser: Browser, server: RunningServer, lang: str = "en") -> Page:
    """A fresh browser context: nothing shared with any other visitor."""
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    trace_sockets(page, "visitor")
    await page.goto(f"{server.url}/chat/support?lang={lang}")
    await page.locator("#view-intro:not([hidden]), #view-closed:not([hidden])").wait_for()
    return page


async def axe_clean(page: Page, what: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{what}: {describe(violations)}"


async def offered(staff: StaffClient) -> str:
    chat_id: str = (await staff.expect("offer"))["chat_id"]
    return chat_id


async def test_a_visitor_takes_a_code_and_comes_back_with_it_in_a_new_browser(
    browser: Browser, settings_for: Callable[..., Settings]
) -> None:
    async with serving(settings_for) as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna", alias="Anna")
        anna = await open_staff(server, "anna", PASSWORD)

        first = await visitor_page(browser, server)
        await first.get_by_role("button", name="Start chat").click()
        chat_id = await offered(anna)
        await anna.accept(chat_id)
        await first.get_by_role("heading", name="You are chatting with Anna").wait_for()
        note = "Talked about her sister; wants help with housing."
        await anna.send({"type": "continuity.offer", "chat_id": chat_id, "note": note})
        await first.get_by_text("Anna offers you a code").wait_for()
        assert note not in (await first.content())
        await first.get_by_role("button", name="Get my code").click()
        words = first.locator("#continuity-words")
        await words.wait_for()
        code = (await words.text_content()) or ""
        assert len(code.split()) == 5
        await first.get_by_text("shown only this once").wait_for()
        await axe_clean(first, "code shown")
        await screenshot(first, "continuity-code-shown")
        await anna.expect("continuity.accepted", chat_id=chat_id)
        # Nothing of the code is kept by the browser.
        kept = await first.evaluate(
            "JSON.stringify([sessionStorage, localStorage]) + document.cookie"
        )
        assert code.split()[0] not in kept
        await first.get_by_role("button", name="End chat").click()
        await first.get_by_role("button", name="Yes, end it").click()
        await first.get_by_role("heading", name="The chat has ended").wait_for()
        await first.get_by_role("button", name="Start a new chat").click()
        assert await words.text_content() == ""
        await first.context.close()

        # Another browser, another day: only the words.
        second = await visitor_page(browser, server)
        await second.get_by_text("I have a code from my counsellor").click()
        await second.get_by_label("Your code").fill("  " + code.upper().replace(" ", "  ") + " ")
        await axe_clean(second, "code entry")
        await screenshot(second, "continuity-code-entry")
        await second.get_by_role("button", name="Start with my code").click()
        offer = await anna.expect("offer")
        assert offer["continuity"] is True
        await second.get_by_text("Your counsellor Anna is being asked").first.wait_for()
        await anna.accept(offer["chat_id"])
        handover = await anna.expect("handover", chat_id=offer["chat_id"])
        assert handover["text"] == note
        await second.get_by_role("heading", name="You are chatting with Anna").wait_for()
        await anna.send({"type": "end", "chat_id": offer["chat_id"]})
        await second.get_by_role("heading", name="The chat has ended").wait_for()
        await second.context.close()

        # Anna is away: the visitor hears so and may talk to someone else instead.
        await anna.send({"type": "status", "status": "away"})
        await anna.expect("status", status="away")
        third = await visitor_page(browser, server)
        await third.get_by_text("I have a code from my counsellor").click()
        await third.get_by_label("Your code").fill(code)
        await third.get_by_role("button", name="Start with my code").click()
        await third.get_by_text("Your counsellor Anna is not here right now").wait_for()
        await third.get_by_role("button", name="Talk to someone else now").wait_for()
        await axe_clean(third, "counsellor away")
        await screenshot(third, "continuity-counsellor-away")

        # A wrong code: one neutral answer, no chat.
        await third.get_by_label("Your code").fill("these are not the words")
        await third.get_by_role("button", name="Start with my code").click()
        await third.get_by_text("No counsellor could be found for this code").wait_for()

        # The visitor deletes the code; then it finds nobody.
        await third.get_by_label("Your code").fill(code)
        await third.get_by_role("button", name="Delete this code").click()
        await third.get_by_text("it is now deleted").wait_for()
        async with unit_of_work(rt.sessionmaker) as session:
            assert (await session.execute(select(ContinuityCode))).all() == []
        await third.get_by_label("Your code").fill(code)
        await third.get_by_role("button", name="Start with my code").click()
        await third.get_by_text("No counsellor could be found for this code").wait_for()
        await third.context.close()


async def test_a_referral_card_and_the_peer_notice_in_the_visitors_language(
    browser: Browser, settings_for: Callable[..., Settings]
) -> None:
    async with serving(settings_for) as server:
        rt = server.runtime
        await add_line(rt, peer_relax_seconds=0)
        await add_counsellor(rt, "anna", alias="Anna")
        await add_staff(rt, "ella", StaffRole.coordinator)
        async with http_as(server, "ella") as ella:
            created = await ella.post(
                "/api/directory",
                json={
                    "name": "Bostadsjouren <b>Malmö</b>",
                    "description": {"sv": "Hjälp att hitta boende", "en": "Help finding housing"},
                    "needs": ["housing", "legal_migration"],
                    "languages": ["sv", "en"],
                    "phone": "+46 40 12 34 56",
                    "web": "https://example.org/bostad",
                    "opening_hours": {"sv": "Vardagar 9–16", "en": "Weekdays 9–16"},
                    "city": "Malmö",
                },
            )
            assert created.status_code == 201, created.text
        # A peer supporter answers on the line (so the widget offers the choice), busy.
        await add_counsellor(rt, "pia", alias="Pia", peer=True, capacity=1)
        pia = await open_staff(server, "pia", PASSWORD)
        busy = await open_visitor(server)
        await busy.start()
        await pia.accept(await offered(pia))
        anna = await open_staff(server, "anna", PASSWORD)
        page = await visitor_page(browser, server, "sv")
        await page.get_by_label("Jag vill gärna prata med en stödperson").check()
        await page.get_by_role("button", name="Starta chatt").click()
        chat_id = await offered(anna)
        await anna.accept(chat_id)
        # No peer supporter free (and the line does not wait): the visitor is told.
        await page.get_by_text("Ingen stödperson med egen erfarenhet var ledig").wait_for()
        await anna.send(
            {"type": "referral", "chat_id": chat_id, "service_id": created.json()["id"]}
        )
        card = page.locator(".msg.referral")
        await card.wait_for()
        text = (await card.inner_text()).replace("\n", " ")
        for expected in (
            "Bostadsjouren <b>Malmö</b>",  # shown as text, never as HTML
            "Hjälp att hitta boende",
            "Boende",
            "Juridik och uppehållstillstånd",
            "+46 40 12 34 56",
            "https://example.org/bostad",
            "Vardagar 9–16",
            "Malmö",
        ):
            assert expected in text, (expected, text)
        assert await card.locator("a, b").count() == 0
        await axe_clean(page, "referral card")
        await screenshot(page, "referral-card-widget")
        await page.context.close()


# The console ------------------------------------------------------------------------------


async def console_page(browser: Browser) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


async def test_a_counsellor_sends_a_card_offers_a_code_and_sees_the_note_when_the_visitor_returns(
    browser: Browser, settings_for: Callable[..., Settings]
) -> None:
    async with serving(settings_for) as server:
        rt = server.runtime
        await add_line(rt)
        await add_counsellor(rt, "anna", alias="Anna")
        await add_staff(rt, "ella", StaffRole.coordinator)
        async with http_as(server, "ella") as ella:
            created = await ella.post(
                "/api/directory",
                json={
                    "name": "Bostadsjouren",
                    "description": {"sv": "Hjälp att hitta boende", "en": "Help finding housing"},
                    "needs": ["housing"],
                    "languages": ["sv", "en"],
                    "phone": "+46 40 12 34 56",
                    "city": "Malmö",
                },
            )
            assert created.status_code == 201, created.text
        page = await console_page(browser)
        await sign_in_console(page, server, "anna", PASSWORD)
        await page.locator(".connection", has_text="Connected").wait_for()
        await page.locator(".status-choice label", has_text="Available").click()
        support = rt.lines.get("support")
        assert support is not None

        async def line_open() -> bool:
            return (await rt.router.line_status(support))[0]

        await eventually(line_open, what="Anna available")
        visitor = await open_visitor(server)
        await visitor.start(language="en")
        offer = page.locator(f'.offer-card[data-chat="{visitor.chat_id}"]')
        await offer.locator("button", has_text="Accept").click()
        await visitor.expect("counsellor.joined", name="Anna")
        panel = page.locator(f'.chat-panel[data-chat="{visitor.chat_id}"]')

        # A referral: search the directory from the chat, send a card.
        await panel.get_by_role("button", name="Referral").click()
        dialog = page.get_by_role("dialog", name="Find help for this visitor")
        await dialog.get_by_label("Need").select_option("housing")
        await dialog.get_by_role("button", name="Search").click()
        await dialog.get_by_text("1 found.").wait_for()
        await dialog.get_by_text("Help finding housing").wait_for()
        violations = await axe_violations(page)
        assert violations == [], describe(violations)
        await screenshot(page, "console-referral-search")
        await dialog.get_by_role("button", name="Send to the visitor").click()
        card = await visitor.expect("referral")
        assert card["card"]["name"] == "Bostadsjouren"
        assert card["card"]["description"] == "Help finding housing"
        await dialog.get_by_role("button", name="Close").click()
        await panel.locator(".entry.referral").get_by_text("Bostadsjouren").wait_for()

        # A continuity code with a handover note.
        note = "Sister in Malmö; housing first."
        await panel.get_by_role("button", name="Offer a code").click()
        code_dialog = page.get_by_role("dialog", name="Offer a continuity code")
        await code_dialog.get_by_label("Handover note for yourself").fill(note)
        violations = await axe_violations(page)
        assert violations == [], describe(violations)
        await screenshot(page, "console-offer-code")
        await code_dialog.get_by_role("button", name="Offer the code").click()
        offered = await visitor.expect("continuity.offered")
        assert "note" not in offered
        await code_dialog.wait_for(state="hidden")
        await visitor.send({"type": "continuity.accept"})
        code = (await visitor.expect("continuity.code"))["code"]
        await panel.get_by_text("The visitor took the code.").first.wait_for()
        await visitor.send({"type": "end"})
        await visitor.expect("chat.ended")

        # Back with the code: the offer says so, and the note is there for Anna.
        back = await open_visitor(server)
        await back.send({"type": "start", "line": "support", "language": "en", "code": code})
        await back.expect("continuity.found", name="Anna")
        back.chat_id = (await back.expect("chat.started"))["chat_id"]
        returning = page.locator(f'.offer-card[data-chat="{back.chat_id}"]')
        await returning.get_by_text("Returning: your code").wait_for()
        await returning.locator("button", has_text="Accept").click()
        # The first chat still awaits its wrap-up: look at the new one.
        await page.locator(f'.chat-tab[data-chat="{back.chat_id}"]').click()
        again = page.locator(f'.chat-panel[data-chat="{back.chat_id}"]')
        handover = again.locator(".entry.handover")
        await handover.get_by_text(note).wait_for()
        await handover.get_by_text("Your note from last time").wait_for()
        violations = await axe_violations(page)
        assert violations == [], describe(violations)
        await screenshot(page, "console-handover-note")
        assert page.errors == []  # type: ignore[attr-defined]
        await page.context.close()


async def test_coordinators_keep_the_directory_in_the_console(
    browser: Browser, settings_for: Callable[..., Settings]
) -> None:
    async with serving(settings_for) as server:
        rt = server.runtime
        await add_line(rt)
        await add_staff(rt, "ella", StaffRole.coordinator)
        page = await console_page(browser)
        await sign_in_console(page, server, "ella", PASSWORD)
        await page.locator("#nav a", has_text="Referral directory").click()
        await page.get_by_text("No services yet.").wait_for()
        await page.get_by_role("button", name="New service").click()
        form = page.locator("form.dir-form")
        await form.get_by_label("Name").fill("Kvinnojouren <i>Syd</i>")
        await form.get_by_label("Shelter").check()
        await form.get_by_label("Phone").fill("ring oss")
        await form.get_by_label("What they help with").first.fill("Skyddat boende")
        await form.get_by_role("button", name="Save").click()
        await form.locator(".field-error").first.wait_for()
        assert "phone" in ((await form.locator(".field-error").first.text_content()) or "")
        violations = await axe_violations(page)
        assert violations == [], describe(violations)
        await screenshot(page, "console-directory-form-error")
        await form.get_by_label("Phone").fill("020-50 50 50")
        await form.get_by_role("button", name="Save").click()
        item = page.locator(".dir-item")
        await item.get_by_text("Kvinnojouren <i>Syd</i>").wait_for()
        await item.get_by_text("020-50 50 50").wait_for()

        # CSV import with broken rows: listed by row, nothing imported.
        broken = (
            "name,needs,phone\r\nGood,housing,08-123 456\r\nBad,pizza,08-123 456\r\n"
            "Worse,health,not a phone\r\n"
        )
        await page.get_by_label("CSV file to import").set_input_files(
            files=FilePayload(name="d.csv", mimeType="text/csv", buffer=broken.encode())
        )
        await page.get_by_role("button", name="Import", exact=True).click()
        errors = page.locator(".dir-import-errors")
        await errors.get_by_text("Nothing was imported").wait_for()
        await errors.get_by_text("Row 3, needs").wait_for()
        await errors.get_by_text("Row 4, phone").wait_for()
        assert await item.count() == 1
        good = "name,needs,phone,city\r\nExit,exit_programmes,08-123 456,\r\n"
        await page.get_by_label("CSV file to import").set_input_files(
            files=FilePayload(name="d.csv", mimeType="text/csv", buffer=good.encode())
        )
        await page.get_by_role("button", name="Import", exact=True).click()
        await page.get_by_text("Imported: 1 new, 0 updated.").first.wait_for()
        await page.locator(".dir-item").nth(1).wait_for()
        violations = await axe_violations(page)
        assert violations == [], describe(violations)
        await screenshot(page, "console-directory")
        async with http_as(server, "ella") as ella:
            exported = await ella.get("/api/directory/export.csv")
        assert "Kvinnojouren" in exported.text and "Exit" in exported.text
        assert page.errors == []  # type: ignore[attr-defined]
        await page.context.close()
