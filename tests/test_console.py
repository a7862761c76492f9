"""The console is served by Lykta itself: right content types, strict CSP, nothing cached,
nothing outside its folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from app.audit.service import AuditAction
from app.console.endpoints import STATIC
from tests.support.server import RunningServer


async def get(server: RunningServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.get(path)


async def test_the_console_page_and_its_files_are_served_with_strict_headers(
    server: RunningServer,
) -> None:
    page = await get(server, "/console")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert 'src="/console/static/core.js"' in page.text
    # No inline script or style: everything comes from files the CSP allows.
    assert "<style" not in page.text and "style=" not in page.text
    assert "<script>" not in page.text and '<script type="module">' not in page.text

    for path, kind in (
        ("/console/static/core.js", "text/javascript; charset=utf-8"),
        ("/console/static/console.css", "text/css; charset=utf-8"),
        ("/console/static/i18n/sv.core.json", "application/json"),
        ("/console/static/icon.svg", "image/svg+xml"),
    ):
        response = await get(server, path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == kind, path
        assert response.headers["cache-control"] == "no-store", path
        assert response.headers["x-content-type-options"] == "nosniff", path


async def test_the_enrolment_page_is_served_and_keeps_the_token_out_of_requests(
    server: RunningServer,
) -> None:
    page = await get(server, "/enrol")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert 'src="/console/static/enrol.js"' in page.text
    # A token in a query string would land in logs: the page only ever reads the fragment.
    script = (await get(server, "/console/static/enrol.js")).text
    assert "location.hash" in script and "location.search" not in script


@pytest.mark.parametrize(
    "path",
    [
        "/console/static/../endpoints.py",
        "/console/static/..%2fendpoints.py",
        "/console/static/%2e%2e/endpoints.py",
        "/console/static/%2e%2e/%2e%2e/settings.py",
        "/console/static/..%5cendpoints.py",
        "/console/static//etc/passwd",
        "/console/static/%2fetc%2fpasswd",
        "/console/static/views/../../__init__.py",
        "/console/static/core.js%00.png",
        "/console/static/",
        "/console/static/views",
        "/console/static/no-such-file.js",
        "/console/static/" + "a/" * 200 + "x.js",
    ],
)
async def test_nothing_outside_the_static_folder_is_served(
    server: RunningServer, path: str
) -> None:
    response = await get(server, path)
    assert response.status_code == 404, (path, response.text[:200])
    assert "import" not in response.text and "root:" not in response.text
    assert response.headers["cache-control"] == "no-store"


async def test_only_known_kinds_of_file_are_served(server: RunningServer) -> None:
    # The Python package next to the files is not served even by its own name.
    for path in ("/console/static/../__init__.py", "/console/static/__init__.py"):
        assert (await get(server, path)).status_code == 404


async def test_other_methods_are_refused(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        for method in ("POST", "PUT", "DELETE"):
            for path in ("/console", "/console/static/core.js", "/enrol"):
                response = await http.request(method, path)
                assert response.status_code == 405, (method, path)


# Every console catalogue pair: each area's file in English and in Swedish.
AREAS = sorted({path.name.split(".")[1] for path in (STATIC / "i18n").glob("*.json")})


def test_every_console_area_has_a_catalogue_in_each_language() -> None:
    assert "chats" in AREAS
    for area in AREAS:
        for lang in ("en", "sv"):
            assert (STATIC / "i18n" / f"{lang}.{area}.json").is_file(), (lang, area)


@pytest.mark.parametrize("area", AREAS)
def test_swedish_and_english_catalogues_have_the_same_texts(area: str) -> None:
    catalogues = {
        lang: json.loads((STATIC / "i18n" / f"{lang}.{area}.json").read_text("utf-8"))
        for lang in ("sv", "en")
    }
    assert set(catalogues["sv"]) == set(catalogues["en"])
    for key, english in catalogues["en"].items():
        swedish = catalogues["sv"][key]
        assert swedish.strip(), key
        # The same {placeholders}, or a text would show a raw brace or lose a number.
        assert set(re.findall(r"\{\w+\}", swedish)) == set(re.findall(r"\{\w+\}", english)), key
    # A counted text has both CLDR forms Swedish and English use ("one" and "other").
    for key in catalogues["en"]:
        if key.endswith(".one"):
            assert f"{key.removesuffix('.one')}.other" in catalogues["en"], key


def test_every_text_the_coordinator_screens_ask_for_exists() -> None:
    # The console loads every area's catalogue for every screen (AREAS in core.js).
    english: dict[str, str] = {}
    for area in AREAS:
        english.update(json.loads((STATIC / "i18n" / f"en.{area}.json").read_text("utf-8")))
    sources: list[Path] = [STATIC / "core.js", STATIC / "enrol.js"] + [
        STATIC / "views" / f"{name}.js"
        for name in ("roster", "staff", "lines", "stats", "audit", "me", "deployment")
    ]
    asked = set()
    for source in sources:
        asked |= set(re.findall(r"\bt\(\"([a-z_]+(?:\.[a-z_0-9]+)+)\"", source.read_text("utf-8")))
    # A counted text has its CLDR plural forms instead ("roster.gap_shifts.one", ".other").
    missing = {key for key in asked if key not in english and f"{key}.other" not in english}
    assert sorted(missing) == []


def test_every_audit_action_and_filter_has_a_label_in_both_languages() -> None:
    # The audit screen shows an action by its label, and the raw name only without one.
    audit_js = (STATIC / "views" / "audit.js").read_text("utf-8")
    listed = re.search(r"const ACTIONS = \[(.*?)\];", audit_js, re.S)
    assert listed is not None
    filters = set(re.findall(r'"([a-z_.]+)"', listed.group(1)))
    assert "mailbox" in filters
    wanted = {f"audit.action.{name}" for name in {a.value for a in AuditAction} | filters}
    for lang in ("en", "sv"):
        known: dict[str, str] = {}
        for area in AREAS:
            known.update(json.loads((STATIC / "i18n" / f"{lang}.{area}.json").read_text("utf-8")))
        assert sorted(wanted - set(known)) == [], lang


def test_every_text_the_chat_screens_ask_for_exists_in_both_languages() -> None:
    for lang in ("en", "sv"):
        known: dict[str, str] = {}
        for area in AREAS:
            known.update(json.loads((STATIC / "i18n" / f"{lang}.{area}.json").read_text("utf-8")))
        sources = [STATIC / "care.js", STATIC / "chat-helpers.js"] + [
            STATIC / "views" / f"{name}.js" for name in ("chats", "supervise", "directory")
        ]
        asked = set()
        for source in sources:
            text = source.read_text("utf-8")
            asked |= set(re.findall(r"\bt\(\"([a-z_]+(?:\.[a-z_0-9]+)+)\"", text))
        missing = {key for key in asked if key not in known and f"{key}.other" not in known}
        assert sorted(missing) == [], lang


def test_every_risk_and_care_text_the_console_asks_for_exists() -> None:
    english = json.loads((STATIC / "i18n" / "en.risk.json").read_text("utf-8"))
    sources = [
        STATIC / "risk.js",
        STATIC / "views" / "chats.js",
        STATIC / "views" / "supervise.js",
        STATIC / "views" / "lines.js",
    ]
    asked = set()
    for source in sources:
        text = source.read_text("utf-8")
        asked |= set(re.findall(r"\bt\(\"((?:risk|lines)\.[a-z_0-9.]+)\"", text))
        asked |= {f"risk.level.{level}" for level in ("none", "concern", "acute")}
    others: dict[str, str] = {}
    for area in AREAS:
        others.update(json.loads((STATIC / "i18n" / f"en.{area}.json").read_text("utf-8")))
    known = english | others
    missing = {key for key in asked if key not in known and f"{key}.other" not in known}
    assert sorted(missing) == []
