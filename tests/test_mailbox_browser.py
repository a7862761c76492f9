"""The visitor's mailbox in real Chromium against real uvicorn: a visitor writes while the
line is closed and keeps the code (copy, and the "I have saved it" step); a day later a
counsellor finds the letter in her console, claims it and answers; in a fresh browser the
visitor reads the answer with the code, writes again and deletes the thread, after which
nothing of it is left in SQL, the broker or the logs. A wrong code, quick exit from the
thread, axe-core on every view, screenshots at 390×844 in Swedish and Arabic; and the
widget's pure helpers."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect
from sqlalchemy import select

from app.kit.db import unit_of_work
from app.models import MailboxMessage, MailboxThread
from app.settings import Settings
from tests.support.browser import axe_violations, chromium, describe
from tests.support.console import sign_in_console
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer, bound_socket, run_server
from tests.test_widget_browser import open_launcher, serve_host

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots/mailbox-widget")
PHONE: ViewportSize = {"width": 390, "height": 844}
DESK: ViewportSize = {"width": 1280, "height": 800}
ANSWER_TIME = {
    "sv": "Vi svarar oftast inom två dagar.",
    "en": "We usually answer within two days.",
    "ar": "نرد عادةً خلال يومين.",
}


@pytest.fixture(scope="module", autouse=True)
def shots_folder() -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)


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


async def closed_line(server: RunningServer) -> None:
    """The support line, nobody on duty (closed), its mailbox open while it is closed."""
    await add_line(
        server.runtime,
        languages=["sv", "en", "ar"],
        max_message_length=300,
        mailbox="closed",
        mailbox_answer_time=ANSWER_TIME,
        mailbox_retention_days=14,
    )
    await add_counsellor(server.runtime, "anna", alias="Anna", on_duty=False)


async def visitor(browser: Browser, server: RunningServer, lang: str, **extra: Any) -> Page:
    """A fresh browser context (nothing shared with any other), on a phone."""
    context = await browser.new_context(viewport=PHONE, **extra)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    exit_to = f"http://localhost:{server.port}/widget/icon.svg"
    await page.goto(f"{server.url}/chat/support?lang={lang}&exit={exit_to}")
    await page.locator("#view-intro:not([hidden]), #view-closed:not([hidden])").wait_for()
    return page


async def look(page: Page, name: str) -> None:
    """axe-core finds nothing; a screenshot from the top, for people to look at."""
    violations = await axe_violations(page)
    assert violations == [], f"{name}: {describe(violations)}"
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def kept_by_browser(page: Page) -> str:
    """Everything the page could have left in the browser or its address."""
    kept: str = await page.evaluate(
        "JSON.stringify([localStorage, sessionStorage]) + document.cookie + location.href"
    )
    return kept


async def status_text(page: Page) -> str:
    return ((await page.locator("#mb-state").text_content()) or "").strip()


async def a_day_passes(server: RunningServer) -> None:
    """Every thread's times move back a day, as if the visitor wrote yesterday."""
    day = timedelta(days=1)
    async with unit_of_work(server.runtime.sessionmaker) as session:
        for thread in (await session.scalars(select(MailboxThread))).all():
            thread.created_at -= day
            thread.last_at -= day
            if thread.waiting_since is not None:
                thread.waiting_since -= day
        for message in (await session.scalars(select(MailboxMessage))).all():
            message.at -= day


async def test_a_visitor_writes_while_closed_and_reads_the_answer_with_the_code(
    browser: Browser, settings_for: Callable[..., Settings], capfd: pytest.CaptureFixture[str]
) -> None:
    async with serving(settings_for) as server:
        await closed_line(server)
        said = f"Jag vet inte var jag ska börja <b>{secrets.token_hex(4)}</b>"

        # Three in the morning, the line closed: "Write to us" is the way in.
        page = await visitor(
            browser, server, "sv", permissions=["clipboard-write", "clipboard-read"]
        )
        await page.get_by_role("heading", name="Chatten är stängd just nu", exact=True).wait_for()
        await look(page, "sv-1-closed")
        await page.get_by_role("button", name="Skriv till oss").click()
        await page.get_by_role("heading", name="Skriv till oss", exact=True).wait_for()
        assert await page.evaluate("document.activeElement.id") == "mb-heading"
        await page.get_by_text(ANSWER_TIME["sv"]).wait_for()
        await page.get_by_text("raderas 14 dagar efter").wait_for()
        box = page.locator("#view-mailbox").get_by_label("Ditt meddelande")
        await box.fill("x" * 301)
        await page.get_by_text("1 tecken för långt").wait_for()
        await page.get_by_role("button", name="Skicka").click()
        assert await page.locator("#mb-code").count() == 0, "an over-long message was sent"
        await box.fill(said)
        await page.get_by_text(f"{len(said)} av 300 tecken").wait_for()
        await look(page, "sv-2-write")
        await page.get_by_role("button", name="Skicka").click()

        # The code, once: copied, and kept only after "I have saved my code".
        await page.get_by_role("heading", name="Din brevlådekod", exact=True).wait_for()
        code = ((await page.locator("#mb-code").text_content()) or "").strip()
        assert len(code.split()) == 5, code
        await page.get_by_role("button", name="Kopiera koden").click()
        await page.get_by_text("Kopierad.").wait_for()
        assert await page.evaluate("navigator.clipboard.readText()") == code
        await page.get_by_role("button", name="Fortsätt").click()
        await page.get_by_role("alert").get_by_text("Koden kan inte visas igen").wait_for()
        assert await page.evaluate("document.activeElement.id") == "mb-saved"
        assert await page.locator("#mb-code").text_content() == code, "the code left unsaved"
        await look(page, "sv-3-code")
        for word in code.split():
            assert word not in await kept_by_browser(page)
        await page.get_by_label("Jag har sparat min kod").check()
        await page.get_by_role("button", name="Fortsätt").click()
        await page.get_by_role("heading", name="Ditt samtal", exact=True).wait_for()
        assert await status_text(page) == "Väntar på svar."
        await page.locator("#mb-log .msg.visitor").get_by_text(said).wait_for()
        assert code not in (await page.content())
        await page.get_by_role("button", name="Klar").click()
        await page.get_by_role("heading", name="Chatten är stängd just nu", exact=True).wait_for()
        assert page.errors == []  # type: ignore[attr-defined]
        await page.context.close()

        # A day later, Anna finds the letter in her console, claims it and answers.
        await a_day_passes(server)
        desk = await browser.new_context(viewport=DESK)
        console = await desk.new_page()
        await sign_in_console(console, server, "anna", PASSWORD)
        await console.goto(f"{server.url}/console#/mailbox")
        waiting = console.locator('.mailbox-line[data-line="support"] .mailbox-item.waiting')
        await expect(waiting).to_have_count(1)
        await expect(waiting.locator(".mailbox-age")).to_contain_text("waiting 1 day")
        await waiting.get_by_role("button", name="Claim").click()
        opened = console.locator(".mailbox-thread")
        await expect(opened.locator(".entry.from-visitor .text")).to_have_text(said)
        await opened.locator("textarea[name=text]").fill("Tack för att du skrev. Berätta mer.")
        await opened.get_by_role("button", name="Send answer").click()
        await expect(opened.locator(".entry.from-staff .text")).to_have_text(
            "Tack för att du skrev. Berätta mer."
        )
        await desk.close()

        # Another browser, another day: only the words (typed loosely).
        page = await visitor(browser, server, "sv")
        await page.get_by_role("button", name="Läs svaret").click()
        await page.get_by_role("heading", name="Läs svaret", exact=True).wait_for()
        field = page.get_by_label("Din brevlådekod")
        await field.fill("these are not the words at all")
        await page.get_by_role("button", name="Läs", exact=True).click()
        await page.get_by_role("status").get_by_text("Vi hittade inget samtal").wait_for()
        await look(page, "sv-4-wrong-code")
        await field.fill("  " + code.upper().replace(" ", "   ") + " ")
        await page.get_by_role("button", name="Läs", exact=True).click()
        await page.get_by_role("heading", name="Ditt samtal", exact=True).wait_for()
        assert await status_text(page) == "Besvarat."
        answer = page.locator("#mb-log .msg.counsellor")
        await answer.get_by_text("Tack för att du skrev. Berätta mer.").wait_for()
        await answer.get_by_text("Anna").wait_for()
        await page.locator("#mb-log .msg.visitor").get_by_text(said).wait_for()
        assert await page.locator("#mb-log b").count() == 0, "markup was rendered"
        await page.get_by_text("Det raderas den ").wait_for()
        await look(page, "sv-5-thread")

        # Writing again: waiting for an answer once more.
        again = f"Tack. En sak till {secrets.token_hex(4)}"
        await page.get_by_label("Skriv igen").fill(again)
        await page.get_by_role("button", name="Skicka").click()
        await page.get_by_text("Ditt meddelande är skickat.").wait_for()
        await page.locator("#mb-log .msg.visitor").get_by_text(again).wait_for()
        assert await status_text(page) == "Väntar på svar."

        # Delete now, asked once; afterwards the code finds nothing.
        await page.get_by_role("button", name="Radera nu").click()
        await page.get_by_text("Radera hela samtalet nu?").wait_for()
        await look(page, "sv-6-delete")
        await page.get_by_role("button", name="Ja, radera det").click()
        await page.get_by_role("heading", name="Samtalet är raderat", exact=True).wait_for()
        await page.get_by_role("button", name="Klar").click()
        await page.get_by_role("button", name="Läs svaret").click()
        await page.get_by_label("Din brevlådekod").fill(code)
        await page.get_by_role("button", name="Läs", exact=True).click()
        await page.get_by_role("status").get_by_text("Vi hittade inget samtal").wait_for()
        assert page.errors == []  # type: ignore[attr-defined]
        await page.context.close()

        # Nothing of the thread is left: SQL (rows and files), the broker, the logs.
        database = Path(server.settings.database_url.split(":///", 1)[1])
        from tests.test_forensic import sql_everything

        rows, files = sql_everything(f"sqlite:///{database}")
        logs = capfd.readouterr()
        broker = server.runtime.broker.dump() if hasattr(server.runtime.broker, "dump") else b""
        for secret in (said.split("<b>")[1][:8], again.rsplit(" ", 1)[1], code):
            for where, blob in (("rows", rows), ("files", files), ("broker", broker)):
                assert secret.encode() not in blob, (secret, where)
            assert secret not in logs.out + logs.err, secret


async def test_quick_exit_from_the_thread_in_arabic(
    browser: Browser, settings_for: Callable[..., Settings]
) -> None:
    async with serving(settings_for) as server:
        await closed_line(server)
        page = await visitor(browser, server, "ar")
        assert await page.evaluate("document.documentElement.dir") == "rtl"
        await look(page, "ar-1-closed")
        await page.get_by_role("button", name="اكتب لنا").click()
        await page.locator("#view-mailbox").get_by_label("رسالتك").fill("لا أعرف من أين أبدأ")
        await look(page, "ar-2-write")
        await page.get_by_role("button", name="أرسل").click()
        await page.get_by_role("heading", name="رمز صندوق الرسائل الخاص بك", exact=True).wait_for()
        await page.get_by_role("button", name="متابعة").click()
        await page.get_by_role("alert").wait_for()
        await look(page, "ar-3-code")
        await page.get_by_label("لقد حفظت رمزي").check()
        await page.get_by_role("button", name="متابعة").click()
        await page.get_by_role("heading", name="محادثتك", exact=True).wait_for()
        await look(page, "ar-4-thread")

        # Shift three times, as in the chat: the page is blanked and replaced.
        await page.focus("#mb-text")
        for _ in range(3):
            await page.keyboard.press("Shift")
        await page.wait_for_url(f"http://localhost:{server.port}/widget/icon.svg")
        await page.go_back()
        assert "/chat/" not in page.url, "Back returned to the thread"
        assert page.errors == []  # type: ignore[attr-defined]
        await page.context.close()


# The widget's pure helpers, run as the browser runs them ----------------------------------


async def test_the_mailbox_helpers(browser: Browser, settings_for: Callable[..., Settings]) -> None:
    async with serving(settings_for) as server:
        await add_line(server.runtime)
        # A browser far east of the server: the deletion day must not move.
        context = await browser.new_context(timezone_id="Pacific/Kiritimati")
        page = await context.new_page()
        await page.goto(f"{server.url}/chat/support?lang=en")
        got = await page.evaluate(
            """async () => {
                const m = await import('/widget/mailbox.js');
                const box = {answer_time: {sv: 'Inom två dagar', en: ''}};
                const both = {answer_time: {en: 'Two days', sv: 'Två dagar'}};
                return {
                    own: m.answerTime(both, 'en', ['sv', 'en']),
                    first: m.answerTime(box, 'ar', ['en', 'sv']),
                    none: m.answerTime(null, 'en', ['en']),
                    dayEn: m.formatDay('2026-03-01', 'en'),
                    daySv: m.formatDay('2026-12-31', 'sv'),
                    dayBad: m.formatDay('soon', 'en'),
                    moment: m.formatMoment('2026-03-01T23:30:00Z', 'sv', 'Europe/Stockholm'),
                    momentBad: m.formatMoment('never', 'en', null),
                    status: ['waiting', 'answered', 'closed', 'odd'].map(m.statusKey),
                    failures: [
                        m.failureKey(404, {code: 'no_thread'}),
                        m.failureKey(429, null),
                        m.failureKey(409, {code: 'mailbox_closed'}),
                        m.failureKey(409, {code: 'other'}),
                        m.failureKey(0, null),
                    ],
                    held: m.current(),
                };
            }"""
        )
        assert got["own"] == "Two days"
        assert got["first"] == "Inom två dagar"
        assert got["none"] == ""
        assert got["dayEn"] == "March 1, 2026"
        assert got["daySv"] == "31 december 2026"
        assert got["dayBad"] == ""
        assert "2 mars" in got["moment"] and "00:30" in got["moment"], got["moment"]
        assert got["momentBad"] == ""
        assert got["status"] == [
            "mailbox_status_waiting",
            "mailbox_status_answered",
            "mailbox_status_closed",
            "mailbox_status_waiting",
        ]
        assert got["failures"] == [
            "mailbox_no_thread",
            "code_rate_limited",
            "mailbox_closed_now",
            "error",
            "error",
        ]
        assert got["held"] is None
        await context.close()


async def test_in_the_embedded_frame_the_code_is_selected_for_copying_and_quick_exit_leaves(
    browser: Browser, settings_for: Callable[..., Settings]
) -> None:
    lykta_sock = bound_socket()
    lykta = f"http://127.0.0.1:{lykta_sock.getsockname()[1]}"
    async with serve_host(lykta) as host:
        settings = settings_for(public_url=lykta, embed_origins=host)
        async with run_server(settings, sock=lykta_sock) as server:
            await closed_line(server)
            context = await browser.new_context(viewport=PHONE)
            page = await context.new_page()
            await page.goto(f"{host}/")
            await page.goto(f"{host}/about")
            frame = await open_launcher(page)
            await frame.get_by_role("button", name="Skriv till oss").click()
            await (
                frame.locator("#view-mailbox")
                .get_by_label("Ditt meddelande")
                .fill("Jag skriver härifrån.")
            )
            await frame.get_by_role("button", name="Skicka").click()
            code = (await frame.locator("#mb-code").text_content()) or ""
            assert len(code.split()) == 5, code
            # The NGO's page gives the frame no clipboard: the words are selected instead.
            await frame.get_by_role("button", name="Kopiera koden").click()
            await frame.get_by_text("Orden är markerade").wait_for()
            assert (await frame.evaluate("getSelection().toString()")).strip() == code
            violations = await axe_violations(frame)
            assert violations == [], describe(violations)
            await page.screenshot(path=str(SHOTS / "sv-embedded-code.png"))
            await frame.get_by_label("Jag har sparat min kod").check()
            await frame.get_by_role("button", name="Fortsätt").click()
            await frame.get_by_role("heading", name="Ditt samtal", exact=True).wait_for()
            await frame.get_by_role("button", name="Lämna snabbt").click()
            await page.wait_for_url(f"{host}/neutral")
            await page.go_back()
            assert page.url == f"{host}/", "Back must not return to the page with the mailbox"
            await context.close()


async def test_in_a_language_with_digit_codes_the_texts_say_digits_and_count_the_days(
    browser: Browser, settings_for: Callable[..., Settings]
) -> None:
    """Romanian: the code is four groups of digits and the texts say so; one day of keeping is
    "1 zi", not a plural; a line without an answer-time text shows nothing in its place."""
    async with serving(settings_for) as server:
        await add_line(
            server.runtime,
            languages=["ro", "en", "sv"],
            max_message_length=300,
            mailbox="closed",
            mailbox_retention_days=1,
        )
        page = await visitor(browser, server, "ro")
        await page.get_by_role("button", name="Scrie-ne").click()
        await page.get_by_role("heading", name="Scrie-ne", exact=True).wait_for()
        await page.get_by_text("Conversația se șterge la 1 zi după").wait_for()
        await page.locator("#view-mailbox").get_by_label("Mesajul tău").fill("Bună")
        await page.get_by_role("button", name="Trimite").click()
        await page.get_by_role(
            "heading", name="Codul tău pentru căsuța de mesaje", exact=True
        ).wait_for()
        code = ((await page.locator("#mb-code").text_content()) or "").strip()
        assert [len(group) for group in code.split()] == [4, 4, 4, 4], code
        assert code.replace(" ", "").isdigit(), code
        await page.get_by_text("Aceste cifre sunt singurul mod").wait_for()
        shown = await page.locator("#view-mailbox").inner_text()
        assert "null" not in shown and "undefined" not in shown
        await look(page, "ro-code")
        assert page.errors == []  # type: ignore[attr-defined]
