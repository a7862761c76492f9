"""The mailbox in the console, in real Chromium against Lykta on 127.0.0.1: a letter a
visitor wrote (over the HTTP API) waits on the counsellor's queue card and in the mailbox
with its age; the counsellor claims it, reads it, answers with a canned response, adds a
staff-only note, sends a referral card and closes it with the wrap-up; a colleague cannot
open it; a coordinator hands it to that colleague, who then has it as theirs; the line form
saves the mailbox settings; the statistics show the mailbox's table.

One server and one browser for the module; the tests run in order and share the thread."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Locator, Page, ViewportSize, expect
from sqlalchemy import select

from app.kit.db import unit_of_work
from app.models.enums import StaffRole
from app.models.mailbox_thread import MailboxThread
from app.settings import Settings
from tests.conftest import FAST
from tests.support.browser import axe_violations, chromium, describe, screenshot
from tests.support.clients import api, sign_in_session
from tests.support.console import sign_in_console
from tests.support.held import written
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer, bound_socket, run_server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

LAPTOP: ViewportSize = {"width": 1280, "height": 800}
SHOTS = Path("/tmp/shots/mailbox-console")
LETTER = "I could not sleep again. He keeps my passport and I do not know who to ask."
CANNED = [
    {
        "language": "en",
        "title": "Hello",
        "text": "Hi, my name is {name}. Thank you for writing to us.",
    },
    {"language": "sv", "title": "Hej", "text": "Hej, jag heter {name}. Tack för att du skrev."},
]
SHARED: dict[str, Any] = {}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    path = tmp_path_factory.mktemp("mailbox-console") / "lykta.db"
    shutil.copy(sqlite_template, path)
    sock = bound_socket()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{path}",
        public_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
        sign_in_rate_per_minute=100,
        **FAST,
    )
    async with run_server(settings, sock=sock) as running:
        rt = running.runtime
        await add_line(rt, canned_responses=CANNED, mailbox="always")
        await add_counsellor(rt, "anna", alias="Anna")
        SHARED["bo"] = await add_counsellor(rt, "bo", alias="Bo", on_duty=False)
        await add_staff(rt, "cora", StaffRole.coordinator)
        cora = await sign_in_session(running, "cora", PASSWORD)
        created = await api(
            running,
            cora,
            "POST",
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
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


async def new_page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a context of its own; script errors on it fail the test."""
    context: BrowserContext = await browser.new_context(
        viewport=LAPTOP, locale="en-GB", timezone_id="Europe/Stockholm"
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == [], f"script errors on the page: {errors}"


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    async for running in new_page(browser):
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def other(browser: Browser) -> AsyncIterator[Page]:
    async for running in new_page(browser):
        yield running


async def look(page: Page, name: str) -> None:
    """Axe finds nothing, and the window as it is (1280×800) is saved for people to look at."""
    violations = await axe_violations(page)
    assert violations == [], f"{name}: {describe(violations)}"
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"))
    await screenshot(page, f"console-mailbox-{name}")


async def in_view(page: Page, target: Locator) -> None:
    """The element's box lies wholly inside the window as it is, without scrolling."""
    box = await target.bounding_box()
    assert box is not None, f"{target} is not shown"
    size = page.viewport_size
    assert size is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], (target, box)


async def visitor_reads(server: RunningServer, code: str) -> dict[str, Any]:
    read = await api(server, None, "POST", "/api/visitor/mailbox/read", json={"code": code})
    assert read.status_code == 200, read.text
    thread: dict[str, Any] = read.json()
    return thread


# Counsellors ------------------------------------------------------------------------------------


async def test_a_letter_waits_with_its_age_and_its_counsellor_answers_and_closes_it(
    server: RunningServer, page: Page
) -> None:
    written = await api(
        server,
        None,
        "POST",
        "/api/visitor/mailbox/threads",
        json={"line": "support", "language": "en", "text": LETTER},
    )
    assert written.status_code == 201, written.text
    code = written.json()["code"]
    SHARED["code"] = code
    # Written two days and three hours ago (at 3 in the morning, say): moved back in the
    # database, as the clock would have moved on.
    async with unit_of_work(server.runtime.sessionmaker) as session:
        back = timedelta(days=2, hours=3, minutes=5)
        (row,) = (await session.execute(select(MailboxThread))).scalars().all()
        assert row.waiting_since is not None
        row.created_at -= back
        row.last_at -= back
        row.waiting_since -= back

    await sign_in_console(page, server, "anna", PASSWORD)
    await expect(page.locator("#nav a > span:first-child")).to_have_text(
        ["Chats", "Mailbox", "My shifts"]
    )
    # The queue card says how many letters wait, and leads to the mailbox.
    card = page.locator('.queue-card[data-line="support"]')
    await expect(card.locator(".queue-mailbox")).to_have_text("1 letter waiting")
    await look(page, "queue-card-en")
    await card.locator(".queue-mailbox").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#view-mailbox-title")).to_be_visible()
    waiting = page.locator('.mailbox-line[data-line="support"] .mailbox-item.waiting')
    await expect(waiting).to_have_count(1)
    await expect(waiting.locator(".mailbox-age")).to_contain_text("waiting 2 days 3 h")
    await look(page, "waiting-en")

    # Claimed with the keyboard: the thread opens with the letter, ready to answer.
    await waiting.get_by_role("button", name="Claim").focus()
    await page.keyboard.press("Enter")
    thread = page.locator(".mailbox-thread")
    await expect(thread.locator(".entry.from-visitor .text")).to_have_text(LETTER)
    await expect(thread.locator("textarea[name=text]")).to_be_focused()
    await expect(waiting).to_have_count(0)
    mine = page.locator('.mailbox-line[data-line="support"] .mailbox-item.mine')
    await expect(mine).to_contain_text("Waiting for an answer")

    # Another visitor writes meanwhile: the queue frame's count brings the letter in at once
    # (long before the screen's own 30-second look).
    second = await api(
        server,
        None,
        "POST",
        "/api/visitor/mailbox/threads",
        json={"line": "support", "language": "sv", "text": "Hej. Jag vet inte var jag ska börja."},
    )
    assert second.status_code == 201, second.text
    # Within a few seconds even on a loaded machine; the screen's own look is 30 s away.
    await expect(waiting).to_have_count(1, timeout=15_000)
    await expect(waiting.locator(".mailbox-age")).to_contain_text("waiting 0 min")

    # A canned response, with the counsellor's name filled in, then a few words more.
    await thread.get_by_label("Canned response").select_option(label="Hello")
    await thread.get_by_role("button", name="Insert for editing").click()
    box = thread.locator("textarea[name=text]")
    await expect(box).to_have_value("Hi, my name is Anna. Thank you for writing to us.")
    await box.press("End")
    await box.type(" Your passport is yours: we can find out together how to get it back.")
    await in_view(page, box)
    await in_view(page, thread.get_by_role("button", name="Send answer"))
    await in_view(page, thread.get_by_role("button", name="Close with wrap-up…"))
    await box.press("Control+Enter")
    answered = thread.locator(".entry.from-staff .text")
    await expect(answered).to_contain_text("Hi, my name is Anna. Thank you for writing to us.")
    await expect(box).to_have_value("")
    await expect(mine).to_contain_text("Answered")

    # A staff-only note, marked as such, which the visitor never reads.
    await thread.locator(".note-box summary").click()
    await thread.get_by_label("Note for colleagues (staff only)").fill(
        "Passport: ask about the Migration Agency."
    )
    await thread.get_by_role("button", name="Save note").click()
    note = thread.locator(".entry.staff-only")
    await expect(note).to_contain_text("Passport: ask about the Migration Agency.")
    await expect(note.locator(".staff-only-tag")).to_have_text("Staff only")

    # A referral card from the directory, through the chat's own search.
    await thread.get_by_role("button", name="Referral").click()
    dialog = page.get_by_role("dialog", name="Find help for this visitor")
    await dialog.get_by_text("Help finding housing").wait_for()
    await dialog.get_by_role("button", name="Send to the visitor").click()
    await expect(dialog.get_by_role("button", name="Sent")).to_be_visible()
    await dialog.get_by_role("button", name="Close").click()
    await expect(thread.locator(".entry.referral")).to_contain_text("Bostadsjouren")

    read = await visitor_reads(server, code)
    assert [(m["from"], m["kind"]) for m in read["messages"]] == [
        ("visitor", "text"),
        ("counsellor", "text"),
        ("counsellor", "card"),
    ]
    assert read["messages"][1]["text"].startswith("Hi, my name is Anna.")
    assert "Passport: ask" not in str(read)
    await look(page, "thread-en")

    # The same screen in Swedish.
    await page.select_option("#lang", "sv")
    await expect(page.locator("#view-mailbox-title")).to_have_text("Brevlåda")
    await expect(page.locator(".mailbox-thread .staff-only-tag")).to_have_text("Bara personal")
    await in_view(page, page.locator(".mailbox-thread textarea[name=text]"))
    await look(page, "thread-sv")
    await page.select_option("#lang", "en")

    # Closed with the line's wrap-up.
    thread = page.locator(".mailbox-thread")
    await thread.get_by_role("button", name="Close with wrap-up…").click()
    await thread.get_by_role("button", name="Save wrap-up").click()
    await expect(thread.locator(".wrapup-form .field-error")).to_have_text("Choose an outcome.")
    await thread.get_by_label("housing").check()
    await thread.get_by_label("referred").check()
    await look(page, "wrapup-en")
    await thread.get_by_role("button", name="Save wrap-up").click()
    await expect(page.locator("#mailbox-notice")).to_contain_text(
        "Thread closed and its wrap-up saved."
    )
    await expect(mine).to_contain_text("Closed")
    assert (await visitor_reads(server, code))["status"] == "closed"


async def test_a_colleague_cannot_open_it_until_a_coordinator_hands_it_over(
    server: RunningServer, page: Page, other: Page
) -> None:
    await sign_in_console(other, server, "bo", PASSWORD)
    await other.locator("#nav a", has_text="Mailbox").click()
    anna = await sign_in_session(server, "anna", PASSWORD)
    (summary,) = (
        await api(server, anna, "GET", "/api/mailbox", params={"line": "support"})
    ).json()["mine"]
    # Bo sees the second letter, still waiting, and nothing of Anna's thread.
    line = other.locator('.mailbox-line[data-line="support"]')
    await expect(line.locator(".mailbox-item.waiting")).to_have_count(1)
    await expect(line.locator(f'[data-thread="{summary["id"]}"]')).to_have_count(0)
    await expect(line).to_contain_text("You have no thread here.")
    bo = await sign_in_session(server, "bo", PASSWORD)
    listed = await api(server, bo, "GET", "/api/mailbox", params={"line": "support"})
    assert listed.status_code == 200, listed.text
    assert listed.json()["mine"] == []
    assert summary["id"] not in [t["id"] for t in listed.json()["waiting"]]
    refused = await api(server, bo, "GET", f"/api/mailbox/{summary['id']}")
    assert refused.status_code == 403, refused.text

    # The coordinator sees the thread without its content and hands it to Bo.
    await sign_in_console(page, server, "cora", PASSWORD)
    await page.locator("#nav a", has_text="Lines").click()
    threads = page.locator("#line-mailbox-threads")
    row = threads.locator(f'tr[data-thread="{summary["id"]}"]')
    await expect(row).to_contain_text("Closed")
    await expect(row).to_contain_text("Anna")
    assert LETTER not in await threads.inner_text()
    await row.get_by_role("combobox").select_option(label="Bo")
    await threads.scroll_into_view_if_needed()
    await look(page, "handover-en")
    await row.get_by_role("button", name="Hand over").click()
    await expect(threads.locator(".handover-status")).to_have_text("Handed to Bo.")
    await expect(row).to_contain_text("Bo")

    # Bo has it as his now, and opens it.
    await other.reload()
    await other.locator("#nav a", has_text="Mailbox").click()
    mine = other.locator('.mailbox-line[data-line="support"] .mailbox-item.mine')
    await expect(mine).to_have_count(1)
    await mine.get_by_role("button").click()
    await expect(other.locator(".mailbox-thread .entry.from-visitor .text")).to_have_text(LETTER)
    await expect(other.locator(".mailbox-thread .entry.staff-only")).to_contain_text(
        "Passport: ask"
    )


# Coordinators -----------------------------------------------------------------------------------


async def test_the_line_form_saves_the_mailbox_settings(server: RunningServer, page: Page) -> None:
    await sign_in_console(page, server, "cora", PASSWORD)
    await page.locator("#nav a", has_text="Lines").click()
    form = page.locator("form.line-form")
    box = form.locator("#line-mailbox")
    await expect(box.get_by_label("Visitors may write")).to_have_value("always")
    await box.get_by_label("Visitors may write").select_option(
        label="Only while the line is closed"
    )
    days = box.get_by_label("Keep a thread (days)")
    await days.fill("61")
    await box.locator('input[name="mailbox_answer_time.en"]').fill(
        "We usually answer within two days."
    )
    await box.locator('input[name="mailbox_answer_time.sv"]').fill(
        "Vi svarar oftast inom två dagar."
    )
    await form.get_by_role("button", name="Save").click()
    # Refused next to the field, in words, and nothing saved.
    await expect(days).to_have_attribute("aria-invalid", "true")
    await expect(box.locator(".field-error")).to_contain_text("60")
    await look(page, "line-form-refused-en")
    await days.fill("30")
    await form.get_by_role("button", name="Save").click()
    await expect(page.locator("#lines-notice")).to_have_text("Saved the settings of Support.")
    cora = await sign_in_session(server, "cora", PASSWORD)
    saved = (await api(server, cora, "GET", "/api/lines/support/settings")).json()
    assert saved["mailbox"] == "closed"
    assert saved["mailbox_retention_days"] == 30
    assert saved["mailbox_answer_time"] == {
        "en": "We usually answer within two days.",
        "sv": "Vi svarar oftast inom två dagar.",
    }
    await page.select_option("#lang", "sv")
    await expect(page.locator("#line-mailbox h3")).to_have_text("Brevlåda")
    await page.locator("#line-mailbox").scroll_into_view_if_needed()
    await look(page, "line-form-sv")


async def test_the_statistics_show_the_mailbox_by_week(server: RunningServer, page: Page) -> None:
    # The answered thread's anonymous row is written once its hour is over.
    await written(server.runtime, at_least=1)
    await sign_in_console(page, server, "cora", PASSWORD)
    await page.locator("#nav a", has_text="Statistics").click()
    chart = page.locator("#chart-mailbox")
    await expect(chart.locator("h2")).to_have_text("Mailbox: threads and first answers by week")
    await chart.get_by_text("Show as a table").click()
    table = chart.locator("table")
    await expect(table.locator("thead th")).to_have_text(
        ["Week", "Threads", "Median time to first answer"]
    )
    # The week of the letter written two days before: one thread, answered, but its median
    # (its own time to a first answer) is kept back under the small count, 3.
    week = table.locator("tbody tr").filter(has=page.locator("td", has_text=re.compile(r"^1$")))
    await expect(week).to_have_count(1)
    await expect(week.locator("td").last).to_have_text("—")
    await expect(chart.locator("#chart-mailbox-desc")).to_contain_text("1 thread in the period.")
    await expect(chart.locator("#chart-mailbox-desc")).to_contain_text(
        "A week's median shows once at least 3 of its threads are answered."
    )
    await chart.scroll_into_view_if_needed()
    await look(page, "statistics-en")
    await page.select_option("#lang", "sv")
    chart = page.locator("#chart-mailbox")
    await expect(chart.locator("h2")).to_have_text("Brevlåda: trådar och första svar per vecka")
    await chart.scroll_into_view_if_needed()
    await look(page, "statistics-sv")
