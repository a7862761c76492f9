"""The visitor's phone: the chat page and the embedded widget on a slow network.

Chromium (Debian's, through Playwright) at 390×844 with the network emulated through the
DevTools protocol (`Network.emulateNetworkConditions`: 400 ms latency, 400 kbit/s each way)
loads, in each language, the full chat page and an NGO's page with the loader (`embed.js`),
whose launcher then opens the chat in its iframe. Each load is in a fresh browser context (no
cache; Lykta's visitor files are `no-store` anyway) against one `lykta serve` with a counsellor
on duty, so the line is open. Measured per load:

- bytes on the wire: every HTTP response from Lykta as received, headers included
  (`encodedDataLength`);
- ready: the time from the navigation (for the widget: from the launcher's tap, the iframe's
  navigation) until the start button shows the visitor's language, styled, and is enabled;
- hello: the time until the WebSocket's `hello` arrives, the start button pressed as soon as
  it is enabled;
- the floor each is measured against: round trips × 400 ms + bytes at 400 kbit/s.

Prints, last: `visitor_page: page_kb=… page_ready_ms=… page_hello_ms=… …` (medians over
rounds and languages; the worst language is in the result file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, CDPSession, Frame, Page, async_playwright
from websockets.asyncio.client import ClientConnection, connect

from bench.common import (
    ROOT,
    final_line,
    free_port,
    lykta_server,
    median,
    seed,
    write_result,
)

CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
LATENCY_MS = 400
KBIT_S = 400
BYTES_PER_S = KBIT_S * 1000 / 8
LANGUAGES = ("sv", "ar", "en")
GOALS = {"page_kb": 20, "ready_ms": 1500, "hello_ms": 2500}
# Round trips on each path, as Lykta's pages are built: the page, then its style and scripts
# together (the catalogue and the line's state come inside the page); the socket's handshake
# before `hello`. The loader: the NGO's page, then embed.js.
PAGE_TRIPS = 2
HELLO_TRIPS = PAGE_TRIPS + 1
LOADER_TRIPS = 2

READY = """(expected) => {
  const b = document.getElementById('start');
  if (!b || b.disabled || !b.offsetParent || b.textContent.trim() !== expected) return false;
  const bar = document.querySelector('.bar');
  if (!bar || getComputedStyle(bar).position !== 'sticky') return false;  // chat.css applies
  return performance.now();
}"""

LAUNCHER = """(name) => {
  const b = document.querySelector('[data-lykta] button');
  return b && b.textContent === name ? performance.now() : false;
}"""


def host_page(lykta: str, language: str) -> bytes:
    return (
        f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>An NGO</title></head><body><h1>An NGO</h1><p>About us.</p>"
        f'<script src="{lykta}/widget/embed.js" data-line="bench" data-language="{language}">'
        "</script></body></html>"
    ).encode()


class Host:
    """The NGO's site: one page with the loader, on an origin of its own."""

    def __init__(self, lykta: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = host_page(lykta, self.path.strip("/") or "sv")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Host:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Wire:
    """What crossed the emulated network, from the DevTools protocol's events."""

    def __init__(self, cdp: CDPSession, origin: str) -> None:
        self.origin = origin
        self.urls: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.bytes: dict[str, int] = {}
        self.hello_at: float | None = None
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.webSocketFrameReceived", self._frame)

    def _sent(self, event: dict[str, Any]) -> None:
        self.urls[event["requestId"]] = event["request"]["url"]
        self.started[event["requestId"]] = event["timestamp"]

    def _finished(self, event: dict[str, Any]) -> None:
        if self.urls.get(event["requestId"], "").startswith(self.origin + "/"):
            self.bytes[self.urls[event["requestId"]]] = int(event["encodedDataLength"])

    def _frame(self, event: dict[str, Any]) -> None:
        if self.hello_at is None and '"hello"' in event["response"]["payloadData"]:
            self.hello_at = event["timestamp"]

    def started_at(self, path: str) -> float:
        return min(t for rid, t in self.started.items() if path in self.urls[rid])

    def total(self) -> int:
        return sum(self.bytes.values())


async def throttled(browser: Browser, origin: str) -> tuple[Page, Wire]:
    context = await browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": LATENCY_MS,
            "downloadThroughput": BYTES_PER_S,
            "uploadThroughput": BYTES_PER_S,
        },
    )
    return page, Wire(cdp, origin)


async def drain(socket: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in socket:
            pass


def floor_ms(trips: int, size: int) -> float:
    return trips * LATENCY_MS + size / BYTES_PER_S * 1000


async def ready_and_hello(frame: Frame, wire: Wire, start_text: str) -> tuple[float, float]:
    """Ms from the frame's navigation until ready, and until `hello` after pressing Start."""
    handle = await frame.wait_for_function(READY, arg=start_text, polling="raf", timeout=60_000)
    ready = float(await handle.json_value())
    await frame.click("#start")
    for _ in range(600):
        if wire.hello_at is not None:
            break
        await asyncio.sleep(0.05)
    assert wire.hello_at is not None, "no hello"
    hello = (wire.hello_at - wire.started_at("/chat/bench")) * 1000
    return ready, hello


async def full_page(
    browser: Browser, lykta: str, language: str, start_text: str, shot: Path | None
) -> dict[str, Any]:
    page, wire = await throttled(browser, lykta)
    try:
        await page.goto(f"{lykta}/chat/bench?lang={language}", wait_until="commit")
        handle = await page.wait_for_function(READY, arg=start_text, polling="raf", timeout=60_000)
        ready = float(await handle.json_value())
        ready_bytes = wire.total()
        if shot is not None:
            await page.screenshot(path=str(shot))
        await page.click("#start")
        for _ in range(600):
            if wire.hello_at is not None:
                break
            await asyncio.sleep(0.05)
        assert wire.hello_at is not None, "no hello"
        hello = (wire.hello_at - wire.started_at("/chat/bench")) * 1000
        await asyncio.sleep(0.5)  # the icon, fetched once the page has loaded
        return {
            "bytes": wire.total(),
            "bytes_until_ready": ready_bytes,
            "requests": len(wire.bytes),
            "ready_ms": ready,
            "hello_ms": hello,
            "ready_floor_ms": floor_ms(PAGE_TRIPS, ready_bytes),
            "hello_floor_ms": floor_ms(HELLO_TRIPS, ready_bytes),
        }
    finally:
        await page.context.close()


async def embedded(
    browser: Browser, lykta: str, host: Host, language: str, start_text: str, launcher: str
) -> dict[str, Any]:
    page, wire = await throttled(browser, lykta)
    try:
        await page.goto(f"{host.url}/{language}", wait_until="commit")
        handle = await page.wait_for_function(LAUNCHER, arg=launcher, polling="raf", timeout=60_000)
        loader_ms = float(await handle.json_value())
        loader_bytes = wire.total()
        await page.get_by_role("button", name=launcher, exact=True).click()
        frame = None
        for _ in range(600):
            frame = next((f for f in page.frames if "/chat/bench" in f.url), None)
            if frame is not None:
                break
            await asyncio.sleep(0.01)
        assert frame is not None, "no iframe"
        ready, hello = await ready_and_hello(frame, wire, start_text)
        await asyncio.sleep(0.5)
        chat_bytes = wire.total() - loader_bytes
        return {
            "bytes": wire.total(),
            "loader_bytes": loader_bytes,
            "chat_bytes": chat_bytes,
            "requests": len(wire.bytes),
            "loader_ms": loader_ms,
            "loader_floor_ms": floor_ms(LOADER_TRIPS, loader_bytes),
            "ready_ms": ready,
            "hello_ms": hello,
            "ready_floor_ms": floor_ms(PAGE_TRIPS, chat_bytes),
            "hello_floor_ms": floor_ms(HELLO_TRIPS, chat_bytes),
        }
    finally:
        await page.context.close()


def summarise(loads: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k in loads[0] if isinstance(loads[0][k], int | float)]
    out = {k: median(load[k] for load in loads) for k in keys}
    out["ready_ratio"] = out["ready_ms"] / out["ready_floor_ms"]
    out["hello_ratio"] = out["hello_ms"] / out["hello_floor_ms"]
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    catalogues = {
        code: json.loads((ROOT / "widget" / "i18n" / f"{code}.json").read_text("utf-8"))
        for code in LANGUAGES
    }
    workdir = Path(tempfile.mkdtemp(prefix="lykta-bench-"))
    database = f"sqlite+aiosqlite:///{workdir / 'visitor.db'}"
    tokens = await seed(
        database, counsellors=1, capacity=5, languages=list(LANGUAGES), max_queue_length=10_000
    )
    lykta = lykta_server("embedded", {"LYKTA_DATABASE_URL": database})
    host = Host(lykta.url)
    lykta.env |= {"LYKTA_PUBLIC_URL": lykta.url, "LYKTA_EMBED_ORIGINS": host.url}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {"page": {}, "embedded": {}}
    lykta.spawn(workdir / "server.log")
    try:
        await lykta.ready()
        # One counsellor on duty and available keeps the line open.
        keeper = await connect(
            f"{lykta.ws_url}/ws/staff",
            additional_headers={"Cookie": f"lykta_session={tokens[0]}"},
            compression=None,
        )
        await keeper.recv()
        await keeper.send('{"type":"status","status":"available"}')
        # Read what it is sent (offers, queue cards), or its socket would stall and drop.
        draining = asyncio.create_task(drain(keeper))
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM)
            with host:
                for index in range(args.rounds):
                    for code in LANGUAGES:
                        texts = catalogues[code]
                        shot = args.screenshot if index == 0 and code == "sv" else None
                        page = await full_page(browser, lykta.url, code, texts["start"], shot)
                        widget = await embedded(
                            browser, lykta.url, host, code, texts["start"], texts["launcher"]
                        )
                        results["page"].setdefault(code, []).append(page)
                        results["embedded"].setdefault(code, []).append(widget)
                        print(f"round {index + 1} {code}: page {page} embedded {widget}")
            await browser.close()
        with contextlib.suppress(Exception):
            await keeper.close()
        await draining
    finally:
        lykta.stop()
    summary = {
        mode: {code: summarise(loads) for code, loads in by_language.items()}
        for mode, by_language in results.items()
    }

    def worst(mode: str, key: str) -> float:
        return max(summary[mode][code][key] for code in LANGUAGES)

    final = {
        "page_kb": worst("page", "bytes") / 1024,
        "page_ready_ms": worst("page", "ready_ms"),
        "page_hello_ms": worst("page", "hello_ms"),
        "widget_loader_ms": worst("embedded", "loader_ms"),
        "widget_chat_kb": worst("embedded", "chat_bytes") / 1024,
        "widget_ready_ms": worst("embedded", "ready_ms"),
        "widget_hello_ms": worst("embedded", "hello_ms"),
    }
    return {
        "parameters": {
            "rounds": args.rounds,
            "latency_ms": LATENCY_MS,
            "kbit_s": KBIT_S,
            "viewport": PHONE,
            "languages": LANGUAGES,
        },
        "goals": {
            "page_kb": f"<= {GOALS['page_kb']}",
            "ready_ms": f"<= {GOALS['ready_ms']}",
            "hello_ms": f"<= {GOALS['hello_ms']}",
        },
        "summary": summary,
        "final": final,
        "loads": results,
    }


def report(result: dict[str, Any]) -> None:
    for mode, by_language in result["summary"].items():
        for code, s in by_language.items():
            kib = s["bytes"] / 1024
            print(
                f"{mode:8} {code}: {kib:5.1f} KiB in {s['requests']:.0f} requests; "
                f"ready {s['ready_ms']:6.0f} ms (floor {s['ready_floor_ms']:.0f}, "
                f"×{s['ready_ratio']:.2f}); hello {s['hello_ms']:6.0f} ms "
                f"(floor {s['hello_floor_ms']:.0f}, ×{s['hello_ratio']:.2f})"
                + (
                    f"; loader {s['loader_ms']:.0f} ms (floor {s['loader_floor_ms']:.0f})"
                    if "loader_ms" in s
                    else ""
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--screenshot", type=Path, default=None, help="the Swedish page once ready (PNG)"
    )
    args = parser.parse_args()
    result = asyncio.run(run(args))
    write_result("visitor_page", result)
    report(result)
    print(final_line("visitor_page", result["final"]))


if __name__ == "__main__":
    main()
