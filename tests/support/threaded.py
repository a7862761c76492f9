"""Lykta on real uvicorn in a thread of its own, for synchronous clients (Schemathesis calls
the server with `requests` from Hypothesis tests, which are not coroutines)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TypeVar

from app.settings import Settings
from tests.support.server import RunningServer, run_server

T = TypeVar("T")

# How long starting or stopping may take before the test fails (a bound on failure only).
START_TIMEOUT = 60.0


@contextmanager
def server_in_thread(
    settings: Settings, prepare: Callable[[RunningServer], Awaitable[T]]
) -> Iterator[tuple[RunningServer, T]]:
    """Start Lykta in a thread with its own event loop, await `prepare(server)` there (seed
    accounts, sign in), and yield the server with what `prepare` returned."""
    ready: Future[tuple[RunningServer, T]] = Future()
    loop_of_server: Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = Future()

    async def main() -> None:
        stop = asyncio.Event()
        loop_of_server.set_result((asyncio.get_running_loop(), stop))
        try:
            async with run_server(settings) as server:
                ready.set_result((server, await prepare(server)))
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="lykta-server")
    thread.start()
    try:
        yield ready.result(timeout=START_TIMEOUT)
    finally:
        loop, stop = loop_of_server.result(timeout=START_TIMEOUT)
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=START_TIMEOUT)
        assert not thread.is_alive(), "the server thread did not stop"
