"""What the benchmarks share: real server processes, their CPU and memory, seeding, results.

Every server is a separate OS process started the way a user starts it (`lykta serve`, or
uvicorn for the bare relay), on uvloop with per-message compression off. CPU time and memory
come from the kernel's accounting of each process (/proc), not from wall-clock timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
ADMIN_DSN = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

# Settings every Lykta under benchmark runs with: per-client limits off (every client comes
# from 127.0.0.1), flood control far above the offered load, fast background ticks as in
# tests. Everything else is the production default.
LYKTA_ENV = {
    "LYKTA_LOG_LEVEL": "WARNING",
    "LYKTA_CONNECTION_RATE_PER_MINUTE": "10000000",
    "LYKTA_HTTP_RATE_PER_MINUTE": "10000000",
    "LYKTA_SIGN_IN_RATE_PER_MINUTE": "10000000",
    "LYKTA_VISITOR_MESSAGE_RATE_PER_MINUTE": "10000000",
    "LYKTA_VISITOR_FRAME_RATE": "100000",
    "LYKTA_VISITOR_FRAME_BURST": "100000",
    "LYKTA_STAFF_FRAME_RATE": "100000",
    "LYKTA_STAFF_FRAME_BURST": "100000",
    "LYKTA_SEND_QUEUE_SIZE": "4096",
}


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def quiet_client() -> None:
    """The clients' own garbage-collector pauses would show as server latency: fewer of them."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from the kernel's accounting."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def syscalls(pid: int) -> tuple[int, int]:
    """Read and write system calls a process has made (reads include receives), from the
    kernel's accounting."""
    fields = dict(line.split(": ", 1) for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["syscr"]), int(fields["syscw"])


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg(),
    }


@dataclass
class Server:
    """One server process under benchmark."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    cwd: Path = ROOT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self, log: Path) -> None:
        env = {**os.environ, **self.env}
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [a.replace("{port}", str(self.port)) for a in self.argv],
                env=env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, path: str = "/healthz") -> None:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(path)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start")

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def syscalls(self) -> tuple[int, int]:
        return syscalls(self.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def lykta_server(name: str, env: dict[str, str]) -> Server:
    server = Server(name, [str(BIN / "lykta"), "serve", "--port", "{port}"])
    server.env = {**LYKTA_ENV, **env}
    return server


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """The project at git `ref`, in a worktree of its own (removed afterwards): an earlier
    version of Lykta to run beside this one."""
    folder = Path(tempfile.mkdtemp(prefix="lykta-bench-ref-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(folder), ref],
        check=True,
        capture_output=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)],
            check=False,
            capture_output=True,
        )


def lykta_server_at(name: str, env: dict[str, str], source: Path) -> Server:
    """`lykta serve` as the code in `source` (a checkout) has it, on this environment's
    packages."""
    boot = (
        f"import sys; sys.path.insert(0, {str(source)!r}); from app.cli import main; "
        "sys.exit(main(['serve', '--port', sys.argv[1]]))"
    )
    server = Server(name, [sys.executable, "-c", boot, "{port}"])
    server.env = {**LYKTA_ENV, **env}
    server.cwd = source
    return server


def relay_server(name: str = "relay", app: str = "bench.relay_app:app") -> Server:
    """The bare FastAPI relay (bench/relay_app.py), with the same uvicorn options as Lykta."""
    return Server(
        name,
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--port",
            "{port}",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--ws",
            "websockets-sansio",
            "--ws-per-message-deflate",
            "false",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
    )


def redis_server(name: str = "redis") -> Server:
    executable = shutil.which("redis-server") or "redis-server"
    return Server(
        name,
        [executable, "--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    )


async def wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    name = f"lykta_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def seed(database_url: str, *, counsellors: int, capacity: int, **line: Any) -> list[str]:
    """Migrate, create the `bench` line and counsellors on duty; their session tokens."""
    from datetime import timedelta

    from app.kit.clock import utcnow
    from app.kit.db import create_engine, create_sessionmaker, unit_of_work
    from app.kit.migrate import upgrade
    from app.lines.schemas import LineSettings
    from app.lines.service import line_service
    from app.models.enums import Qualification, StaffRole
    from app.roster.service import roster_service
    from app.staff.service import staff_service

    await upgrade(database_url)
    engine = create_engine(database_url)
    tokens = []
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            values: dict[str, Any] = {
                "key": "bench",
                "name": "Bench",
                "languages": ["sv", "en"],
                "required_qualification": "psychologist",
                "max_queue_length": 10_000,
                "offer_timeout_seconds": 600,
                "visitor_grace_seconds": 600,
                "counsellor_grace_seconds": 600,
                "language_relax_seconds": 0,
                **line,
            }
            await line_service.upsert(session, LineSettings.model_validate(values))
            for index in range(counsellors):
                # No password: the benchmark opens sessions directly (no Argon2 per account).
                staff = await staff_service.create(
                    session,
                    username=f"c{index:05d}",
                    alias=f"C{index}",
                    role=StaffRole.counsellor,
                    password=None,
                    qualification=Qualification.psychologist,
                    languages=["sv", "en"],
                    capacity=capacity,
                )
                await staff_service.set_membership(session, staff, "bench")
                # On duty from now, as a coordinator's ad hoc addition would put them.
                await roster_service.add_duty(
                    session,
                    staff_id=staff.id,
                    line_key="bench",
                    until=utcnow() + timedelta(hours=12),
                    by=None,
                    now=utcnow(),
                )
                opened = await staff_service.open_session(
                    session, staff, absolute=timedelta(hours=12)
                )
                tokens.append(opened.token)
    finally:
        await engine.dispose()
    return tokens


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "machine": machine(), "at": time.time(), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return path


def final_line(name: str, values: dict[str, float]) -> str:
    return f"{name}: " + " ".join(f"{k}={v:.3g}" for k, v in values.items())
