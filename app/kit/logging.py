"""Structured JSON logs that cannot carry what a visitor said or where they came from.

A log line holds exactly: `time`, `level`, `logger`, `event`, the allowlisted extra fields
below, and for errors `exception` (the exception's type) and `stack` (file:line:function of
each frame). Never an exception's message, frame locals, a formatted argument, a header or a
path with its query. `event` is:

- for Lykta's own loggers (`app.*`): the message template, never formatted, except the few
  templates in SAFE_TEMPLATES whose arguments are known to be harmless;
- for every other logger (uvicorn, asyncio, SQLAlchemy, ...): the message only if it is one of
  the known-harmless texts below, else "withheld" (their messages may embed a client address,
  a request path or an exception's text).

docs/privacy.md lists the same; tests/test_no_network_identity.py keeps both in step.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from app.kit import jsonutil

# The only extra fields a log line may carry; none says anything about a visitor.
ALLOWED_FIELDS = ("line", "channel_kind", "deadline", "staff_id", "component", "count", "code")

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)))

# Message templates whose arguments are known to hold nothing about a client (process ids,
# our own bind address, migration names); formatted even when they come from a library.
SAFE_TEMPLATES = frozenset(
    {
        "Started server process [%d]",
        "Finished server process [%d]",
        "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)",
        "Running upgrade %s -> %s, %s",
        "Running downgrade %s -> %s, %s",
        "Context impl %s.",
        "Will assume %s DDL.",
        "Cancel %s running task(s), timeout graceful shutdown exceeded",
        "Maximum request limit of %d exceeded. Terminating process.",
        # Lykta's own: its version, bind address, database and broker kinds, line keys.
        "Lykta %s listening on %s: database %s, broker %s, lines %s",
        "Database migrated from %s to %s",
    }
)

# Library messages shown as they are (or, for a prefix, only the prefix: what follows it in
# asyncio's messages is the repr of a task or callback, which can hold anything).
SAFE_MESSAGES = frozenset(
    {
        "Waiting for application startup.",
        "Application startup complete.",
        "Application startup failed. Exiting.",
        "Waiting for application shutdown.",
        "Application shutdown complete.",
        "Application shutdown failed. Exiting.",
        "Shutting down",
        "Waiting for connections to close. (CTRL+C to force quit)",
        "Waiting for background tasks to complete. (CTRL+C to force quit)",
        "Exception in ASGI application\n",
        "Exception in 'lifespan' protocol\n",
        "Invalid HTTP request received.",
        "Unsupported upgrade request.",
        "Invalid UTF-8 sequence received from client.",
        "ASGI callable returned without completing handshake.",
        "ASGI callable returned without sending handshake.",
        "ASGI callable returned without starting response.",
        "ASGI callable returned without completing response.",
        "Exceeded concurrency limit.",
        "Received SIGINT, exiting.",
        "Received SIGTERM, exiting.",
    }
)
SAFE_PREFIXES = (
    "Task exception was never retrieved",
    "Future exception was never retrieved",
    "Exception in callback",
    "Task was destroyed but it is pending!",
    "Unhandled exception in event loop",
)
WITHHELD = "withheld"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": event_of(record),
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


def _ours(name: str) -> bool:
    return name == "app" or name.startswith("app.")


def event_of(record: logging.LogRecord) -> str:
    """What a log line says (see the module docstring)."""
    message = record.msg
    if isinstance(message, BaseException):
        # e.g. uvicorn's logger.error(exc) when it cannot bind: the type, never the text.
        errno = getattr(message, "errno", None)
        name = type(message).__name__
        return f"{name} errno {errno}" if isinstance(errno, int) else name
    template = str(message)
    if record.args and template in SAFE_TEMPLATES:
        try:
            return template % record.args
        except (TypeError, ValueError):
            return template
    if _ours(record.name) or template in SAFE_MESSAGES or template in SAFE_TEMPLATES:
        return template
    for prefix in SAFE_PREFIXES:
        if template.startswith(prefix):
            return prefix
    return WITHHELD


class DropClientLines(logging.Filter):
    """uvicorn logs each accepted WebSocket with the client's address and the full path."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith('%s - "WebSocket')


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    logging.getLogger("app.uncaught").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


class _Stderr:
    """Whatever `sys.stderr` is when a line is written (it may be replaced after start-up)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(_Stderr())
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
    # Alembic says "Running upgrade …" per migration and which SQL dialect it uses: the
    # migration code logs one line for all of them instead.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # When writing a line fails, logging would print the record's message and arguments to
    # stderr; say nothing instead.
    logging.raiseExceptions = False
    # Warnings and uncaught exceptions would print their text to stderr: log them instead.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
