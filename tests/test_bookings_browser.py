"""Booked chats in real Chromium: the counsellor offers times from their own shifts in the
console, the visitor sees them as buttons in the widget and books one with the code the
widget holds in memory; the console lists today's booked chats and says in words why a time
cannot be offered. A thread handed over shows its cancelled times in the widget and to the
new counsellor. Screenshots at 390×844 (widget) and 1280×800 (console), axe on both."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from app.bookings.service import iso
from app.models.enums import StaffRole
from app.settings import Settings
from tests.support.browser import axe_violations, chromium, describe, screenshot, trace_sockets
from tests.support.clients import api, sign_in_session
from tests.support.console import sign_in_console
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer, bound_socket, run_server
from tests.support.waiting import eventually
from tests.test_bookings import bookings, give_shift, soon
from tests.test_bookings_mailbox import claimed_thread, visitor_post

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots/booking")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@contextlib.asynccontextmanager
async def serving(settings_for: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with run_server(settings_for(public_url=url), sock=sock) as server:
        yield server


async def shot(page: Page, name: str) -> None:
    """The usual artefact, and a copy where the people looking at this change find it."""
    await screenshot(page, name)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


async def axe_clean(page: Page, what: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{what}: {describe(violations)}"


async def test_times_offered_in_the_console_are_booked_in_the_widget(
    browser: Browser, settings_for: Callable[..., Settings]
) -> None:
    async with serving(settings_for) as server:
        rt = server.runtime
        await add_line(rt)
        anna_id = await add_counsellor(rt, "anna", alias="Anna")
        await give_shift(rt, anna_id, before=10, after=240)

        context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
        console = await context.new_page()
        errors: list[str] = []
        console.on("pageerror", lambda error: errors.append(str(error)))
        await sign_in_console(console, server, "anna", PASSWORD)
        await console.locator(".connection", has_text="Connected").wait_for()
        booked_today = console.locator(".booked-today")
        await booked_today.get_by_text("No booked chats today.").wait_for()
        await console.locator(".status-choice label", has_text="Available").click()
        support = rt.lines.get("support")
        assert support is not None

        async def line_open() -> bool:
            return (await rt.router.line_status(support))[0]

        await eventually(line_open, what="Anna available")

        visitor_context = await browser.new_context(viewport={"width": 390, "height": 844})
        widget = await visitor_context.new_page()
        trace_sockets(widget, "visitor")
        await widget.goto(f"{server.url}/chat/support?lang=en")
        await widget.get_by_role("button", name="Start chat").click()
        await console.locator(".offer-card").get_by_role("button", name="Accept").click()
        await widget.get_by_role("heading", name="You are chatting with Anna").wait_for()
        panel = console.locator(".chat-panel:not([hidden])")

        # No code yet: nothing to book with, so no times to offer.
        offer_times = panel.get_by_role("button", name="Offer times")
        assert await offer_times.is_hidden()
        await panel.get_by_role("button", name="Offer a code").click()
        await (
            console.get_by_role("dialog", name="Offer a continuity code")
            .get_by_role("button", name="Offer the code")
            .click()
        )
        await widget.get_by_role("button", name="Get my code").click()
        await widget.locator("#continuity-words").wait_for()
        await panel.get_by_text("The visitor took the code.").first.wait_for()

        # The counsellor's own shift, its times in 30-minute steps: choose two.
        await offer_times.click()
        dialog = console.get_by_role("dialog", name="Offer times for a booked chat")
        boxes = dialog.locator("input[type=checkbox]")
        await boxes.first.wait_for()
        assert await boxes.count() >= 4
        await boxes.nth(0).check()
        await boxes.nth(1).check()
        await boxes.nth(2).check()
        # Three chosen: the others wait until one is unticked.
        await dialog.get_by_text("3 of 3 times chosen.").wait_for()
        assert await boxes.nth(3).is_disabled()
        await boxes.nth(2).uncheck()
        await dialog.get_by_text("2 of 3 times chosen.").wait_for()
        first_time = await boxes.nth(0).get_attribute("value")
        assert first_time is not None
        await axe_clean(console, "offer times dialog")
        await shot(console, "console-offer-times")
        await dialog.get_by_role("button", name="Offer these times").click()
        await dialog.wait_for(state="hidden")
        await panel.get_by_text("You offered the visitor 2 times to book:").wait_for()

        # The visitor sees them as buttons, and books the first.
        offered = widget.locator(".msg.booking")
        await offered.wait_for()
        buttons = offered.get_by_role("button")
        assert await buttons.count() == 2
        await axe_clean(widget, "offered times")
        await shot(widget, "widget-times-offered")
        label = (await buttons.first.text_content()) or ""
        await buttons.first.click()
        await offered.get_by_role("status").get_by_text(f"Booked: {label}.").wait_for()
        assert await buttons.count() == 0
        await axe_clean(widget, "time booked")
        await shot(widget, "widget-time-booked")
        [booking] = await bookings(rt)
        assert booking.starts_at.isoformat().replace("+00:00", "Z") == first_time

        # The booked time cannot be offered again: the console says why, in words.
        await offer_times.click()
        await boxes.first.wait_for()
        await dialog.locator(f'input[value="{first_time}"]').check()
        await dialog.get_by_role("button", name="Offer these times").click()
        await (
            dialog.get_by_role("alert")
            .get_by_text("A time you chose is booked already. Choose another.")
            .wait_for()
        )
        await axe_clean(console, "offer refused")
        await dialog.get_by_role("button", name="Cancel").click()

        # Today's booked chats, as the counsellor's screen lists them (read again on load).
        await console.reload()
        await console.locator(".connection", has_text="Connected").wait_for()
        item = booked_today.locator(".booked-item")
        await item.get_by_text("Support").wait_for()
        assert await item.count() == 1
        await axe_clean(console, "booked chats today")
        await shot(console, "console-booked-today")
        assert errors == []

        # Swedish texts too.
        await console.locator("#lang").select_option("sv")
        await console.get_by_role("heading", name="Bokade samtal i dag").wait_for()
        await visitor_context.close()
        await context.close()


async def test_a_thread_handed_over_shows_its_cancelled_times_to_the_visitor_and_the_new_counsellor(
    browser: Browser, settings_for: Callable[..., Settings]
) -> None:
    async with serving(settings_for) as server:
        rt = server.runtime
        await add_line(rt)
        anna_id = await add_counsellor(rt, "anna", alias="Anna")
        await add_counsellor(rt, "bert", alias="Bert")
        await add_staff(rt, "cora", StaffRole.coordinator)
        await give_shift(rt, anna_id)
        anna = await sign_in_session(server, "anna", PASSWORD)
        thread_id, code = await claimed_thread(server, anna)
        booked_at = soon() + timedelta(minutes=30)
        path = f"/api/mailbox/{thread_id}/times"
        assert (await api(server, anna, "POST", path, json={"times": [iso(booked_at)]})).is_success
        booked = await visitor_post(
            server, "/api/visitor/mailbox/book", {"code": code, "time": iso(booked_at)}
        )
        assert booked.status_code == 200, booked.text

        # The coordinator hands it over on the Lines screen and is told what was cancelled.
        context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
        lines = await context.new_page()
        errors: list[str] = []
        lines.on("pageerror", lambda error: errors.append(str(error)))
        await sign_in_console(lines, server, "cora", PASSWORD)
        await lines.locator("#nav a", has_text="Lines").click()
        threads = lines.locator("#line-mailbox-threads")
        row = threads.locator(f'tr[data-thread="{thread_id}"]')
        await row.get_by_role("combobox").select_option(label="Bert")
        await row.get_by_role("button", name="Hand over").click()
        await (
            threads.locator(".handover-status")
            .get_by_text(
                "Handed to Bert. The booked chat was cancelled; the visitor reads so in the thread."
            )
            .wait_for()
        )
        assert await bookings(rt) == []
        await axe_clean(lines, "handed over")
        await shot(lines, "console-handed-over")
        assert errors == []
        await context.close()

        # The visitor reads the thread: the booked time, cancelled, in words.
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        widget = await context.new_page()
        widget.on("pageerror", lambda error: errors.append(str(error)))
        await widget.goto(f"{server.url}/chat/support?lang=en")
        await widget.get_by_role("button", name="Read the answer").click()
        await widget.get_by_label("Your mailbox code").fill(code)
        await widget.get_by_role("button", name="Read", exact=True).click()
        await widget.get_by_role("heading", name="Your conversation", exact=True).wait_for()
        cancelled = widget.locator("#mb-log .msg.counsellor").last
        await cancelled.get_by_text("These times for a chat are cancelled").wait_for()
        assert await cancelled.locator(".mb-time-list li").count() == 1
        assert await widget.locator("#mb-times").is_hidden()
        await axe_clean(widget, "times cancelled")
        await shot(widget, "widget-times-cancelled")
        assert errors == []
        await context.close()

        # The new counsellor reads the same in the console.
        context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
        console = await context.new_page()
        console.on("pageerror", lambda error: errors.append(str(error)))
        await sign_in_console(console, server, "bert", PASSWORD)
        await console.locator("#nav a", has_text="Mailbox").click()
        mine = console.locator('.mailbox-line[data-line="support"] .mailbox-item.mine')
        await mine.get_by_role("button").click()
        entry = console.locator('.mailbox-thread .entry[data-kind="times_cancelled"]')
        await entry.get_by_text("Times for a booked chat cancelled when the thread").wait_for()
        assert await entry.locator("li").count() == 1
        await axe_clean(console, "console times cancelled")
        await shot(console, "console-times-cancelled")
        assert errors == []
        await context.close()
