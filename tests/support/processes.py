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

import httpx

from app.runtime import Runtime
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# How long a process may take to start or stop before the test fails (a bound, not a claim).
START_TIMEOUT = 60.0

# The app reads the wall clock only through time.time(); shifting it here is how a test gives
# one process a clock that is off by some seconds, as a badly synchronised machine would.
_BOOT = """
import sys, time
skew = float(sys.argv[1])
if skew:
    _real = time.time
    time.time = lambda: _real() + skew
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
                [sys.executable, "-c", _BOOT, str(self.skew)],
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
    settings: Settings, directory: Path, count: int = 2, skews: tuple[float, ...] = ()
) -> AsyncIterator[list[LyktaProcess]]:
    """`count` Lykta processes on the settings' database and Redis, stopped afterwards."""
    env = process_env(settings)
    started = [
        LyktaProcess(
            name=f"lykta-{index}",
            env=env,
            log=directory / f"lykta-{index}.log",
            skew=skews[index] if index < len(skews) else 0.0,
        )
        for index in range(count)
    ]
    try:
        await asyncio.gather(*(p.start() for p in started))
        yield started
    finally:
        await asyncio.gather(*(p.stop() for p in started))
