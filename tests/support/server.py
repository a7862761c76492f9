"""Real uvicorn on 127.0.0.1 inside the test's event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from app.broker.base import Broker
from app.cli import uvicorn_options
from app.main import create_app
from app.runtime import Runtime
from app.settings import Settings


@dataclass
class RunningServer:
    app: FastAPI
    settings: Settings
    port: int
    server: uvicorn.Server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime


def bound_socket() -> socket.socket:
    """A listening-ready socket on a free port of 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def run_server(
    settings: Settings, broker: Broker | None = None, *, sock: socket.socket | None = None
) -> AsyncIterator[RunningServer]:
    """Lykta as `lykta serve` runs it; `broker` continues that broker's state (a restart);
    `sock`: a socket bound beforehand (for settings that must name the port, e.g. public_url)."""
    app = create_app(settings, broker=broker)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        timeout_graceful_shutdown=2,
        **uvicorn_options(settings),
    )
    server = uvicorn.Server(config)
    sock = sock or bound_socket()
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield RunningServer(app=app, settings=settings, port=port, server=server)
    finally:
        server.should_exit = True
        await task
        sock.close()
        # The test's own clients on this loop see the server close their connections only
        # once the loop turns again; closed then, none is left for the garbage collector.
        await asyncio.sleep(0.05)
