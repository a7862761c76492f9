"""Waiting for a condition (never for a guessed time): the bound only fails a stuck test."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

WAIT = 10.0


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = WAIT, what: str = "condition"
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s")
        await asyncio.sleep(0.05)
