"""Held rows as a test reaches them: the hour's end comes by asking for it, not by waiting."""

from __future__ import annotations

import asyncio

from app.held.service import HOUR, SETTLE_SECONDS, HeldRows
from app.runtime import Runtime

# A bound on how long rows still on their way to the broker are waited for (failure only).
_TRIES = 200


def after_the_hour(held: HeldRows) -> float:
    """A moment at which every hour that holds rows now is over (the broker's clock)."""
    return held.broker.now() + HOUR + SETTLE_SECONDS


async def written(runtime: Runtime, at_least: int = 0) -> int:
    """Write what the broker holds as the process does once the hour is over; how many rows.
    `at_least`: keep writing until that many (a frame's reply may come before its audit
    entry is held)."""
    total = await runtime.held_rows.flush_due(after_the_hour(runtime.held_rows))
    for _ in range(_TRIES):
        if total >= at_least:
            break
        await asyncio.sleep(0.05)
        total += await runtime.held_rows.flush_due(after_the_hour(runtime.held_rows))
    return total
