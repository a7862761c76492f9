"""Driving the staff console in a real browser (tests/support/browser.py) like a person would."""

from __future__ import annotations

from playwright.async_api import Page

from tests.support.clients import Endpoint, fresh_code
from tests.support.seed import TOTP_SECRETS


async def sign_in_console(page: Page, server: Endpoint, username: str, password: str) -> None:
    """Open /console, fill in the sign-in form with a fresh TOTP code, wait for the navigation."""
    await page.goto(f"{server.url}/console")
    form = page.locator("form.signin-form")
    await form.locator("input[name=username]").fill(username)
    await form.locator("input[name=password]").fill(password)
    if username in TOTP_SECRETS:
        await form.locator("input[name=code]").fill(await fresh_code(username))
    await form.locator("button[type=submit]").click()
    await page.locator("#nav a").first.wait_for()
