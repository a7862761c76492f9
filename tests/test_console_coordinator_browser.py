"""A coordinator's day in the console, in real Chromium against Lykta on 127.0.0.1.

One server and one browser for the module; each test signs in afresh in its own context.
Visitors and counsellors are driven over the real WebSockets (tests/support/clients.py).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, Route, ViewportSize, expect

from app.audit.service import AuditAction, audit_service
from app.kit.db import unit_of_work
from app.models.enums import Qualification, StaffRole
from app.settings import Settings
from tests.conftest import FAST
from tests.support.browser import axe_violations, chromium, describe, late_answers, screenshot
from tests.support.clients import (
    SignedIn,
    VisitorClient,
    api,
    code_used_now,
    fresh_code,
    open_staff,
    open_visitor,
    sign_in_session,
)
from tests.support.console import sign_in_console
from tests.support.held import written
from tests.support.roster import around_now, local_now
from tests.support.seed import PASSWORD, TOTP_SECRETS, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer, bound_socket, run_server
from tests.support.waiting import eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

DESKTOP: ViewportSize = {"width": 1280, "height": 720}
TABLET: ViewportSize = {"width": 768, "height": 1024}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    path = tmp_path_factory.mktemp("console") / "lykta.db"
    shutil.copy(sqlite_template, path)
    sock = bound_socket()
    # The browser's Origin must be Lykta's own public URL, so the port is chosen first.
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{path}",
        public_url=public_url,
        # Every test signs in afresh from 127.0.0.1, more often than a person would.
        sign_in_rate_per_minute=100,
        # A username locks after three failures, without the waits in between (which only
        # a clock could test): the sign-in test meets the lock.
        sign_in_slow_after=10,
        sign_in_lock_after=3,
        **FAST,
    )
    async with run_server(settings, sock=sock) as running:
        rt = running.runtime
        await add_line(rt)
        await add_line(rt, "youth", required_qualification="volunteer")
        await add_staff(rt, "cora", StaffRole.coordinator)
        await add_staff(rt, "ada", StaffRole.admin)
        # Anna works on the support line but has no shift: the roster decides when she is on.
        await add_counsellor(rt, "anna", on_duty=False)
        # Bo is on duty all day (ad hoc), for the chats the statistics are made of.
        await add_counsellor(rt, "bo")
        # Vera, a volunteer on the youth line, signs up for open places herself.
        await add_counsellor(
            rt, "vera", lines=("youth",), qualification=Qualification.volunteer, on_duty=False
        )
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cora(server: RunningServer) -> SignedIn:
    return await sign_in_session(server, "cora", PASSWORD)


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    yield context
    await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert errors == [], f"script errors on the page: {errors}"


async def assert_accessible(page: Page, name: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{name}: {describe(violations)}"
    await screenshot(page, f"console-{name}")


async def open_view(page: Page, server: RunningServer, route: str) -> None:
    await page.goto(f"{server.url}/console#/{route}")
    await expect(page.locator(f"#view-{route}-title")).to_be_visible()


# Sign-in and the shell ------------------------------------------------------------------------


async def test_sign_in_with_totp_and_a_wrong_code_is_told_plainly(
    server: RunningServer, page: Page
) -> None:
    await page.goto(f"{server.url}/console")
    form = page.locator("form.signin-form")
    await expect(form).to_be_visible()
    await assert_accessible(page, "sign-in")

    await form.locator("input[name=username]").fill("cora")
    await form.locator("input[name=password]").fill(PASSWORD)
    await form.locator("input[name=code]").fill("000000")
    await form.locator("button[type=submit]").click()
    await expect(form.locator("[role=alert]")).to_have_text("Wrong username, password or code.")
    await expect(page.locator("#nav a")).to_have_count(0)

    # Someone guessing a password: the username locks, and the form says for how long.
    await form.locator("input[name=username]").fill("ghost")
    for attempt in range(4):
        await form.locator("input[name=password]").fill(f"guess number {attempt}")
        async with page.expect_response("**/api/staff/session") as answered:
            await form.locator("button[type=submit]").click()
        assert (await answered.value).status == (429 if attempt == 3 else 401)
    await expect(form.locator("[role=alert]")).to_have_text(
        "Too many failed sign-ins. Sign-in is locked for 15 minutes."
    )
    await screenshot(page, "console-sign-in-locked")

    await sign_in_console(page, server, "cora", PASSWORD)
    await expect(page.locator("#nav a")).to_have_text(
        [
            "Roster",
            "Staff",
            "Lines",
            "Statistics",
            "Play a visitor",
            "Audit log",
            "Referral directory",
            "My account",
        ]
    )
    await expect(page.locator("#nav a[aria-current=page]")).to_have_text("Roster")
    # Alt+digit goes to the nth screen of the navigation.
    await page.keyboard.press("Alt+2")
    await expect(page.locator("#nav a[aria-current=page]")).to_have_text("Staff")
    await expect(page.locator("#view-staff-title")).to_be_visible()
    # The skip link moves the focus to the screen without leaving it.
    await page.locator(".skip-link").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#main")).to_be_focused()
    await expect(page.locator("#nav a[aria-current=page]")).to_have_text("Staff")
    await page.keyboard.press("Alt+1")
    await expect(page.locator("#view-roster-title")).to_be_visible()

    # The language switch redraws the shell and the screen in Swedish, and back.
    await page.select_option("#lang", "sv")
    await expect(page.locator("#nav a").first).to_have_text("Schema")
    await expect(page.locator("#view-roster-title")).to_have_text("Schema")
    await expect(page.locator("html")).to_have_attribute("lang", "sv")
    await page.select_option("#lang", "en")
    await expect(page.locator("#view-roster-title")).to_have_text("Roster")

    # Signing out ends the session on the server, not just on the screen.
    await page.click("#signout")
    await expect(page.locator("form.signin-form")).to_be_visible()
    me = await page.request.get(f"{server.url}/api/staff/me")
    assert me.status == 401


async def test_an_expired_session_asks_to_sign_in_again_over_the_screen(
    server: RunningServer, page: Page, context: BrowserContext
) -> None:
    # The week the page opens on is this one (read before it loads, as the page reads it).
    today = local_now().date()
    await sign_in_console(page, server, "cora", PASSWORD)
    await expect(page.locator("#roster-week .day")).to_have_count(7)
    # Something typed on the screen must survive the new sign-in.
    await page.fill("#extra-form input[name=name]", "Typed before")
    await page.evaluate("document.getElementById('view-roster').dataset.marker = 'same'")

    await context.clear_cookies()  # as when the session ends on the server
    await page.click("#roster-next")
    dialog = page.locator("#signin-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("h2")).to_have_text("Your session has ended")
    await assert_accessible(page, "session-expired")
    await expect(dialog.locator("input[name=username]")).to_have_value("cora")
    await dialog.locator("input[name=password]").fill(PASSWORD)
    await dialog.locator("input[name=code]").fill(await fresh_code("cora"))
    await dialog.locator("button[type=submit]").click()
    await expect(dialog).to_be_hidden()
    # The request that met the expired session went through afterwards; nothing was unloaded.
    next_monday = today + timedelta(days=7 - today.weekday())
    await expect(page.locator("#roster-week-title")).to_contain_text(
        f"{next_monday.day} {next_monday.strftime('%B')}"
    )
    await expect(page.locator("#view-roster")).to_have_attribute("data-marker", "same")
    await expect(page.locator("#extra-form input[name=name]")).to_have_value("Typed before")


# Roster ---------------------------------------------------------------------------------------


async def test_a_coordinator_fills_a_gap_and_the_counsellor_is_offered_chats_in_that_shift(
    server: RunningServer, page: Page, context: BrowserContext, cora: SignedIn
) -> None:
    created = await api(
        server,
        cora,
        "POST",
        "/api/roster/lines/support/patterns",
        json={
            "name": "Evening",
            "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "start": "18:00",
            "end": "21:00",
            "needed": 1,
        },
    )
    assert created.status_code == 201, created.text

    await sign_in_console(page, server, "cora", PASSWORD)
    await page.click("#roster-next")
    week = page.locator("#roster-week")
    await expect(week.locator(".occurrence")).to_have_count(7)
    await expect(week.locator(".occurrence[data-status=gap]")).to_have_count(7)
    await expect(page.locator("#roster-totals")).to_contain_text("7 shifts with gaps")
    # Hour by hour: every evening hour (18–21, seven days) is a gap.
    cover = page.locator("#roster-coverage svg rect.cover")
    await expect(cover).to_have_count(168)
    await expect(page.locator("#roster-coverage rect.cover.gap")).to_have_count(21)
    await assert_accessible(page, "roster")

    # Next week's Wednesday evening has nobody: Anna takes it.
    gap = week.locator(".occurrence").nth(2)
    key = await gap.get_attribute("data-key")
    assert key is not None
    await gap.locator("select[name=staff_id]").select_option(label="Anna")
    await gap.locator("button[type=submit]").click()
    filled = week.locator(f'.occurrence[data-key="{key}"]')
    await expect(filled).to_have_attribute("data-status", "covered")
    await expect(filled.locator(".occ-staff")).to_contain_text("Anna")
    await expect(week.locator(".occurrence[data-status=gap]")).to_have_count(6)
    await expect(page.locator("#roster-coverage rect.cover.gap")).to_have_count(18)
    await expect(page.locator("#roster-coverage rect.cover.covered")).to_have_count(3)
    saved = await api(
        server,
        cora,
        "GET",
        "/api/roster/lines/support/week",
        params={"date": (local_now().date() + timedelta(days=7)).isoformat()},
    )
    wednesday = next(o for o in saved.json()["occurrences"] if o["key"] == key)
    assert [s["alias"] for s in wednesday["staff"]] == ["Anna"]

    # A shift now, added and filled in the console: Anna is then offered chats during it.
    shift = around_now(5, 120)
    await page.click("#roster-this")
    extra = page.locator("#extra-form")
    await extra.locator("input[name=name]").fill("Right now")
    await extra.locator("input[name=date]").fill(shift["date"])
    await extra.locator("input[name=start]").fill(shift["start"])
    await extra.locator("input[name=end]").fill(
        shift["end"] if shift["end"] != "24:00" else "23:59"
    )
    if shift["ends_next_day"]:
        await extra.locator("input[name=ends_next_day]").check()
    await extra.locator("button[type=submit]").click()
    now_card = week.locator(".occurrence", has_text="Right now")
    await expect(now_card).to_have_attribute("data-status", "gap")
    await now_card.locator("select[name=staff_id]").select_option(label="Anna")
    await now_card.locator(".assign-form button[type=submit]").click()
    await expect(now_card).to_have_attribute("data-status", "covered")

    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await open_visitor(server)
    try:
        await visitor.start("support")
        offer = await anna.expect("offer")
        assert offer["chat_id"] == visitor.chat_id
        await anna.accept(visitor.chat_id)
        await visitor.expect("counsellor.joined")
        await visitor.send({"type": "end"})
        await anna.expect("chat.ended")
    finally:
        await visitor.close()
        await anna.close()

    # The extra shift turns out to need two: changed on its card, Anna stays on it. A move
    # into the past is refused next to the form, and changes nothing.
    editor = now_card.locator("details.extra-edit")
    await editor.locator("summary").click()
    await expect(editor.locator("input[name=name]")).to_have_value("Right now")
    await editor.locator("input[name=needed]").fill("2")
    await editor.locator("button[type=submit]").click()
    await expect(now_card).to_have_attribute("data-status", "gap")
    await expect(now_card.locator(".occ-count")).to_contain_text("1 of 2")
    await expect(now_card.locator(".occ-staff")).to_contain_text("Anna")
    editor = now_card.locator("details.extra-edit")
    await editor.locator("summary").click()
    yesterday = (local_now().date() - timedelta(days=1)).isoformat()
    await editor.locator("input[name=date]").fill(yesterday)
    await editor.locator("button[type=submit]").click()
    await expect(editor.locator(".form-error")).to_contain_text("already be over")
    await assert_accessible(page, "roster-extra-edit")

    # On a tablet the week folds into two columns and still works.
    await page.set_viewport_size(TABLET)
    await expect(week.locator(".day")).to_have_count(7)
    await assert_accessible(page, "roster-tablet")
    await page.set_viewport_size(DESKTOP)

    # Taking Anna off next week's shift opens the gap again.
    await page.click("#roster-next")
    await week.locator(f'.occurrence[data-key="{key}"] .occ-staff button').click()
    confirm = page.locator("dialog.confirm-dialog")
    if await confirm.count():
        await confirm.locator("button").first.click()
    await expect(week.locator(f'.occurrence[data-key="{key}"]')).to_have_attribute(
        "data-status", "gap"
    )


# Staff and enrolment ---------------------------------------------------------------------------


async def test_an_invited_counsellor_enrols_in_the_browser_and_signs_in(
    server: RunningServer, page: Page, browser: Browser
) -> None:
    await sign_in_console(page, server, "cora", PASSWORD)
    await page.click("#nav-staff")
    await expect(page.locator("#staff-list tbody tr")).to_have_count(5)
    await assert_accessible(page, "staff")

    await page.click("#staff-invite")
    form = page.locator("form.staff-form")
    await form.locator("input[name=username]").fill("anna")
    await form.locator("input[name=alias]").fill("Nora")
    await form.locator("select[name=qualification]").select_option("volunteer")
    await form.locator("label", has_text="Youth").click()
    await form.locator("button[type=submit]").click()
    # The username is taken: the server says so next to the field.
    username_error = form.locator("[data-field=username] .field-error")
    await expect(username_error).to_contain_text("already exists")
    await expect(form.locator("input[name=username]")).to_have_attribute("aria-invalid", "true")
    await assert_accessible(page, "staff-invite-error")

    await form.locator("input[name=username]").fill("nora")
    await form.locator("button[type=submit]").click()
    link_field = page.locator("#enrolment-link")
    await expect(link_field).to_be_visible()
    link = await link_field.input_value()
    assert re.fullmatch(re.escape(server.url) + r"/enrol#[A-Za-z0-9_-]{20,}", link), link
    await expect(page.locator("#staff-list tr[data-staff=nora]")).to_contain_text(
        "not enrolled yet"
    )
    await screenshot(page, "console-staff-invited")

    # Nora opens the link on her own device.
    nora_context = await browser.new_context(viewport=DESKTOP, locale="sv-SE")
    try:
        nora = await nora_context.new_page()
        async with nora.expect_response("**/api/enrolment/totp") as totp_response:
            await nora.goto(link)
        setup: dict[str, Any] = await (await totp_response.value).json()
        qr = nora.locator("img.qr")
        await expect(qr).to_be_visible()
        assert (await qr.get_attribute("src") or "").startswith("data:image/png;base64,")
        secret = (await nora.locator("#totp-secret").inner_text()).strip()
        assert secret == setup["secret"]
        assert f"secret={secret}" in setup["otpauth_uri"]
        # The token has left the address bar (and the history).
        assert "#" not in nora.url
        await assert_accessible(nora, "enrol")

        enrol = nora.locator("form.enrol-form")
        await enrol.locator("input[name=password]").fill("password1234")
        await enrol.locator("input[name=password_again]").fill("password1234")
        await enrol.locator("input[name=code]").fill(pyotp.TOTP(secret).now())
        await enrol.locator("button[type=submit]").click()
        refused = enrol.locator("[data-field=password] .field-error")
        await expect(refused).to_contain_text("password refused")
        await screenshot(nora, "console-enrol-error")

        new_password = "lantern quietly over seven harbours"
        await enrol.locator("input[name=password]").fill(new_password)
        await enrol.locator("input[name=password_again]").fill(new_password)
        await enrol.locator("input[name=code]").fill(pyotp.TOTP(secret).now())
        await enrol.locator("button[type=submit]").click()
        codes = nora.locator("ol.recovery-codes li")
        await expect(codes).to_have_count(10)
        await assert_accessible(nora, "enrol-done")
        # Switching the language keeps the codes on the screen (they are not shown again).
        shown = await codes.all_inner_texts()
        await nora.select_option("#lang", "en")
        await expect(nora.locator("h2")).to_have_text("Recovery codes")
        assert await codes.all_inner_texts() == shown

        # She signs in with her new password and a later code of her app.
        TOTP_SECRETS["nora"] = secret
        code_used_now(secret)
        await sign_in_console(nora, server, "nora", new_password)
        # The language chosen on the enrolment page stays for the tab.
        await expect(nora.locator("#nav a", has_text="My shifts")).to_be_visible()
        await nora.click("#nav-me")
        await expect(nora.locator("#view-me-title")).to_have_text("My shifts")
        await expect(nora.locator("#me-calendar-title")).to_be_visible()
        await assert_accessible(nora, "me-counsellor")
        await nora.click("#calendar-create")
        calendar_url = await nora.locator("#calendar-url").input_value()
        assert calendar_url.startswith(f"{server.url}/calendar/") and calendar_url.endswith(".ics")
        feed = await nora.request.get(calendar_url)
        assert feed.status == 200
        await nora.click("#calendar-revoke")
        await expect(nora.locator("#me-notice")).to_contain_text("no longer works")
        assert (await nora.request.get(calendar_url)).status == 404
    finally:
        await nora_context.close()

    await page.reload()
    await expect(page.locator("#staff-list tr[data-staff=nora] .tag.full")).to_have_text("active")


async def test_staff_are_edited_deactivated_and_reset(
    server: RunningServer, page: Page, cora: SignedIn
) -> None:
    await sign_in_console(page, server, "cora", PASSWORD)
    await open_view(page, server, "staff")
    row = page.locator("#staff-list tr[data-staff=anna]")
    await row.locator("button", has_text="Edit").click()
    form = page.locator("form.staff-form")
    await form.locator("input[name=capacity]").fill("9")
    await form.locator("input[name=languages]").fill("sv, en, ar")
    await form.locator("input[name=is_supervisor]").check()
    await form.locator("button[type=submit]").click()
    await expect(form.locator("[data-field=capacity] .field-error")).to_be_visible()
    await form.locator("input[name=capacity]").fill("3")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#staff-notice")).to_contain_text("Saved")
    await expect(row).to_contain_text("supervisor")
    people = (await api(server, cora, "GET", "/api/staff")).json()
    anna = next(p for p in people if p["username"] == "anna")
    assert (anna["capacity"], anna["languages"], anna["is_supervisor"]) == (
        3,
        ["sv", "en", "ar"],
        True,
    )

    await row.locator("button", has_text="Deactivate").click()
    await page.locator("dialog.confirm-dialog button.danger").click()
    await expect(row).to_contain_text("deactivated")
    await row.locator("button", has_text="Reactivate").click()
    await expect(row.locator(".tag.full")).to_have_text("active")

    # Finding someone among many: by name, and without the deactivated.
    await page.fill("#staff-search", "ann")
    await expect(page.locator("#staff-list tbody tr")).to_have_count(1)
    await page.fill("#staff-search", "")
    await row.locator("button", has_text="Reset").click()
    await page.check("#reset-totp")
    await page.locator("#staff-panel button[type=submit]").click()
    await expect(page.locator("#enrolment-link")).to_be_visible()
    await expect(row).to_contain_text("not enrolled yet")


async def test_the_enrolment_page_explains_a_missing_or_spent_link(
    server: RunningServer, page: Page
) -> None:
    await page.goto(f"{server.url}/enrol")
    await expect(page.locator("[role=alert]")).to_contain_text("Open the whole link again")
    await page.goto(f"{server.url}/enrol#{'x' * 43}")
    await expect(page.locator("[role=alert]")).to_contain_text("expired or has been used")
    await assert_accessible(page, "enrol-spent")


# Lines ----------------------------------------------------------------------------------------


async def test_a_line_chosen_while_the_first_still_loads_keeps_its_own_settings(
    server: RunningServer, page: Page
) -> None:
    # The first line's settings answer late, only once the line chosen next is shown.
    async with late_answers(page, "**/api/lines/*/settings", "/api/lines/youth/") as late:
        await sign_in_console(page, server, "cora", PASSWORD)
        await open_view(page, server, "lines")
        await page.select_option("#lines-line", "youth")
        title = page.locator("#line-form-title")
        await expect(title).to_contain_text("(youth)")
        await late.arrive()
        await expect(title).to_contain_text("(youth)")
        await expect(page.locator("#lines-line")).to_have_value("youth")


async def test_line_settings_show_the_servers_errors_next_to_the_fields(
    server: RunningServer, page: Page, cora: SignedIn
) -> None:
    await sign_in_console(page, server, "cora", PASSWORD)
    await open_view(page, server, "lines")
    form = page.locator("form.line-form")
    await expect(form.locator("input[name=name]")).to_have_value("Support")
    await assert_accessible(page, "lines")

    await form.locator("input[name=offer_timeout_seconds]").fill("1")
    await form.locator("input[name=max_message_length]").fill("0")
    await form.locator("button[type=submit]").click()
    timeout_error = form.locator("[data-field=offer_timeout_seconds] .field-error")
    await expect(timeout_error).to_have_text("Must be at least 2.")
    length_error = form.locator("[data-field=max_message_length] .field-error")
    await expect(length_error).to_have_text("Must be at least 1.")
    await expect(form.locator("input[name=offer_timeout_seconds]")).to_have_attribute(
        "aria-invalid", "true"
    )
    await assert_accessible(page, "lines-errors")

    # A language code the server refuses: the error lands by the languages field.
    await form.locator("input[name=offer_timeout_seconds]").fill("45")
    await form.locator("input[name=max_message_length]").fill("2000")
    await form.locator("textarea[name='closed_message.en']").fill("Closed now.")
    await form.locator("input[name=languages]").fill("sv, en, Not a language")
    await form.locator("input[name=languages]").press("Tab")
    await form.locator("button[type=submit]").click()
    await expect(form.locator("[data-field=languages] .field-error")).to_be_visible()

    await form.locator("input[name=languages]").fill("sv, en")
    await form.locator("input[name=languages]").press("Tab")
    await form.locator("input[name='privacy_note.sv']").fill("Vi sparar inget om dig.")
    await page.click("#canned-add")
    await form.locator("input[name='canned_responses.0.title']").fill("Välkommen")
    await form.locator("textarea[name='canned_responses.0.text']").fill("Hej, jag heter …")
    await form.locator("textarea[name=wrapup_topics]").fill("violence\nhealth\nmoney")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#lines-notice")).to_contain_text("Saved the settings of Support")

    saved = (await api(server, cora, "GET", "/api/lines/support/settings")).json()
    assert saved["offer_timeout_seconds"] == 45
    assert saved["closed_message"]["en"] == "Closed now."
    assert saved["privacy_note"] == {"sv": "Vi sparar inget om dig."}
    assert saved["canned_responses"] == [
        {"language": "sv", "title": "Välkommen", "text": "Hej, jag heter …"}
    ]
    assert saved["wrapup_topics"] == ["violence", "health", "money"]

    # A new line: a key the server refuses is said by the key field.
    await page.click("#lines-new")
    new = page.locator("form[aria-labelledby=new-line-title]")
    await new.locator("input[name=key]").fill("Night Line")
    await new.locator("input[name=name]").fill("Night")
    await new.locator("button[type=submit]").click()
    await expect(new.locator("[data-field=key] .field-error")).to_be_visible()
    await new.locator("input[name=key]").fill("night")
    await new.locator("button[type=submit]").click()
    await expect(page.locator("#lines-notice")).to_contain_text("Night")
    await expect(page.locator("#lines-line")).to_have_value("night")
    await expect(page.locator("form.line-form input[name=name]")).to_have_value("Night")


# My shifts -------------------------------------------------------------------------------------


async def test_a_counsellor_signs_up_and_asks_to_drop_and_the_coordinator_approves(
    server: RunningServer, browser: Browser, page: Page, cora: SignedIn
) -> None:
    signup = await api(server, cora, "PATCH", "/api/roster/lines/youth", json={"signup": True})
    assert signup.status_code == 200, signup.text
    tomorrow = local_now().date() + timedelta(days=1)
    created = await api(
        server,
        cora,
        "POST",
        "/api/roster/lines/youth/extra-shifts",
        json={"name": "Tomorrow", "date": tomorrow.isoformat(), "start": "18:00", "end": "21:00"},
    )
    assert created.status_code == 201, created.text

    vera_context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    try:
        vera = await vera_context.new_page()
        await sign_in_console(vera, server, "vera", PASSWORD)
        await vera.click("#nav-me")
        open_places = vera.locator("section[aria-labelledby=me-open-title] li")
        await expect(open_places).to_have_count(1)
        await expect(open_places.first).to_contain_text("1 open")
        await open_places.first.locator("button", has_text="Sign up").click()
        await expect(vera.locator("#me-notice")).to_contain_text("You are on the shift")
        mine = vera.locator("section[aria-labelledby=me-shifts-title] li")
        await expect(mine).to_have_count(1)
        await expect(open_places).to_have_count(0)

        await mine.first.locator("button", has_text="Ask to drop").click()
        await mine.first.locator("input[name=note]").fill("Exam the next day")
        await mine.first.locator("button[type=submit]").click()
        await expect(mine.first).to_contain_text("wants to drop")
        await assert_accessible(vera, "me-shifts")
        # She changes her mind, then asks again.
        await mine.first.locator("button", has_text="Withdraw the request").click()
        await expect(vera.locator("#me-notice")).to_contain_text("withdrawn")
        await expect(mine.first).not_to_contain_text("wants to drop")
        await mine.first.locator("button", has_text="Ask to drop").click()
        await mine.first.locator("input[name=note]").fill("Exam the next day")
        await mine.first.locator("button[type=submit]").click()
        await expect(mine.first).to_contain_text("wants to drop")
    finally:
        await vera_context.close()

    # The drop requests of the line shown first answer late, only once the line chosen next
    # has shown its own (a slow network): the late answer must not be drawn under the chosen
    # line's name.
    async with late_answers(page, "**/api/roster/drop-requests?line=*", "line=youth") as late:
        await sign_in_console(page, server, "cora", PASSWORD)
        await page.select_option("#roster-line", "youth")
        await page.fill("#roster-day", tomorrow.isoformat())  # tomorrow may be in next week
        drop = page.locator("section[aria-labelledby=drops-title] tbody tr")
        await expect(drop).to_have_count(1)
        await late.arrive()
        await expect(drop).to_have_count(1)
        await expect(drop).to_contain_text("Exam the next day")
    await expect(page.locator("#roster-week .occurrence", has_text="Tomorrow")).to_contain_text(
        "wants to drop"
    )
    await drop.locator("button", has_text="Approve").click()
    await expect(drop).to_have_count(0)
    tomorrow_card = page.locator("#roster-week .occurrence", has_text="Tomorrow")
    await expect(tomorrow_card).to_have_attribute("data-status", "gap")


# Statistics -----------------------------------------------------------------------------------


async def make_chats(server: RunningServer, answered: int, abandoned: int) -> list[str]:
    """Real chats on the support line, answered by Bo; `abandoned` visitors leave the queue
    while Bo is busy with two others (so `answered` must be at least 2 when some leave)."""
    bo = await open_staff(server, "bo", PASSWORD)
    ids: list[str] = []
    open_chats: list[VisitorClient] = []

    async def answer() -> None:
        visitor = await open_visitor(server)
        await visitor.start("support")
        await bo.accept((await bo.expect("offer", chat_id=visitor.chat_id))["chat_id"])
        await visitor.say("hej")
        open_chats.append(visitor)
        ids.append(visitor.chat_id)

    async def finish(visitor: VisitorClient) -> None:
        await visitor.send({"type": "end"})
        await visitor.expect("chat.ended")
        await visitor.close()
        await bo.expect("wrapup.required", chat_id=visitor.chat_id)
        wrapup = {"chat_id": visitor.chat_id, "topics": ["health"], "outcome": "support given"}
        await bo.send({"type": "wrapup", **wrapup})
        await bo.expect("wrapup.saved", chat_id=visitor.chat_id)

    try:
        for _ in range(answered - 2 if abandoned else answered):
            await answer()
            await finish(open_chats.pop())
        if abandoned:
            # Bo at his capacity of two: the next visitors wait in the queue, then give up.
            await answer()
            await answer()
            for _ in range(abandoned):
                visitor = await open_visitor(server)
                await visitor.start("support")
                await visitor.expect("queue.position")
                await visitor.send({"type": "end"})
                await visitor.expect("chat.ended")
                await visitor.close()
            for visitor in list(open_chats):
                await finish(visitor)
    finally:
        for visitor in open_chats:
            await visitor.close()
        await bo.close()
    return ids


async def test_statistics_charts_render_from_real_chats(
    server: RunningServer, page: Page, cora: SignedIn
) -> None:
    await written(server.runtime)  # earlier tests' chats on this server, as once their hour is over
    before = (await api(server, cora, "GET", "/api/stats/lines/support/demand")).json()
    await make_chats(server, answered=3, abandoned=2)
    wanted = before["totals"]["requested"] + 5

    async def recorded() -> bool:
        # As once the hour is over: its batch of rows is written.
        await written(server.runtime)
        demand = (await api(server, cora, "GET", "/api/stats/lines/support/demand")).json()
        return bool(demand["totals"]["requested"] >= wanted)

    # Statistics rows are held until their hour is over: write the batch.
    await eventually(recorded)

    await sign_in_console(page, server, "cora", PASSWORD)
    await open_view(page, server, "stats")
    await page.select_option("#stats-line", "support")
    totals = page.locator("#stats-totals")
    await expect(totals.locator(".stat-card").first).to_contain_text(str(wanted))
    heat = page.locator("#chart-demand svg rect.heat")
    await expect(heat).to_have_count(168)
    # The hour these chats started in is drawn darkest (an hour may turn mid-test: at least one).
    await expect(page.locator("#chart-demand svg rect.heat[data-level='5']")).not_to_have_count(0)
    await expect(page.locator("#chart-outcomes svg rect.bar.answered")).not_to_have_count(0)
    await expect(page.locator("#chart-outcomes svg rect.bar.abandoned")).not_to_have_count(0)
    await expect(page.locator("#chart-waits svg circle.median")).not_to_have_count(0)
    # The table alternative says the same in words: its hours add up to the total.
    await page.locator("#chart-demand summary").click()
    table = page.locator("#chart-demand table")
    await expect(table.locator("tbody tr").first).to_be_visible()
    requested = await table.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert sum(int(n) for n in requested) == wanted
    now = (await api(server, cora, "GET", "/api/stats/lines/support/demand")).json()["totals"]
    days = page.locator("#chart-outcomes table tbody tr")
    answered = await days.locator("td:nth-child(3)").all_text_contents()
    abandoned = await days.locator("td:nth-child(4)").all_text_contents()
    assert sum(int(n) for n in answered) == now["answered"] >= 3
    assert sum(int(n) for n in abandoned) == now["abandoned"] >= 2
    await assert_accessible(page, "stats")

    # A period that ends before it starts: the server's refusal is shown by the dates.
    await page.fill("#stats-from", "2026-03-10")
    await page.fill("#stats-to", "2026-03-01")
    await page.locator("#view-stats button[type=submit]").click()
    await expect(page.locator("#view-stats [data-field=to] .field-error")).to_contain_text("before")
    await page.fill("#stats-from", "")
    await page.fill("#stats-to", "")
    await page.locator("#view-stats button[type=submit]").click()
    await expect(page.locator("#view-stats .field-error")).to_have_count(0)

    href = await page.locator("#stats-export").get_attribute("href")
    assert href is not None and href.startswith("/api/stats/export.csv") and "line=support" in href
    csv = await page.request.get(f"{server.url}{href}")
    assert csv.status == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert "support" in await csv.text()


# Audit log ------------------------------------------------------------------------------------


async def test_the_audit_log_filters_by_action_staff_and_chat(
    server: RunningServer, page: Page, cora: SignedIn
) -> None:
    chat_ids = await make_chats(server, answered=2, abandoned=0)
    await written(server.runtime)  # as once the hour is over
    await sign_in_console(page, server, "cora", PASSWORD)
    await open_view(page, server, "audit")
    rows = page.locator("#audit-results tbody tr")
    await expect(rows.first).to_be_visible()
    await assert_accessible(page, "audit")

    form = page.locator("#view-audit form")
    await form.locator("select[name=action]").select_option("sign_in")
    await form.locator("select[name=staff_id]").select_option(label="Cora (cora)")
    await form.locator("button[type=submit]").click()
    others = page.locator("#audit-results tbody tr:not([data-action^=sign_in])")
    await expect(others).to_have_count(0)
    await expect(rows.first).to_have_attribute("data-action", re.compile(r"^sign_in"))
    await expect(rows.first).to_contain_text("cora")

    # One chat: only its entries, and its id went in the request body, not in a URL.
    await form.locator("button", has_text="Clear").click()
    await form.locator("input[name=chat_id]").fill(chat_ids[0])
    async with page.expect_request("**/api/audit/search") as searched:
        await form.locator("button[type=submit]").click()
    request = await searched.value
    assert chat_ids[0] not in request.url and chat_ids[0] in (request.post_data or "")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-action", "chat.accepted")
    await expect(rows.first).to_contain_text(chat_ids[0])

    # A malformed chat id is refused by the server and said next to the field.
    await form.locator("input[name=chat_id]").fill("no spaces allowed")
    await form.locator("button[type=submit]").click()
    await expect(form.locator("[data-field=chat_id] .field-error")).to_be_visible()


async def test_the_audit_log_names_lines_by_their_names(
    server: RunningServer, page: Page, cora: SignedIn
) -> None:
    await add_line(server.runtime, "evening", name="Kvällslinjen")
    changed = await api(server, cora, "PATCH", "/api/roster/lines/evening", json={"signup": True})
    assert changed.status_code == 200, changed.text
    # An entry about a line taken out since (no longer listed): it keeps its key.
    async with unit_of_work(server.runtime.sessionmaker) as session:
        await audit_service.record(
            session, AuditAction.roster_changed, actor_id=None, line_key="bygone"
        )
    await sign_in_console(page, server, "cora", PASSWORD)
    await open_view(page, server, "audit")
    form = page.locator("#view-audit form")
    await form.locator("select[name=action]").select_option("roster.changed")
    await form.locator("button[type=submit]").click()
    rows = page.locator("#audit-results tbody tr")
    # The line column is the fifth.
    await expect(rows.locator("td:nth-child(5)", has_text="Kvällslinjen")).to_have_count(1)
    await expect(rows.locator("td:nth-child(5)", has_text="bygone")).to_have_count(1)
    await expect(rows.locator("td:nth-child(5)", has_text=re.compile("^evening$"))).to_have_count(0)

    # The line filter names it too, and finds its entries.
    await form.locator("select[name=line]").select_option(label="Kvällslinjen")
    await form.locator("button[type=submit]").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator("td:nth-child(5)")).to_have_text("Kvällslinjen")


async def test_every_screen_is_complete_in_swedish(server: RunningServer, page: Page) -> None:
    await sign_in_console(page, server, "cora", PASSWORD)
    await page.select_option("#lang", "sv")
    for route, title, loaded in (
        ("roster", "Schema", "#roster-week .day"),
        ("staff", "Personal", "#staff-list tbody tr"),
        ("lines", "Linjer", "form.line-form"),
        ("stats", "Statistik", "#stats-totals"),
        ("audit", "Logg", "#audit-results tbody tr"),
        ("me", "Mitt konto", "#me-account-title"),
    ):
        await open_view(page, server, route)
        await expect(page.locator(f"#view-{route}-title")).to_have_text(title)
        # The screen's data has arrived before its words are read.
        await expect(page.locator(loaded).first).to_be_visible()
        # Words of the interface only: audit action names and details are data, not words.
        text = await page.evaluate(
            """() => {
                const copy = document.querySelector("main").cloneNode(true);
                copy.querySelectorAll("code, td.detail").forEach((el) => el.remove());
                return copy.textContent;
            }"""
        )
        # A missing translation shows its key (e.g. "roster.assign").
        keys = re.findall(r"\b(?:roster|staff|lines|stats|audit|me|common|nav)\.[a-z_.]+\b", text)
        assert keys == [], (route, keys)
        if route == "roster":
            await screenshot(page, "console-roster-sv")


async def test_a_screen_that_did_not_load_says_so_and_loads_on_try_again(
    server: RunningServer, page: Page
) -> None:
    await sign_in_console(page, server, "cora", PASSWORD)
    refused: list[str] = []

    async def drop_once(route: Route) -> None:
        # The network drops the screen's file once (a train tunnel, a refused request).
        if not refused:
            refused.append(route.request.url)
            await route.abort("internetdisconnected")
        else:
            await route.continue_()

    await page.route("**/console/static/views/stats.js*", drop_once)
    await page.click("#nav-stats")
    alert = page.locator("#view-stats [role=alert]")
    await expect(alert).to_have_text(
        "This screen could not be loaded. Check the connection and try again."
    )
    await page.get_by_role("button", name="Try again").click()
    await expect(page.locator("#stats-totals")).to_be_visible()
    await expect(alert).to_have_count(0)
    assert len(refused) == 1


async def test_an_admin_sees_the_deployment_settings_read_only(
    server: RunningServer, page: Page
) -> None:
    await sign_in_console(page, server, "ada", PASSWORD)
    await expect(page.locator("#nav a").last).to_have_text("My account")
    await page.click("#nav-deployment")
    row = page.locator("#deployment-body tr", has_text="LYKTA_TOTP_REQUIRED")
    await expect(row).to_contain_text("true")
    await expect(page.locator("#deployment-body")).not_to_contain_text("secret")
    assert await page.locator("#view-deployment input, #view-deployment button").count() == 0
    await assert_accessible(page, "deployment")
    # An admin may manage coordinators: their rows have actions; the admin's own has none.
    await page.click("#nav-staff")
    await expect(page.locator("#staff-list tr[data-staff=cora] button")).to_have_count(3)
    await expect(page.locator("#staff-list tr[data-staff=ada] button")).to_have_count(0)


async def test_someone_who_cannot_be_on_call_is_said_by_the_field_and_can_be_unticked(
    server: RunningServer, page: Page, cora: SignedIn
) -> None:
    rt = server.runtime
    otto = await add_counsellor(rt, "otto", alias="Otto", on_duty=False)
    # A list written around the API (a seeded line): Otto does not supervise chats.
    await add_line(rt, "weekend", name="Weekend", on_call=[otto])
    await sign_in_console(page, server, "cora", PASSWORD)
    await open_view(page, server, "lines")
    await page.select_option("#lines-line", "weekend")
    form = page.locator("form.line-form")
    await expect(form.locator("input[name=name]")).to_have_value("Weekend")
    on_call = form.locator("[data-field=on_call]")
    await expect(on_call.locator("label", has_text="Otto")).to_have_text(
        "Otto (cannot be on call: untick)"
    )
    await expect(on_call).not_to_contain_text("null")
    await form.locator("button[type=submit]").click()
    await expect(on_call.locator(".field-error")).to_have_text(
        "Otto does not supervise chats: only supervisors can be on call."
    )
    await assert_accessible(page, "lines-on-call-error")
    await on_call.get_by_label("Otto (cannot be on call: untick)").uncheck()
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#lines-notice")).to_contain_text("Saved the settings of Weekend")
    saved = (await api(server, cora, "GET", "/api/lines/weekend/settings")).json()
    assert saved["on_call"] == []
