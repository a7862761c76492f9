"""Time helpers: epoch seconds for ephemeral state, hour buckets for durable statistics."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> float:
    return time.time()


def utcnow() -> datetime:
    return datetime.now(UTC)


def hour_bucket(epoch_seconds: float) -> datetime:
    """The start of the UTC hour: the finest time a durable row about a chat may hold."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.replace(minute=0, second=0, microsecond=0)
