"""Real Chromium (Debian's package) through Playwright, for the widget and console tests.

Browser tests never skip: a missing Chromium is an error (`make test` installs it).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import (
    Browser,
    Frame,
    Page,
    Route,
    WebSocket,
    async_playwright,
    expect,
)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# The flags this machine needs: no sandbox as root, and no background calls to Google's hosts.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
CHROMIUM_INSTALLED = Path(CHROMIUM).exists()
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# WCAG 2.2 A and AA, the bar every visitor and staff screen must meet.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

# On a loaded two-core machine the server, the test and Chromium share the cores: what a page
# shows may take longer than Playwright's default 5 s. An assertion that holds returns at once.
expect.set_options(timeout=15_000)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not CHROMIUM_INSTALLED:
        raise RuntimeError(f"{CHROMIUM} is missing: run `make test` (it installs chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def axe_violations(
    page: Page | Frame, *, exclude: list[str] | None = None
) -> list[dict[str, Any]]:
    """WCAG 2.2 A/AA violations axe-core finds on the page (or frame) as it is now.

    axe is evaluated through the DevTools protocol, which the page's CSP does not govern, so
    the page keeps its real policy while it is checked.
    """
    await page.evaluate(_axe_source())
    result: dict[str, Any] = await page.evaluate(
        """async ([tags, exclude]) => {
            const context = exclude.length ? {exclude: exclude.map((s) => [s])} : document;
            return await axe.run(context, {runOnly: {type: "tag", values: tags}});
        }""",
        [WCAG_TAGS, exclude or []],
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def _axe_source() -> str:
    global _AXE_SOURCE
    if _AXE_SOURCE is None:
        if not AXE.exists():
            raise RuntimeError(f"{AXE} is missing: run `make test` (it installs axe-core)")
        _AXE_SOURCE = AXE.read_text(encoding="utf-8")
    return _AXE_SOURCE


_AXE_SOURCE: str | None = None


def describe(violations: list[dict[str, Any]]) -> str:
    """A readable summary for an assertion message."""
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in violations
    )


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots/ for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9_.-]+', '-', name.lower())}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


class LateAnswers:
    """Answers to requests matching a pattern, held back (except those whose URL contains
    `let_through`) until `arrive()`: a slow network answering, late, for what a page showed
    before."""

    def __init__(self, page: Page, let_through: str) -> None:
        self.page = page
        self.let_through = let_through
        self.held: list[str] = []
        self._go = asyncio.Event()

    async def route(self, route: Route) -> None:
        if self.let_through not in route.request.url:
            self.held.append(route.request.url)
            await self._go.wait()
        await route.continue_()

    async def arrive(self) -> None:
        """Let the held answers go, and wait until the page has had the first one."""
        assert self.held, "no answer was held back: nothing was asked for before the switch"
        async with self.page.expect_response(lambda r: r.url == self.held[0]) as answered:
            self._go.set()
        await (await answered.value).finished()
        # A moment for the page to read it (the console parses the JSON a task or two later).
        await self.page.evaluate("() => new Promise((done) => setTimeout(done, 100))")


@asynccontextmanager
async def late_answers(page: Page, pattern: str, let_through: str) -> AsyncIterator[LateAnswers]:
    late = LateAnswers(page, let_through)
    await page.route(pattern, late.route)
    try:
        yield late
    finally:
        late._go.set()
        await page.unroute(pattern, late.route)


def trace_sockets(page: Page, who: str) -> None:
    """Print every WebSocket frame the page sends and gets: pytest shows the output of a test
    that failed, so a failure that does not reproduce still says what the page was told."""

    def show(direction: str, payload: str | bytes) -> None:
        print(f"{who} {direction} {payload if isinstance(payload, str) else repr(payload)}")

    def on_socket(socket: WebSocket) -> None:
        print(f"{who} opened {socket.url}")
        socket.on("framesent", lambda payload: show(">", payload))
        socket.on("framereceived", lambda payload: show("<", payload))
        socket.on("close", lambda _: print(f"{who} closed"))

    page.on("websocket", on_socket)
