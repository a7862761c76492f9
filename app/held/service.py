"""Held rows: every durable row that belongs to a chat waits in the broker until its hour is
over, then goes to SQL with the rest of that hour's rows, shuffled, in one transaction.

A chat's audit entries, statistics row, wrap-up and debrief request hold the hour and no finer
time, but the moment a row is written (its order among rows that keep the second, its place in
the table, PostgreSQL's commit time in the write-ahead log) would tell the minute. Written this
way, all that can be read is the hour. Rows that name no chat (sign-ins, roster edits) are
written at once. What must be seen before its hour is over (the debriefs asked, on Supervise)
is read from the broker meanwhile (`pending`).

Each process runs `run()`; across processes a claim in the broker lets one writer at a time
take an hour's batch, and a batch is written idempotently (rows keep the random ids given when
they were held), so a writer dying after its commit leaves no duplicate. The in-process
broker dies with its process: `Runtime.stop` writes what it holds (`flush_all`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.broker.base import Broker, log_failure
from app.held.repository import HeldRowRepository
from app.held.rows import HeldRow, deserialise, serialise
from app.kit.db import unit_of_work

logger = logging.getLogger(__name__)

H = TypeVar("H", bound=HeldRow)

HOUR = 3600
# A batch is written this long after its hour: a row held in the hour's last instant is in
# by then (one held later still is, with the next pass: after the hour all the same).
SETTLE_SECONDS = 5.0
# How long one process may take to write a batch before another may try (seconds).
CLAIM_SECONDS = 120.0


def hour_of(epoch_seconds: float) -> int:
    return int(epoch_seconds // HOUR) * HOUR


class HeldRows:
    def __init__(
        self,
        broker: Broker,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        interval: float = 30.0,
    ) -> None:
        self.broker = broker
        self.sessionmaker = sessionmaker
        self.interval = interval
        self._random = secrets.SystemRandom()
        # Which rows are kept at all (set by the runtime: a practice line's chats leave no
        # statistics row and no wrap-up, app/stats/recorder.py).
        self.keeps: Callable[[HeldRow], bool] = lambda row: True

    async def hold(self, *rows: HeldRow) -> None:
        """Keep the rows in the broker until their hour's batch is written."""
        kept = [serialise(r) for r in rows if self.keeps(r)]
        if kept:
            await self.broker.hold_rows(hour_of(self.broker.now()), kept)

    async def pending(self, model: type[H]) -> list[H]:
        """The rows of `model` held and not yet written, every hour's (written ones leave the
        broker once their batch is committed, so a row is always in one place or both)."""
        out: list[H] = []
        for hour in await self.broker.held_hours():
            for text in (await self.broker.peek_held(hour)).values():
                row = deserialise(text)
                if isinstance(row, model):
                    out.append(row)
        return out

    async def flush_due(self, now: float) -> int:
        """Write the batch of every hour that ended (with SETTLE_SECONDS) by `now` and that
        no other process is writing; how many rows were written."""
        written = 0
        for hour in await self.broker.held_hours():
            if hour + HOUR + SETTLE_SECONDS > now:
                break
            written += await self._write(hour)
        return written

    async def flush_all(self) -> int:
        """Write every held row, the current hour's too (the in-process broker at shutdown:
        later they would be lost)."""
        return await self.flush_due(math.inf)

    async def _write(self, hour: int) -> int:
        claim = secrets.token_hex(16)
        held = await self.broker.claim_held(hour, claim, CLAIM_SECONDS)
        if held is None:
            return 0  # another process is writing it
        try:
            rows = [deserialise(text) for text in held.values()]
            # Neither the order the rows were made in nor their ids' order survives.
            self._random.shuffle(rows)
            async with unit_of_work(self.sessionmaker) as session:
                written = await HeldRowRepository(session).add_new(rows)
        except BaseException:
            # Kept in the broker, unclaimed: the next pass (or the flush at shutdown, after
            # a cancellation) tries again.
            with contextlib.suppress(Exception):
                await self.broker.release_held(hour, claim, [])
            raise
        await self.broker.release_held(hour, claim, list(held))
        return written

    async def run(self) -> None:
        """Write each hour's batch once the hour is over (at start-up too: a batch left by a
        process that died is written by the next one)."""
        while True:
            try:
                await self.flush_due(self.broker.now())
            except Exception:
                log_failure(logger, "could not write held rows; will retry")
            await asyncio.sleep(self.interval)
