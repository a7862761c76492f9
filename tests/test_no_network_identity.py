"""Nothing identifying by construction: the schema, the code that may see an address, URLs,
uvicorn's options and the log format are checked here, so a change that breaks the promise
breaks the build."""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path

import uvicorn
from sqlalchemy import MetaData, create_engine
from starlette.routing import Route

from app.cli import uvicorn_options
from app.kit.db import Base
from app.kit.logging import (
    ALLOWED_FIELDS,
    WITHHELD,
    DropClientLines,
    JsonFormatter,
    event_of,
)
from app.main import create_app
from app.settings import Settings
from tests.support.routes import http_routes, websocket_routes

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
READER = APP / "abuse" / "ratelimit.py"

# Words that, as part of a column name, say it holds where someone is or what they use.
IDENTIFYING_WORDS = {
    "ip",
    "ipv4",
    "ipv6",
    "addr",
    "address",
    "agent",
    "useragent",
    "ua",
    "referer",
    "referrer",
    "fingerprint",
    "location",
    "geo",
    "geoip",
    "latitude",
    "longitude",
    "lat",
    "lon",
    "lng",
    "city",
    "country",
    "region",
    "host",
    "hostname",
    "origin",
    "device",
    "browser",
    "mac",
    "remote",
    "forwarded",
    "xff",
    "language",  # accept-language would go here
    "locale",
}
ADDRESS_TYPES = {"INET", "CIDR", "MACADDR", "MACADDR8"}
# Columns whose name matches but which are about a line or a staff member, never a visitor.
KNOWN_HARMLESS = {
    ("lines", "languages"),
    ("lines", "language_relax_seconds"),
    ("staff", "languages"),
    # A referral service's languages and city: about the service, never a visitor.
    ("referral_services", "languages"),
    ("referral_services", "city"),
    # The language a mailbox thread is written in (its counsellor answers and sends cards in
    # it); it goes with the thread and is withheld from the subpoena drill.
    ("mailbox_threads", "language"),
}


def identifying(column: str) -> bool:
    words = set(re.split(r"[_\W]+", column.lower()))
    words |= {w.rstrip("s") for w in words}
    return bool(words & IDENTIFYING_WORDS)


def test_the_word_check_catches_what_it_should() -> None:
    for name in ("ip", "client_ip", "remote_addr", "user_agent", "referrer", "geo_city", "origin"):
        assert identifying(name), name
    for name in ("line_key", "hour", "topics", "shipped", "capacity", "outcome"):
        assert not identifying(name), name


def _columns(metadata: MetaData) -> list[tuple[str, str, str]]:
    return [
        (table.name, column.name, type(column.type).__name__.upper())
        for table in metadata.tables.values()
        for column in table.columns
    ]


def test_no_sql_column_is_named_or_typed_like_an_address(sqlite_template: Path) -> None:
    # The models, and what the migrations really built.
    engine = create_engine(f"sqlite:///{sqlite_template}")
    reflected = MetaData()
    reflected.reflect(engine)
    engine.dispose()
    columns = _columns(Base.metadata) + _columns(reflected)
    assert len(columns) > 40
    bad = [
        c
        for c in columns
        if (identifying(c[1]) and (c[0], c[1]) not in KNOWN_HARMLESS) or c[2] in ADDRESS_TYPES
    ]
    assert bad == []


# Reading a client's address, or a header that names the client or its browser.
_FORBIDDEN_STRINGS = {
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
    "remote_addr",
    "remote-addr",
    "user-agent",
    "referer",
    "peername",
}
_FORBIDDEN_ATTRIBUTES = {"client", "remote_address", "peername", "get_client_addr"}


def address_reads(source: str) -> list[str]:
    """Places in `source` that read a client address or an identifying header."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in _FORBIDDEN_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            if text.strip().lower() in _FORBIDDEN_STRINGS:
                found.append(f"line {node.lineno}: {text!r}")
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            if node.slice.value == "client":
                found.append(f"line {node.lineno}: ['client']")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == "client"
        ):
            found.append(f"line {node.lineno}: .get('client')")
    return found


def test_the_address_scan_catches_every_way_in() -> None:
    for snippet in (
        "host = request.client.host",
        "peer = scope['client']",
        "peer = scope.get('client')",
        "agent = ws.headers.get('User-Agent')",
        "hops = headers[b'x-forwarded-for']",
        "peer = transport.get_extra_info('peername')",
        "peer = connection.remote_address",
        "page = request.headers['referer']",
    ):
        assert address_reads(snippet), snippet
    assert address_reads("name = 'clients'\nvalue = record.client_id") == []


def test_only_the_rate_limiter_reads_a_client_address() -> None:
    offenders = {
        str(path.relative_to(ROOT)): reads
        for path in sorted(APP.rglob("*.py"))
        if path != READER and (reads := address_reads(path.read_text()))
    }
    assert offenders == {}
    assert address_reads(READER.read_text())  # the reader itself is seen by the scan


def test_no_route_takes_a_token_or_id_in_its_url() -> None:
    app = create_app(Settings())
    seen = 0
    for route in [*http_routes(app.routes), *websocket_routes(app.routes)]:
        dependant = getattr(route, "dependant", None)
        url: str = getattr(route, "path", "")
        if dependant is None:
            continue
        names = [p.name for p in (*dependant.path_params, *dependant.query_params)]
        assert not [n for n in names if "token" in n or "chat" in n], url
        assert isinstance(route, Route) or "{" not in url
        seen += 1
    assert seen >= 8
    # Nor is the query string read anywhere: resume tokens travel inside frames or bodies.
    for module in APP.rglob("*.py"):
        assert "query_params" not in module.read_text(), module


def test_uvicorn_runs_without_access_log_or_proxy_trust() -> None:
    options = uvicorn_options(Settings())
    assert options["access_log"] is False
    assert options["proxy_headers"] is False
    assert options["forwarded_allow_ips"] == ""
    assert options["log_config"] is None
    config = uvicorn.Config(create_app(Settings()), **options)
    config.load()
    assert not config.proxy_headers and config.forwarded_allow_ips == ""


def record(
    name: str, msg: object, *args: object, exc: BaseException | None = None
) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args or None, exc_info)


def test_log_lines_carry_no_arguments_messages_or_frame_contents() -> None:
    secret = "203.0.113.9 said: help me"
    assert event_of(record("uvicorn.error", '%s - "GET %s"', secret, "/x")) == WITHHELD
    assert event_of(record("asyncio", f"Task exception was never retrieved\nfuture: {secret}")) == (
        "Task exception was never retrieved"
    )
    assert event_of(record("websockets.server", f"< TEXT {secret}")) == WITHHELD
    assert event_of(record("app.chats.service", "chat %s failed", secret)) == "chat %s failed"
    assert event_of(record("uvicorn.error", "Started server process [%d]", 42)) == (
        "Started server process [42]"
    )
    assert event_of(record("uvicorn.error", OSError(98, secret))) == "OSError errno 98"
    try:
        text = secret
        raise ValueError(text)
    except ValueError as exc:
        failed = record("app.x", "failed", exc=exc)
    failed.__dict__.update(line="support", chat=secret)
    line = JsonFormatter().format(failed)
    parsed = json.loads(line)
    assert secret not in line and "help me" not in line
    assert parsed["exception"] == "ValueError"
    assert set(parsed) <= {
        "time",
        "level",
        "logger",
        "event",
        "exception",
        "stack",
        *ALLOWED_FIELDS,
    }
    assert parsed["line"] == "support" and "chat" not in parsed
    assert all(re.fullmatch(r".+:\d+:\w+", frame) for frame in parsed["stack"])


def test_uvicorns_websocket_line_is_dropped() -> None:
    line = record("uvicorn.error", '%s - "WebSocket %s" [accepted]', "203.0.113.9:5000", "/ws")
    assert DropClientLines().filter(line) is False
    assert DropClientLines().filter(record("uvicorn.error", "Application startup complete."))


def test_our_loggers_are_given_templates_only() -> None:
    """An f-string or a variable as a log message could carry anything; only literals."""
    levels = {"debug", "info", "warning", "error", "exception", "critical", "log"}
    offenders = []
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in levels
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"logger", "logging", "log"}
            ):
                message = node.args[1 if node.func.attr == "log" else 0] if node.args else None
                if not (isinstance(message, ast.Constant) and isinstance(message.value, str)):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            # A background pass's failure, logged through app/broker/base.py's log_failure.
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "log_failure"
            ):
                message = node.args[1] if len(node.args) > 1 else None
                if not (isinstance(message, ast.Constant) and isinstance(message.value, str)):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_docs_list_what_logs_may_contain() -> None:
    privacy = (ROOT / "docs" / "privacy.md").read_text()
    section = privacy.split("## What logs may contain")[1].split("\n## ")[0]
    for name in (*ALLOWED_FIELDS, "time", "level", "logger", "event", "exception", "stack"):
        assert f"`{name}`" in section, name
