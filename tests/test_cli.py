"""The command line as a newcomer uses it: the README's demo and the terminal clients."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Origin

from tests.support.clients import StaffClient, fresh_code, open_staff
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer

ROOT = Path(__file__).resolve().parents[1]
LYKTA = [sys.executable, "-m", "app.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def env(**extra: str) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("LYKTA_")}
    values["PYTHONPATH"] = str(ROOT)
    values.update(extra)
    return values


class Process:
    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        # Lines read but not yet matched by wait_for, and every line read.
        self.lines: list[str] = []
        self.output: list[str] = []

    async def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        # The timeout only fails a stuck test: a loaded machine may take a while to migrate
        # and seed the demo (each demo password is hashed with Argon2).
        regex = re.compile(pattern)
        for line in self.lines:
            if match := regex.search(line):
                self.lines.remove(line)
                return match
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            raw = await asyncio.wait_for(
                self.proc.stdout.readline(), max(0.1, deadline - loop.time())
            )
            if not raw:
                raise AssertionError(
                    f"{self.name} ended before printing {pattern!r}; saw {self.lines}"
                )
            line = raw.decode().rstrip("\n")
            self.output.append(line)
            if match := regex.search(line):
                return match
            self.lines.append(line)

    async def type(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((text + "\n").encode())
        await self.proc.stdin.drain()

    def end_input(self) -> None:
        """Ctrl-D: the end of what is typed."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    async def exit_status(self) -> int:
        """Wait for the process to end, reading the rest of what it printed."""
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), 60)
        self.output.extend(rest.decode().splitlines())
        return await asyncio.wait_for(self.proc.wait(), 60)


@asynccontextmanager
async def spawn(
    name: str, *args: str, cwd: Path = ROOT, **extra_env: str
) -> AsyncIterator[Process]:
    proc = await asyncio.create_subprocess_exec(
        *LYKTA,
        *args,
        cwd=cwd,
        env=env(**extra_env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    process = Process(proc, name)
    try:
        yield process
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_readme_demo_and_a_first_chat_with_the_terminal_clients(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with spawn("demo", "demo", "--port", str(port), cwd=tmp_path) as demo:
        anna_password = (await demo.wait_for(r"anna\s+password (\S+)")).group(1)
        await demo.wait_for(r"Lykta \S+ listening on")
        await wait_until_up(url)
        async with httpx.AsyncClient() as http:
            lines = (await http.get(f"{url}/api/lines")).json()
        assert [line["key"] for line in lines] == ["support", "youth"]
        assert (tmp_path / "lykta-demo.db").exists()
        # A browser on the demo's visitor page, on this port, may open a chat.
        async with connect(f"ws://127.0.0.1:{port}/ws/visitor", origin=Origin(url)) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"

        async with spawn(
            "counsellor",
            "client",
            "counsellor",
            "--url",
            url,
            "--username",
            "anna",
            "--password-stdin",
        ) as anna:
            await anna.type(anna_password)
            await anna.wait_for(r"Signed in as Anna\. Lines: support \(on duty")
            await anna.type("/available")
            await anna.wait_for(r"\(you are available\)")
            async with spawn(
                "visitor", "client", "visitor", "--url", url, "--line", "support"
            ) as visitor:
                await visitor.wait_for(r"^You are number 1 in the queue")
                await anna.wait_for(r"^Offer #1: a chat on support in en")
                await anna.type("/accept")
                await anna.wait_for(r"^Chat #1 opened on support")
                await visitor.wait_for(r"^Anna joined the chat\.$")
                await visitor.type("Hello, I need to talk to someone")
                await anna.wait_for(r"^#1 visitor: Hello, I need to talk to someone$")
                await anna.type("I am here. Take your time.")
                await visitor.wait_for(r"^Anna: I am here\. Take your time\.$")
                await visitor.type("/end")
                await visitor.wait_for(r"^You ended the chat\.$")
                assert await visitor.exit_status() == 0
            await anna.wait_for(r"^#1 has ended: the visitor ended the chat\.$")
            await anna.wait_for(r"^Wrap up #1: /wrapup")
            await anna.type("/wrapup violence, health | support given")
            await anna.wait_for(r"\(wrap-up of #1 saved\)")
            await anna.type("/quit")
            assert await anna.exit_status() == 0
        # What the clients printed is words: no frame, no token.
        for line in visitor.output + anna.output:
            assert '"type"' not in line and "token" not in line, line
        demo.proc.send_signal(signal.SIGINT)
        assert await demo.exit_status() == 0


async def test_a_second_demo_while_one_runs_changes_nothing(tmp_path: Path) -> None:
    """It used to print new passwords, and store them, before it failed on the port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with spawn("demo", "demo", "--port", str(port), cwd=tmp_path) as demo:
        anna_password = (await demo.wait_for(r"anna\s+password (\S+)")).group(1)
        await demo.wait_for(r"Lykta \S+ listening on")
        await wait_until_up(url)
        second = await asyncio.to_thread(run_cli_in, tmp_path, "demo", "--port", str(port))
        assert second.returncode == 1
        assert (
            f"lykta: cannot listen on 127.0.0.1:{port}: it is in use. Is Lykta already running "
            "there? Stop it, or choose another port with --port. Nothing was changed."
        ) in second.stderr
        assert "password" not in second.stdout + second.stderr
        assert "Traceback" not in second.stderr
        async with httpx.AsyncClient(base_url=url) as http:
            signed_in = await http.post(
                "/api/staff/session", json={"username": "anna", "password": anna_password}
            )
        assert signed_in.status_code == 200, signed_in.text


async def test_start_up_logs_one_line_an_operator_can_use(tmp_path: Path) -> None:
    """The demo: the migrations in one line, then version, address, database, broker, lines;
    nothing withheld (library lines that said nothing to anyone)."""
    port = free_port()
    async with spawn("demo", "demo", "--port", str(port), cwd=tmp_path) as demo:
        migrated = await demo.wait_for(r'"event":"Database migrated from empty to (\w+)"')
        started = await demo.wait_for(r'"logger":"app\.main","event":"(Lykta [^"]+)"')
        await demo.wait_for(r"Application startup complete")
        demo.proc.send_signal(signal.SIGINT)
        assert await demo.exit_status() == 0
    assert started.group(1) == (
        f"Lykta 0.1.0 listening on http://127.0.0.1:{port}: database sqlite, "
        "broker in-process, lines support, youth"
    )
    # The newest migration's revision.
    newest = sorted((ROOT / "migrations" / "versions").glob("[0-9]*.py"))[-1]
    assert newest.name.startswith(f"{migrated.group(1)}_")
    logs = [line for line in demo.output if line.startswith("{")]
    assert logs and all(json.loads(line)["event"] != "withheld" for line in logs), logs


@pytest.mark.postgres
@pytest.mark.redis
async def test_serve_on_postgresql_and_redis_names_them_and_hides_the_redis_url(
    tmp_path: Path, database_url_pg: str, redis_prefix: str
) -> None:
    from tests.conftest import REDIS_URL

    port = free_port()
    async with spawn(
        "server",
        "serve",
        "--port",
        str(port),
        "--migrate",
        LYKTA_DATABASE_URL=database_url_pg,
        LYKTA_REDIS_URL=REDIS_URL,
        LYKTA_REDIS_PREFIX=redis_prefix,
    ) as server:
        started = await server.wait_for(r'"event":"(Lykta [^"]+)"')
        await server.wait_for(r"Application startup complete")
        server.proc.send_signal(signal.SIGINT)
        assert await server.exit_status() == 0
    assert started.group(1) == (
        f"Lykta 0.1.0 listening on http://127.0.0.1:{port}: database postgresql, "
        "broker redis, lines none yet"
    )
    everything = "\n".join(server.output)
    # Already migrated: nothing to say about it. Neither a server's address nor a password.
    assert "Database migrated" not in everything and "withheld" not in everything
    assert "6379" not in everything and "asyncpg" not in everything


@asynccontextmanager
async def visitor_in_a_chat(
    server: RunningServer, anna: StaffClient
) -> AsyncIterator[tuple[Process, str]]:
    """`lykta client visitor` in a chat Anna accepted and answered: (the client, the chat)."""
    async with spawn(
        "visitor", "client", "visitor", "--url", server.url, "--line", "support"
    ) as visitor:
        await visitor.wait_for(r"^You are number 1 in the queue")
        chat_id = (await anna.accept_offer())["chat_id"]
        await visitor.wait_for(r"^Anna joined the chat\.$")
        await visitor.type("Is anyone there?")
        await anna.expect("message", sender="visitor", text="Is anyone there?")
        await anna.say(chat_id, "Yes. I am Anna.")
        await visitor.wait_for(r"^Anna: Yes\. I am Anna\.$")
        yield visitor, chat_id


RESUME_HINT = r"^  lykta client visitor --url (\S+) --resume=(\S+):(\S+)$"


async def test_a_visitor_who_quits_comes_back_with_the_printed_command(
    server: RunningServer,
) -> None:
    await add_line(server.runtime)
    await add_counsellor(server.runtime, "anna", alias="Anna")
    anna = await open_staff(server, "anna", PASSWORD)
    async with visitor_in_a_chat(server, anna) as (visitor, chat_id):
        await visitor.type("/quit")
        hint = await visitor.wait_for(RESUME_HINT)
        # It quits: no reconnecting, so nothing typed after /quit reaches the counsellor.
        assert await visitor.exit_status() == 0
    assert hint.group(1) == server.url and hint.group(2) == chat_id
    await anna.expect("visitor.away", chat_id=chat_id)
    token = hint.group(3)
    # The token is on the screen once: in the command that resumes the chat.
    assert [line for line in visitor.output if token in line] == [hint.group(0)]
    assert not any(line.startswith("!") for line in visitor.output), visitor.output
    # With an escape sequence that would clear the visitor's terminal: shown, not obeyed.
    await anna.say(chat_id, "Take your time.\x1b[2J")

    async with spawn(
        "visitor again", "client", "visitor", "--url", server.url, f"--resume={chat_id}:{token}"
    ) as again:
        await again.wait_for(r"^You are back in the chat with Anna\.$")
        # Nothing lost: the chat so far, and what was written while the visitor was away.
        await again.wait_for(r"^You: Is anyone there\?$")
        await again.wait_for(r"^Anna: Yes\. I am Anna\.$")
        await again.wait_for(r"^Anna: Take your time\.\ufffd\[2J$")
        await anna.expect("visitor.back", chat_id=chat_id)
        await again.type("/end")
        await again.wait_for(r"^You ended the chat\.$")
        assert await again.exit_status() == 0
    await anna.expect("chat.ended", chat_id=chat_id, reason="visitor_ended")
    assert not any(token in line for line in again.output)


async def test_end_of_input_ends_the_visitors_chat_and_the_client(server: RunningServer) -> None:
    """Ctrl-D: the chat ends (it used to reconnect again and again, away and back each time)."""
    await add_line(server.runtime)
    await add_counsellor(server.runtime, "anna", alias="Anna")
    anna = await open_staff(server, "anna", PASSWORD)
    async with visitor_in_a_chat(server, anna) as (visitor, chat_id):
        visitor.end_input()
        await visitor.wait_for(r"^You ended the chat\.$")
        assert await visitor.exit_status() == 0
    await anna.expect("chat.ended", chat_id=chat_id, reason="visitor_ended")
    assert anna.seen("visitor.away") == [] and anna.seen("visitor.back") == []
    assert not any("reconnecting" in line or "--resume" in line for line in visitor.output)


async def test_ctrl_c_leaves_the_visitors_chat_waiting_without_a_traceback(
    server: RunningServer,
) -> None:
    await add_line(server.runtime)
    await add_counsellor(server.runtime, "anna", alias="Anna")
    anna = await open_staff(server, "anna", PASSWORD)
    async with visitor_in_a_chat(server, anna) as (visitor, chat_id):
        visitor.proc.send_signal(signal.SIGINT)
        await visitor.wait_for(RESUME_HINT)
        assert await visitor.exit_status() == 0
    await anna.expect("visitor.away", chat_id=chat_id)
    assert not any("Traceback" in line or line.startswith("!") for line in visitor.output), (
        visitor.output
    )


async def test_the_counsellor_client_quits_on_quit_ctrl_d_and_ctrl_c(
    server: RunningServer,
) -> None:
    await add_line(server.runtime)
    await add_counsellor(server.runtime, "anna", alias="Anna")
    for leave in ("/quit", "Ctrl-D", "Ctrl-C"):
        async with spawn(
            "counsellor",
            "client",
            "counsellor",
            "--url",
            server.url,
            "--username",
            "anna",
            "--password-stdin",
            "--totp",
        ) as anna:
            await anna.type(PASSWORD)
            await anna.type(await fresh_code("anna"))
            await anna.wait_for(r"^Signed in as Anna\. Lines: support \(on duty")
            if leave == "/quit":
                await anna.type("/quit")
            elif leave == "Ctrl-D":
                anna.end_input()
            else:
                anna.proc.send_signal(signal.SIGINT)
            await anna.wait_for(r"^\(you left\)$")
            assert await anna.exit_status() == 0, leave
        assert not any("Traceback" in line or line.startswith("!") for line in anna.output), (
            leave,
            anna.output,
        )


def run_cli(*args: str, stdin: str = "", **extra_env: str) -> subprocess.CompletedProcess[str]:
    return run_cli_in(ROOT, *args, stdin=stdin, **extra_env)


def run_cli_in(
    cwd: Path, *args: str, stdin: str = "", **extra_env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LYKTA, *args],
        cwd=cwd,
        env=env(**extra_env),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_outside_development_default_secrets_are_refused(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        LYKTA_ENVIRONMENT="production",
        LYKTA_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/x.db",
    )
    assert result.returncode == 2
    assert "LYKTA_SECRET_KEY still has its development default" in result.stderr
    short = run_cli("serve", LYKTA_ENVIRONMENT="production", LYKTA_SECRET_KEY="short")
    assert short.returncode == 2 and "at least 32 characters" in short.stderr


def test_keys_generate_prints_a_usable_kek_and_production_refuses_the_dev_one() -> None:
    generated = run_cli("keys", "generate", "--id", "k1")
    assert generated.returncode == 0
    kek = generated.stdout.strip()
    assert kek.startswith("k1:") and len(kek) > 40
    secret = "s" * 40
    dev = run_cli("serve", LYKTA_ENVIRONMENT="production", LYKTA_SECRET_KEY=secret)
    assert dev.returncode == 2 and "published development KEK" in dev.stderr
    broken = run_cli(
        "serve", LYKTA_ENVIRONMENT="production", LYKTA_SECRET_KEY=secret, LYKTA_KEKS="k1:short"
    )
    assert broken.returncode == 2 and "LYKTA_KEKS" in broken.stderr
    missing = run_cli(
        "serve", LYKTA_ENVIRONMENT="production", LYKTA_SECRET_KEY=secret, LYKTA_KEKS=""
    )
    assert missing.returncode == 2 and "no KEK is configured (LYKTA_KEKS)" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_db_upgrade_lines_import_and_staff_create(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path}/lykta.db"
    assert run_cli("db", "upgrade", LYKTA_DATABASE_URL=db).returncode == 0
    imported = run_cli("lines", "import", "config/lines.toml", LYKTA_DATABASE_URL=db)
    assert imported.returncode == 0 and "imported 2 line(s): support, youth" in imported.stdout
    created = run_cli("staff", "create", "--username", "root", "--admin", LYKTA_DATABASE_URL=db)
    assert created.returncode == 0, created.stderr
    assert re.search(r"http://127\.0\.0\.1:8000/enrol#\S{40,}", created.stdout)
    again = run_cli("staff", "create", "--username", "root", "--admin", LYKTA_DATABASE_URL=db)
    assert again.returncode == 2 and "already exists" in again.stderr
    no_qualification = run_cli("staff", "create", "--username", "c", LYKTA_DATABASE_URL=db)
    assert no_qualification.returncode == 2 and "qualification" in no_qualification.stderr
    no_line = run_cli(
        "staff",
        "create",
        "--username",
        "d",
        "--qualification",
        "volunteer",
        "--line",
        "nowhere",
        LYKTA_DATABASE_URL=db,
    )
    assert no_line.returncode == 2 and "no line 'nowhere'" in no_line.stderr
    reset = run_cli("staff", "reset", "--username", "root", "--totp", LYKTA_DATABASE_URL=db)
    assert reset.returncode == 0 and "/enrol#" in reset.stdout
    nobody = run_cli("staff", "reset", "--username", "nobody", LYKTA_DATABASE_URL=db)
    assert nobody.returncode == 2 and "no staff member 'nobody'" in nobody.stderr


async def test_a_new_deployment_from_the_first_admin_to_a_counsellor_taking_chats(
    tmp_path: Path,
) -> None:
    """The bootstrap path outside the demo: every account enrols TOTP through a link."""
    db = f"sqlite+aiosqlite:///{tmp_path}/lykta.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings: dict[str, str] = {"LYKTA_DATABASE_URL": db, "LYKTA_PUBLIC_URL": url}
    assert run_cli("db", "upgrade", **settings).returncode == 0
    assert run_cli("lines", "import", "config/lines.toml", **settings).returncode == 0
    created = run_cli("staff", "create", "--username", "root", "--admin", **settings)
    admin_link = re.search(r"(http\S+/enrol#\S+)", created.stdout)
    assert admin_link, created.stdout
    async with spawn(
        "server", "serve", "--port", str(port), LYKTA_DATABASE_URL=db, LYKTA_PUBLIC_URL=url
    ) as server:
        await server.wait_for(r"Lykta \S+ listening on")
        await wait_until_up(url)
        admin_secret = await enrol(admin_link.group(1), "a long admin passphrase")
        async with httpx.AsyncClient(base_url=url) as http:
            signed_in = await http.post(
                "/api/staff/session",
                json={
                    "username": "root",
                    "password": "a long admin passphrase",
                    # The code of this moment went on enrolment; each is accepted once.
                    "code": next_code(admin_secret),
                },
            )
            assert signed_in.status_code == 200, signed_in.text
            invited = await http.post(
                "/api/staff",
                headers={"X-CSRF-Token": signed_in.json()["csrf_token"]},
                json={
                    "username": "sara",
                    "alias": "Sara",
                    "role": "counsellor",
                    "qualification": "psychologist",
                    "languages": ["sv", "en"],
                    "lines": [{"key": "support"}],
                },
            )
            assert invited.status_code == 201, invited.text
            # Put the new counsellor on duty now, as a coordinator does between shifts.
            on_duty = await http.post(
                "/api/roster/lines/support/duty",
                headers={"X-CSRF-Token": signed_in.json()["csrf_token"]},
                json={
                    "staff_id": invited.json()["staff"]["id"],
                    "until": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
                },
            )
            assert on_duty.status_code == 201, on_duty.text
        sara_secret = await enrol(
            invited.json()["enrolment"]["link"], "a counsellor's long passphrase"
        )
        async with spawn(
            "counsellor",
            "client",
            "counsellor",
            "--url",
            url,
            "--username",
            "sara",
            "--password-stdin",
            "--totp",
        ) as sara:
            await sara.type("a counsellor's long passphrase")
            await sara.type(next_code(sara_secret))
            await sara.wait_for(r"^Signed in as Sara\. Lines: support \(on duty")
            await sara.type("/quit")
            assert await sara.exit_status() == 0


def next_code(secret: str) -> str:
    """The code an authenticator shows in the next 30 s step (accepted: clocks drift)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


async def wait_until_up(url: str) -> None:
    for _ in range(200):
        try:
            async with httpx.AsyncClient() as http:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    raise AssertionError("the server did not come up")


async def enrol(link: str, password: str) -> str:
    """`lykta client enrol` as a person uses it; returns the TOTP key it showed."""
    async with spawn("enrol", "client", "enrol", link, "--stdin") as client:
        await client.wait_for(r"Enrolling")
        secret = (await client.wait_for(r"^key: (\S+)")).group(1)
        await client.type(password)
        await client.type(pyotp.TOTP(secret).now())
        await client.wait_for(r"Enrolled \S+\. You can sign in now\.")
        codes = [(await client.wait_for(r"^  ([a-z2-9]{4}(-[a-z2-9]{4}){3})$")).group(1)]
        assert await asyncio.wait_for(client.proc.wait(), 10) == 0
        assert codes
        return secret


def test_a_broken_lines_file_is_reported_and_nothing_is_imported(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path}/lykta.db"
    run_cli("db", "upgrade", LYKTA_DATABASE_URL=db)
    bad = tmp_path / "lines.toml"
    bad.write_text(
        '[[line]]\nkey = "Bad Key"\nname = "x"\nlanguages = ["sv"]\n'
        'required_qualification = "wizard"\n'
    )
    result = run_cli("lines", "import", str(bad), LYKTA_DATABASE_URL=db)
    assert result.returncode == 2
    assert "line 1" in result.stderr and "required_qualification" in result.stderr


def test_serve_refuses_to_start_without_its_redis(tmp_path: Path) -> None:
    """Redis unreachable at start-up: a clear message (without the password), exit status 1."""
    port = free_port()  # nothing listens there
    result = subprocess.run(
        [*LYKTA, "serve", "--port", str(free_port())],
        env=env(
            LYKTA_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'lykta.db'}",
            LYKTA_REDIS_URL=f"redis://:s3cret-pw@127.0.0.1:{port}/0",
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_a_redis_key_prefix_must_be_a_plain_name(tmp_path: Path) -> None:
    result = subprocess.run(
        [*LYKTA, "serve"],
        env=env(LYKTA_REDIS_URL="redis://127.0.0.1:6379/0", LYKTA_REDIS_PREFIX="a b*{c}"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "LYKTA_REDIS_PREFIX" in result.stderr
