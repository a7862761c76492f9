"""Lykta as separate OS processes (`lykta serve`, real uvicorn on uvloop) and our own Redis.

The multi-process tests start several of these on one PostgreSQL database and one Redis,
exactly as a deployment runs them, and kill or stop them with real signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.runtime import Runtime
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# How long a process may take to start or stop before the test fails (a bound, not a claim).
START_TIMEOUT = 60.0

# The app reads the wall clock only through time.time(); shifting it here is how a test gives
# one process a clock that is off by some seconds, or runs at another rate (a clock that
# drifts between two measurements of Redis's), as a badly synchronised machine's would.
_BOOT = """
import sys, time
skew, rate = float(sys.argv[1]), float(sys.argv[2])
if skew or rate != 1.0:
    _real = time.time
    _start = _real()
    time.time = lambda: _start + (_real() - _start) * rate + skew
from app.cli import main
sys.exit(main(["serve"]))
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LyktaProcess:
    """One `lykta serve` process."""

    name: str
    env: dict[str, str]
    log: Path
    skew: float = 0.0
    rate: float = 1.0
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._spawn()
        await self.wait_ready()

    def _spawn(self) -> None:
        env = {**os.environ, **self.env, "LYKTA_PORT": str(self.port)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(self.skew), str(self.rate)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    async def wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as http:
            while loop.time() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start: {self.log.read_text()[-2000:]}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self) -> int:
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while self.proc.poll() is None:
            if loop.time() > deadline:
                raise RuntimeError(f"{self.name} did not exit")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await self.wait_exit()
        except RuntimeError:
            self.proc.kill()
            await self.wait_exit()


def process_env(settings: Settings) -> dict[str, str]:
    """LYKTA_* variables for the settings that differ from the defaults (as an operator sets)."""
    defaults = Settings()
    env: dict[str, str] = {"LYKTA_LOG_LEVEL": "WARNING"}
    for name, value in settings.model_dump().items():
        if name in ("host", "port", "log_level") or value == getattr(defaults, name):
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, frozenset | set | list | tuple | dict):
            # As an operator writes a collection: JSON.
            value = json.dumps(sorted(value) if isinstance(value, frozenset | set) else value)
        env[f"LYKTA_{name.upper()}"] = str(value)
    return env


class RedisServer:
    """A redis-server of our own on a free port, which a test may stop and start again."""

    def __init__(self, directory: Path, *, appendonly: bool = True) -> None:
        self.directory = directory
        self.port = free_port()
        self.appendonly = appendonly
        # More `--name value` arguments for the next start (e.g. to make loading slow).
        self.options: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._spawn()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
        raise RuntimeError("redis-server did not start")

    def _spawn(self) -> None:
        executable = shutil.which("redis-server")
        assert executable is not None, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while self.proc.poll() is None:
            if loop.time() > deadline:
                self.proc.kill()
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def seeding(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime that is never started: its database and line cache for the seed helpers."""
    runtime = Runtime.build(settings)
    try:
        yield runtime
    finally:
        await runtime.engine.dispose()


@contextlib.asynccontextmanager
async def processes(
    settings: Settings,
    directory: Path,
    count: int = 2,
    skews: tuple[float, ...] = (),
    rates: tuple[float, ...] = (),
) -> AsyncIterator[list[LyktaProcess]]:
    """`count` Lykta processes on the settings' database and Redis, stopped afterwards; each
    one's clock off by its `skews` and running at its `rates` (1.0 by default)."""
    env = process_env(settings)
    started = [
        LyktaProcess(
            name=f"lykta-{index}",
            env=env,
            log=directory / f"lykta-{index}.log",
            skew=skews[index] if index < len(skews) else 0.0,
            rate=rates[index] if index < len(rates) else 1.0,
        )
        for index in range(count)
    ]
    try:
        await asyncio.gather(*(p.start() for p in started))
        yield started
    finally:
        await asyncio.gather(*(p.stop() for p in started))


class SentinelSetup:
    """A primary, a replica and a Sentinel watching them, each a redis-server of our own on a
    free port: what docs/deploy.md recommends, in one machine."""

    SERVICE = "lykta"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ports = [free_port(), free_port()]
        self.sentinel_port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def sentinels(self) -> str:
        return f"127.0.0.1:{self.sentinel_port}"

    async def start(self) -> None:
        executable = shutil.which("redis-server")
        assert executable is not None, "redis-server is not installed"
        primary, replica = self.ports
        for index, port in enumerate(self.ports):
            folder = self.directory / f"redis-{index}"
            folder.mkdir(exist_ok=True)
            args = [executable, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
            args += ["--save", "", "--appendonly", "no"]
            if port == replica:
                args += ["--replicaof", "127.0.0.1", str(primary)]
            self.procs.append(self._spawn(args))
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {primary} 1\n"
            f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
            f"sentinel failover-timeout {self.SERVICE} 10000\n"
        )
        self.procs.append(self._spawn([executable, str(config), "--sentinel"]))
        await self.wait_replicated()

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def primary_port(self) -> int:
        """The primary's port, as the Sentinel names it."""
        import redis.asyncio as aioredis

        client: Any = aioredis.Redis(host="127.0.0.1", port=self.sentinel_port)
        try:
            _, port = await client.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.SERVICE
            )
            return int(port)
        finally:
            await client.aclose()

    def replica_process(self, primary: int) -> subprocess.Popen[bytes]:
        """The redis-server that is not the primary on `primary`."""
        return self.procs[1 - self.ports.index(primary)]

    async def wait_replicated(self) -> None:
        """Until the Sentinel names a primary whose replica is linked and in sync."""
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            with contextlib.suppress(Exception):
                primary = await self.primary_port()
                replica = next(p for p in self.ports if p != primary)
                client: Any = aioredis.Redis(host="127.0.0.1", port=replica)
                try:
                    info = await client.info("replication")
                finally:
                    await client.aclose()
                sentinel: Any = aioredis.Redis(host="127.0.0.1", port=self.sentinel_port)
                try:
                    known = await sentinel.execute_command("SENTINEL", "REPLICAS", self.SERVICE)
                finally:
                    await sentinel.aclose()
                if (
                    info.get("master_port") == primary
                    and info.get("master_link_status") == "up"
                    and known
                ):
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError("the replica did not catch up with the primary")

    async def fail_over(self) -> int:
        """Have the Sentinel promote the replica now; the old primary's port."""
        import redis.asyncio as aioredis

        old = await self.primary_port()
        client: Any = aioredis.Redis(host="127.0.0.1", port=self.sentinel_port)
        try:
            await client.execute_command("SENTINEL", "FAILOVER", self.SERVICE)
        finally:
            await client.aclose()
        return old

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        for proc in self.procs:
            while proc.poll() is None:
                if loop.time() > deadline:
                    proc.kill()
                await asyncio.sleep(0.05)
