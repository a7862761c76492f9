"""Structured JSON logs that cannot carry what a visitor said or where they came from.

A log line holds: time, level, logger, the message *template* (never its arguments, which can
hold addresses, paths or message text), the allowlisted extra fields below, and for errors
the exception's type and the file:line:function of its frames (no message, no locals).
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from app.kit import jsonutil

# The only extra fields a log line may carry; none says anything about a visitor.
ALLOWED_FIELDS = ("line", "channel_kind", "deadline", "staff_id", "component", "count", "code")

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)))

# Message templates whose arguments are known to hold nothing about a client (process ids,
# our own bind address, migration names); every other template is logged unformatted.
SAFE_TEMPLATES = frozenset(
    {
        "Started server process [%d]",
        "Finished server process [%d]",
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
        "Running upgrade %s -> %s, %s",
        "Context impl %s.",
        "Will assume %s DDL.",
    }
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": _event(record),
        }
        for name in ALLOWED_FIELDS:
            value = record.__dict__.get(name)
            if value is not None and name not in _STANDARD:
                out[name] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            out["exception"] = exc_type.__name__
            out["stack"] = [
                f"{frame.filename}:{frame.lineno}:{frame.name}"
                for frame in traceback.extract_tb(tb)
            ]
        return jsonutil.dumps(out)


def _event(record: logging.LogRecord) -> str:
    template = str(record.msg)
    if record.args and template in SAFE_TEMPLATES:
        try:
            return template % record.args
        except (TypeError, ValueError):
            return template
    return template


class DropClientLines(logging.Filter):
    """uvicorn logs each accepted WebSocket with the client's address and the full path."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith('%s - "WebSocket')


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(DropClientLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # The access log names client addresses; it is never on.
    logging.getLogger("uvicorn.access").disabled = True
