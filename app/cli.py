"""The `lykta` command line."""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import getpass
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from app.kit.db import create_engine, create_sessionmaker, unit_of_work
from app.kit.logging import configure_logging
from app.kit.migrate import upgrade
from app.models.enums import Qualification, StaffRole
from app.settings import Settings

if TYPE_CHECKING:
    from app.demo import DemoAccount

logger = logging.getLogger(__name__)

DEMO_DATABASE = "sqlite+aiosqlite:///./lykta-demo.db"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        result: int = args.run(args)
    except ValidationError as exc:
        print(
            f"lykta: the configuration is not usable:\n{_settings_problems(exc)}", file=sys.stderr
        )
        return 2
    return result


def _settings_problems(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"])
        lines.append(f"  {('LYKTA_' + where.upper()) if where else 'settings'}: {error['msg']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lykta", description="Lykta, an anonymous chat helpline.")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run Lykta (settings from LYKTA_* variables)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--migrate", action="store_true", help="apply database migrations first")
    serve.set_defaults(run=_serve)

    demo = commands.add_parser("demo", help="run Lykta on SQLite with demo lines and accounts")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(run=_demo)

    db = commands.add_parser("db", help="database commands").add_subparsers(title="db commands")
    db_upgrade = db.add_parser("upgrade", help="apply every migration")
    db_upgrade.set_defaults(run=_db_upgrade)

    lines = commands.add_parser("lines", help="line commands").add_subparsers(
        title="lines commands"
    )
    lines_import = lines.add_parser("import", help="create or update lines from a TOML file")
    lines_import.add_argument("file", type=Path)
    lines_import.set_defaults(run=_lines_import)

    staff = commands.add_parser("staff", help="staff commands").add_subparsers(
        title="staff commands"
    )
    create = staff.add_parser(
        "create", help="create a staff account and print its one-time enrolment link"
    )
    create.add_argument("--username", required=True)
    create.add_argument("--alias", help="the name visitors see (default: the username)")
    create.add_argument("--role", choices=[r.value for r in StaffRole], default="counsellor")
    create.add_argument("--admin", action="store_true", help="shorthand for --role admin")
    create.add_argument("--qualification", choices=[q.value for q in Qualification])
    create.add_argument("--languages", default="sv,en", help="comma-separated language codes")
    create.add_argument("--capacity", type=int, default=2)
    create.add_argument("--peer", action="store_true")
    create.add_argument("--supervisor", action="store_true")
    create.add_argument("--line", action="append", default=[], help="a line they work on (repeat)")
    create.set_defaults(run=_staff_create)
    reset = staff.add_parser(
        "reset",
        help="clear an account's password and/or TOTP and print a new enrolment link "
        "(for a locked-out admin; coordinators use the API)",
    )
    reset.add_argument("--username", required=True)
    reset.add_argument("--password", action="store_true", help="clear the password")
    reset.add_argument("--totp", action="store_true", help="clear TOTP and recovery codes")
    reset.set_defaults(run=_staff_reset)

    keys = commands.add_parser("keys", help="key commands").add_subparsers(title="keys commands")
    generate = keys.add_parser("generate", help="print a new key-encryption key for LYKTA_KEKS")
    generate.add_argument("--id", default=None, help="its id (default: today's date)")
    generate.set_defaults(run=_keys_generate)

    privacy = commands.add_parser("privacy", help="privacy commands").add_subparsers(
        title="privacy commands"
    )
    drill = privacy.add_parser(
        "drill", help="print everything Lykta could hand over about a time window (as JSON)"
    )
    drill.add_argument(
        "--from", dest="start", required=True, help="start, ISO 8601 (UTC unless a zone is given)"
    )
    drill.add_argument("--to", dest="end", required=True, help="end (exclusive), ISO 8601")
    drill.set_defaults(run=_privacy_drill)

    client = commands.add_parser("client", help="a terminal chat client (the documented example)")
    client_kinds = client.add_subparsers(title="who")
    visitor = client_kinds.add_parser("visitor", help="chat as an anonymous visitor")
    visitor.add_argument("--url", default="http://127.0.0.1:8000")
    visitor.add_argument("--line", default="support")
    visitor.add_argument("--language", default="en")
    visitor.add_argument(
        "--resume",
        metavar="CHAT:TOKEN",
        help="go back to a chat you left with /quit (the client printed this command)",
    )
    visitor.add_argument("--raw", action="store_true", help="print the protocol's frames as JSON")
    visitor.set_defaults(run=_client_visitor)
    counsellor = client_kinds.add_parser("counsellor", help="answer chats as a counsellor")
    counsellor.add_argument("--url", default="http://127.0.0.1:8000")
    counsellor.add_argument("--username", required=True)
    counsellor.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password (and with --totp the code) from stdin, one line each",
    )
    counsellor.add_argument(
        "--totp",
        action="store_true",
        help="ask for a TOTP or recovery code (every account but the demo's needs one)",
    )
    counsellor.add_argument(
        "--raw", action="store_true", help="print the protocol's frames as JSON"
    )
    counsellor.set_defaults(run=_client_counsellor)
    enrol = client_kinds.add_parser(
        "enrol", help="complete an enrolment link: set a password, enrol TOTP"
    )
    enrol.add_argument("link", help="the enrolment link (or just its token)")
    enrol.add_argument(
        "--stdin", action="store_true", help="read the password and the code from stdin"
    )
    enrol.set_defaults(run=_client_enrol)
    return parser


def _serve(args: argparse.Namespace) -> int:
    settings = Settings()
    overrides = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if overrides:
        settings = settings.model_copy(update=overrides)
    configure_logging(settings.log_level, settings.log_repeat_seconds)
    sock = _listen_or_explain(settings.host, settings.port)
    if sock is None:
        return 1
    problem = asyncio.run(_broker_problem(settings))
    if problem is not None:
        sock.close()
        print(f"lykta: {problem}", file=sys.stderr)
        return 1
    if args.migrate:
        asyncio.run(upgrade(settings.database_url))
    return run_server(settings, sock)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn runs Lykta (the tests run it the same way)."""
    from app.web.websocket import CoalescingWebSocketProtocol, unsupported

    ws: Any = "websockets-sansio"
    if settings.websocket_adapter:
        if unsupported():
            # It reaches inside uvicorn and websockets: not with versions it was not made for.
            logger.warning(
                "WebSocket adapter off: uvicorn or websockets is not a version it was written for"
            )
        else:
            # uvicorn's websockets-sansio, writing each connection's frames once per loop turn.
            ws = CoalescingWebSocketProtocol
    return {
        # uvicorn's own logging config would log to stderr in its format: ours is in place.
        "log_config": None,
        # The access log names every client's address and path; it is never on.
        "access_log": False,
        # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 (and from whatever
        # $FORWARDED_ALLOW_IPS says) and put that address in the request. Lykta reads a proxy's
        # header only in its rate limiter (LYKTA_TRUSTED_PROXIES); see docs/privacy.md.
        "proxy_headers": False,
        "forwarded_allow_ips": "",
        "server_header": False,
        "ws": ws,
        "ws_max_size": settings.ws_max_frame_bytes,
        "ws_per_message_deflate": False,
    }


async def _broker_problem(settings: Settings) -> str | None:
    """Why the configured broker cannot be used (Redis unreachable), or None."""
    from app.broker.base import BrokerUnavailableError
    from app.runtime import create_broker

    broker = create_broker(settings)
    try:
        await broker.start()
    except BrokerUnavailableError as exc:
        return str(exc)
    await broker.close()
    return None


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything else happens (OSError if it cannot be)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    # As uvicorn binds: a port whose last connections are still closing can be taken again.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _listen_or_explain(host: str, port: int) -> socket.socket | None:
    try:
        return listening_socket(host, port)
    except OSError as exc:
        why = "it is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        print(
            f"lykta: cannot listen on {host}:{port}: {why}. Is Lykta already running there? "
            "Stop it, or choose another port with --port. Nothing was changed.",
            file=sys.stderr,
        )
        return None


def run_server(settings: Settings, sock: socket.socket) -> int:
    """Serve on `sock` (bound by listening_socket) until stopped; the exit status."""
    import uvicorn

    from app.main import create_app

    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
        **uvicorn_options(settings),
    )
    server = uvicorn.Server(config)
    tune_gc()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn raises the Ctrl-C it caught again once it has shut down gracefully.
        pass
    finally:
        sock.close()
    # uvicorn's own exit status when the application could not start.
    return 0 if server.started else 3


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for a long-running server with many connections."""
    # What is loaded so far is frozen out of the collector's scans, and young collections run
    # every 50,000 allocations instead of 700: in bench/queue.py the default collector's
    # pauses were the slowest offers (docs/performance.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _demo(args: argparse.Namespace) -> int:
    os.environ.setdefault("LYKTA_DATABASE_URL", DEMO_DATABASE)
    # The visitor's page is served from where the demo listens, and a browser's chat is
    # refused from any other origin: on another port than the default, it must be this one.
    os.environ.setdefault("LYKTA_PUBLIC_URL", f"http://{args.host}:{args.port}")
    settings = Settings().model_copy(update={"host": args.host, "port": args.port})
    if not settings.is_development:
        print("lykta: the demo runs only with LYKTA_ENVIRONMENT=development", file=sys.stderr)
        return 2
    # The port first: a second demo while one runs must not change the first one's passwords.
    sock = _listen_or_explain(settings.host, settings.port)
    if sock is None:
        return 1
    configure_logging(settings.log_level, settings.log_repeat_seconds)
    accounts = asyncio.run(_prepare_demo(settings))
    base = f"http://{settings.host}:{settings.port}"
    print(
        "\nLykta demo — accounts for this run (demo accounts work only in development, "
        "and need no TOTP code):\n"
    )
    for account in accounts:
        print(f"  {account.username:<8} password {account.password:<20} {account.description}")
    print(
        f"\nIn a browser: the staff console at {base}/console (sign in as anna, then set\n"
        f"yourself available) and a visitor's chat at {base}/chat/support\n"
        f"\nOr try a chat in two terminals (README.md, 'Your first chat'):\n"
        f"  .venv/bin/lykta client counsellor --url {base} --username anna\n"
        f"  .venv/bin/lykta client visitor --url {base} --line support\n",
        flush=True,
    )
    return run_server(settings, sock)


async def _prepare_demo(settings: Settings) -> list[DemoAccount]:
    from app.demo import seed_demo

    await upgrade(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            return list(await seed_demo(session))
    finally:
        await engine.dispose()


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = Settings()
    before, after = asyncio.run(upgrade(settings.database_url))
    if before == after:
        print(f"the database is up to date ({after})")
    else:
        print(f"the database was migrated from {before or 'empty'} to {after}")
    return 0


def _lines_import(args: argparse.Namespace) -> int:
    from app.lines.service import LineConfigError, line_service, read_lines_file

    settings = Settings()
    try:
        lines = read_lines_file(args.file)
    except LineConfigError as exc:
        print(f"lykta: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                for line in lines:
                    await line_service.upsert(session, line)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print(f"imported {len(lines)} line(s): {', '.join(line.key for line in lines)}")
    return 0


def _staff_create(args: argparse.Namespace) -> int:
    from app.audit.service import AuditAction, audit_service
    from app.lines.service import line_service
    from app.staff.service import StaffError, staff_service

    settings = Settings()
    role = StaffRole.admin if args.admin else StaffRole(args.role)

    async def run() -> tuple[str, str]:
        engine = create_engine(settings.database_url)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                for line in args.line:
                    if await line_service.get(session, line) is None:
                        raise StaffError(f"there is no line {line!r}")
                staff = await staff_service.create(
                    session,
                    username=args.username.strip().lower(),
                    alias=args.alias or args.username,
                    role=role,
                    password=None,
                    qualification=Qualification(args.qualification) if args.qualification else None,
                    languages=[code.strip() for code in args.languages.split(",") if code.strip()],
                    capacity=args.capacity,
                    peer=args.peer,
                    supervisor=args.supervisor,
                )
                for line in args.line:
                    await staff_service.set_membership(session, staff, line)
                issued = await staff_service.issue_enrolment(session, staff, settings)
                await audit_service.record(
                    session,
                    AuditAction.staff_invited,
                    actor_id=None,
                    target_staff_id=staff.id,
                    detail={"role": role.value, "lines": list(args.line), "via": "cli"},
                )
                return issued.token, issued.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        finally:
            await engine.dispose()

    try:
        token, until = asyncio.run(run())
    except StaffError as exc:
        print(f"lykta: {exc}", file=sys.stderr)
        return 2
    _print_enrolment(settings, f"created {role.value} {args.username!r}", token, until)
    return 0


def _print_enrolment(settings: Settings, what: str, token: str, until: str) -> None:
    link = f"{settings.public_url.rstrip('/')}/enrol#{token}"
    print(
        f"{what}.\n"
        f"One-time enrolment link (valid until {until}); the person sets a password and TOTP:\n"
        f"  {link}\n"
        f"In a terminal: lykta client enrol '{link}'"
    )


def _staff_reset(args: argparse.Namespace) -> int:
    from app.staff.service import StaffError, staff_service

    settings = Settings()

    async def run() -> tuple[str, str]:
        engine = create_engine(settings.database_url)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                staff = await staff_service.find(session, args.username)
                if staff is None:
                    raise StaffError(f"there is no staff member {args.username!r}")
                issued = await staff_service.reset_account(
                    session,
                    staff,
                    settings,
                    password=args.password,
                    totp_reset=args.totp,
                    actor_id=None,
                )
                return issued.token, issued.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        finally:
            await engine.dispose()

    try:
        token, until = asyncio.run(run())
    except StaffError as exc:
        print(f"lykta: {exc}", file=sys.stderr)
        return 2
    _print_enrolment(settings, f"reset {args.username!r}", token, until)
    return 0


def _keys_generate(args: argparse.Namespace) -> int:
    import datetime

    from app.chats.crypto import KekConfigError, generate_kek, parse_keks

    kek_id = args.id or datetime.date.today().strftime("k%Y%m%d")
    kek = generate_kek(kek_id)
    try:
        parse_keks(kek)
    except KekConfigError as exc:
        print(f"lykta: {exc}", file=sys.stderr)
        return 2
    print(kek)
    print(
        "Put it first in LYKTA_KEKS to wrap new chats with it; keep the old ones after it "
        "until every chat they wrapped has ended.",
        file=sys.stderr,
    )
    return 0


def _moment(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _privacy_drill(args: argparse.Namespace) -> int:
    from app.kit import jsonutil
    from app.privacy.drill import UnclassifiedTableError, drill

    try:
        start, end = _moment(args.start), _moment(args.end)
    except ValueError:
        print("lykta: --from and --to must be ISO 8601 dates or times", file=sys.stderr)
        return 2
    if start >= end:
        print("lykta: --from must be before --to", file=sys.stderr)
        return 2
    settings = Settings()

    async def run() -> dict[str, Any]:
        engine = create_engine(settings.database_url)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                return await drill(session, start, end)
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(run())
    except UnclassifiedTableError as exc:
        print(f"lykta: {exc}", file=sys.stderr)
        return 1
    print(jsonutil.dumps(report))
    return 0


def _client_visitor(args: argparse.Namespace) -> int:
    from app.tools.client import run_visitor

    # The resume hint names the program as it was started (e.g. .venv/bin/lykta).
    program = sys.argv[0] if Path(sys.argv[0]).name == "lykta" else "lykta"
    return _interruptible(
        lambda: asyncio.run(
            run_visitor(
                args.url,
                args.line,
                args.language,
                resume=args.resume,
                raw=args.raw,
                program=program,
            )
        )
    )


def _client_counsellor(args: argparse.Namespace) -> int:
    from app.tools.client import run_counsellor

    def run() -> int:
        password = _stdin_line() if args.password_stdin else getpass.getpass("Password: ")
        code = None
        if args.totp:
            code = (
                _stdin_line()
                if args.password_stdin
                else input("Code (authenticator or recovery): ")
            )
        return asyncio.run(run_counsellor(args.url, args.username, password, code, raw=args.raw))

    return _interruptible(run)


def _interruptible(run: Callable[[], int]) -> int:
    """Ctrl-C before a client listens for it (at a prompt, while connecting): just stop."""
    try:
        return run()
    except (KeyboardInterrupt, EOFError):
        print(file=sys.stderr)
        return 130


def _client_enrol(args: argparse.Namespace) -> int:
    from app.tools.client import run_enrol

    if args.stdin:
        return run_enrol(args.link, ask_password=_stdin_line, ask_code=_stdin_line)

    def ask_password() -> str:
        while True:
            first = getpass.getpass("Choose a password: ")
            if getpass.getpass("Again: ") == first:
                return first
            print("The passwords differ; again.")

    return run_enrol(
        args.link, ask_password=ask_password, ask_code=lambda: input("Code from the app: ")
    )


def _stdin_line() -> str:
    """One line from stdin, unbuffered, so later lines stay for the chat client to read."""
    data = bytearray()
    while (byte := os.read(0, 1)) not in (b"", b"\n"):
        data += byte
    return data.decode()


if __name__ == "__main__":
    raise SystemExit(main())
