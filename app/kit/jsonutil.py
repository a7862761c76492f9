"""Fast JSON for frames and broker payloads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

# orjson's own functions, not wrappers: these run several times for every message.
dumpb: Callable[[Any], bytes] = orjson.dumps
loads: Callable[[str | bytes], Any] = orjson.loads


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


JSONDecodeError = orjson.JSONDecodeError
