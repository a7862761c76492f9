"""A coordinator's day in the console, in real Chromium against Lykta on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from app.models.enums import StaffRole
from app.settings import Settings
from tests.conftest import FAST
from tests.support.browser import axe_violations, chromium, describe, screenshot
from tests.support.console import sign_in_console
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer, bound_socket, run_server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    path = tmp_path_factory.mktemp("console") / "lykta.db"
    shutil.copy(sqlite_template, path)
    sock = bound_socket()
    # The browser's Origin must be Lykta's own public URL, so the port is chosen first.
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}", public_url=public_url, **FAST)
    async with run_server(settings, sock=sock) as running:
        rt = running.runtime
        await add_line(rt)
        await add_line(rt, "youth", required_qualification="volunteer")
        await add_staff(rt, "cora", StaffRole.coordinator)
        await add_counsellor(rt, "anna", on_duty=False)
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 720}, locale="en-GB")
    page = await context.new_page()
    yield page
    await context.close()


async def assert_accessible(page: Page, name: str) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{name}: {describe(violations)}"
    await screenshot(page, f"console-{name}")


async def test_sign_in_with_totp_shows_the_coordinators_navigation(
    server: RunningServer, page: Page
) -> None:
    await page.goto(f"{server.url}/console")
    await expect(page.locator("form.signin-form")).to_be_visible()
    await assert_accessible(page, "sign-in")
    await sign_in_console(page, server, "cora", PASSWORD)
    nav = page.locator("#nav a")
    await expect(nav).to_have_text(
        ["Roster", "Staff", "Lines", "Statistics", "Audit log", "My account"]
    )
