"""`/`, the address a newcomer opens first: a way in during development, nothing in production."""

from __future__ import annotations

import re

import httpx

from app.chats.crypto import generate_kek
from tests.conftest import ServerFactory
from tests.support.seed import add_line
from tests.support.server import RunningServer


async def test_in_development_the_root_leads_to_the_console_and_each_lines_chat(
    server: RunningServer,
) -> None:
    await add_line(server.runtime, "support", name="Stödchatten")
    await add_line(server.runtime, "youth", name="Ungdomschatten")
    async with httpx.AsyncClient(base_url=server.url) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        links = re.findall(r'href="([^"]+)"', page.text)
        assert {"/console", "/chat/support", "/chat/youth"} <= set(links)
        assert "Stödchatten" in page.text and "Ungdomschatten" in page.text
        for link in links:
            assert (await http.get(link)).status_code == 200, link
    # The strict page policy, and nothing on the page that it would block.
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert not re.search(r"<script|<style|\sstyle=|\son\w+=", page.text, re.IGNORECASE)


async def test_in_production_the_root_says_nothing_about_the_deployment(
    lykta: ServerFactory,
) -> None:
    production = {"environment": "production", "secret_key": "p" * 40, "keks": generate_kek("k")}
    async with lykta(**production) as server:
        await add_line(server.runtime, "support", name="Stödchatten")
        async with httpx.AsyncClient(base_url=server.url) as http:
            root = await http.get("/")
    # No name, line, version or framework: the plainest answer there is.
    assert root.status_code == 404
    assert root.headers["content-type"].startswith("text/plain")
    assert root.text == "Not Found"
    assert "server" not in root.headers and "x-powered-by" not in root.headers
