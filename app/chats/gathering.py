"""Frames read while the ones before are still being handled go together, in order.

A client's reader hands each message frame on and reads the next one at once; whatever was
read while a batch was being stored is stored next, in one step. On Redis that is one round
trip for a burst instead of one per message; in-process, the batch is handled as soon as the
reader has read what was there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Gathering(Generic[T]):
    """Hands what `add` is given to `handle`, a batch at a time, in order."""

    def __init__(self, handle: Callable[[list[T]], Awaitable[None]]) -> None:
        self._handle = handle
        self._items: list[T] = []
        self._task: asyncio.Task[None] | None = None
        # Kept: on Python 3.11 every asyncio.get_running_loop() is a getpid() system call.
        self._loop = asyncio.get_running_loop()

    def add(self, item: T) -> None:
        self._items.append(item)
        if self._task is None:
            self._task = self._loop.create_task(self._run())

    async def _run(self) -> None:
        while self._items:
            batch, self._items = self._items, []
            await self._handle(batch)
        # Left in place when handling failed: `settled` raises it, and nothing more is done.
        self._task = None

    async def settled(self) -> None:
        """Until everything added so far is handled (raises what handling it raised)."""
        task = self._task
        if task is not None:
            await task
