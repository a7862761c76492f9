"""The `lykta` command line."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from app.kit.db import create_engine, create_sessionmaker, unit_of_work
from app.kit.logging import configure_logging
from app.kit.migrate import upgrade
from app.models.enums import Qualification, StaffRole
from app.settings import Settings

if TYPE_CHECKING:
    from app.demo import DemoAccount

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
    create = staff.add_parser("create", help="create a staff account (asks for its password)")
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
    create.add_argument("--on-duty", action="store_true", help="mark them on duty on those lines")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    create.set_defaults(run=_staff_create)

    keys = commands.add_parser("keys", help="key commands").add_subparsers(title="keys commands")
    generate = keys.add_parser("generate", help="print a new key-encryption key for LYKTA_KEKS")
    generate.add_argument("--id", default=None, help="its id (default: today's date)")
    generate.set_defaults(run=_keys_generate)

    client = commands.add_parser("client", help="a terminal chat client (the documented example)")
    client_kinds = client.add_subparsers(title="who")
    visitor = client_kinds.add_parser("visitor", help="chat as an anonymous visitor")
    visitor.add_argument("--url", default="http://127.0.0.1:8000")
    visitor.add_argument("--line", default="support")
    visitor.add_argument("--language", default="en")
    visitor.set_defaults(run=_client_visitor)
    counsellor = client_kinds.add_parser("counsellor", help="answer chats as a counsellor")
    counsellor.add_argument("--url", default="http://127.0.0.1:8000")
    counsellor.add_argument("--username", required=True)
    counsellor.add_argument("--password-stdin", action="store_true")
    counsellor.set_defaults(run=_client_counsellor)
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
    configure_logging(settings.log_level)
    problem = asyncio.run(_broker_problem(settings))
    if problem is not None:
        print(f"lykta: {problem}", file=sys.stderr)
        return 1
    if args.migrate:
        asyncio.run(upgrade(settings.database_url))
    run_server(settings)
    return 0


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


def run_server(settings: Settings) -> None:
    import uvicorn

    from app.main import create_app

    print(f"Lykta listening on http://{settings.host}:{settings.port}", file=sys.stderr, flush=True)
    tune_gc()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        # Client addresses are never taken from proxy headers for logging; see docs/privacy.md.
        proxy_headers=False,
        server_header=False,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=settings.ws_max_frame_bytes,
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=10,
    )


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
    settings = Settings().model_copy(update={"host": args.host, "port": args.port})
    if not settings.is_development:
        print("lykta: the demo runs only with LYKTA_ENVIRONMENT=development", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    accounts = asyncio.run(_prepare_demo(settings))
    base = f"http://{settings.host}:{settings.port}"
    print("\nLykta demo — accounts for this run (demo accounts work only in development):\n")
    for account in accounts:
        print(f"  {account.username:<8} password {account.password:<20} {account.description}")
    print(
        f"\nTry a chat in two terminals (README.md, 'Your first chat'):\n"
        f"  .venv/bin/lykta client counsellor --url {base} --username anna\n"
        f"  .venv/bin/lykta client visitor --url {base} --line support\n",
        flush=True,
    )
    run_server(settings)
    return 0


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
    asyncio.run(upgrade(settings.database_url))
    print("database is up to date")
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
    from app.staff.service import StaffError, staff_service

    settings = Settings()
    role = StaffRole.admin if args.admin else StaffRole(args.role)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("lykta: the passwords differ", file=sys.stderr)
            return 2
    if len(password) < 12:
        print("lykta: use a password of at least 12 characters", file=sys.stderr)
        return 2

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                staff = await staff_service.create(
                    session,
                    username=args.username,
                    alias=args.alias or args.username,
                    role=role,
                    password=password,
                    qualification=Qualification(args.qualification) if args.qualification else None,
                    languages=[code.strip() for code in args.languages.split(",") if code.strip()],
                    capacity=args.capacity,
                    peer=args.peer,
                    supervisor=args.supervisor,
                )
                for line in args.line:
                    await staff_service.set_membership(session, staff, line, on_duty=args.on_duty)
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except StaffError as exc:
        print(f"lykta: {exc}", file=sys.stderr)
        return 2
    print(f"created {role.value} {args.username!r}")
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


def _client_visitor(args: argparse.Namespace) -> int:
    from app.tools.client import run_visitor

    return asyncio.run(run_visitor(args.url, args.line, args.language))


def _client_counsellor(args: argparse.Namespace) -> int:
    from app.tools.client import run_counsellor

    password = _stdin_line() if args.password_stdin else getpass.getpass("Password: ")
    return asyncio.run(run_counsellor(args.url, args.username, password))


def _stdin_line() -> str:
    """One line from stdin, unbuffered, so later lines stay for the chat client to read."""
    data = bytearray()
    while (byte := os.read(0, 1)) not in (b"", b"\n"):
        data += byte
    return data.decode()


if __name__ == "__main__":
    raise SystemExit(main())
