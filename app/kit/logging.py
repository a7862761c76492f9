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

Lines of one kind that come again and again (a flood of refused handshakes, every background
loop failing while Redis is away) are counted rather than written each time (`Repeats`): the
first goes out at once, the rest of its interval become one line with `repeats`, the count.

docs/privacy.md lists the same; tests/test_no_network_identity.py keeps both in step.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from app.kit import jsonutil

# The only extra fields a log line may carry; none says anything about a visitor.
ALLOWED_FIELDS = (
    "line",
    "channel_kind",
    "deadline",
    "staff_id",
    "component",
    "count",
    "code",
    "repeats",
)
# A line that marks a change of state (Redis lost, Redis back) is written every time: the last
# one written must say how things are now. `logger.warning(..., extra=STATE_CHANGE)`.
STATE_CHANGE = {"state_change": True}
# How long the lines of one kind are counted before the count is written (seconds).
REPEAT_SECONDS = 60.0

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
        elif isinstance(record.__dict__.get("exception_name"), str):
            # A count of repeated lines keeps their exception's type, not a stack.
            out["exception"] = record.__dict__["exception_name"]
        return jsonutil.dumps(out)


def _ours(name: str) -> bool:
    return name == "app" or name.startswith("app.")


def event_of(record: logging.LogRecord) -> str:
    """What a log line says (see the module docstring)."""
    counted = record.__dict__.get("counted_event")
    if isinstance(counted, str):
        return counted
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


# What makes two lines the same kind: logger, level, event, exception type, extra fields.
Kind = tuple[str, int, str, str | None, tuple[tuple[str, str], ...]]


@dataclass(slots=True)
class _Counting:
    """A kind whose first line went out: until `until`, its lines are only counted."""

    until: float
    counted: int
    logger: str
    level: int
    event: str
    exception: str | None
    fields: tuple[tuple[str, str], ...]


class Repeats(logging.Filter):
    """One line per kind and interval: the first line of a kind goes out at once; the others
    within `interval` seconds are counted, and when the interval ends one line of that kind
    with `repeats` (how many were not written) goes out, and counting goes on for another
    interval. A kind that stays quiet for a whole interval is forgotten.

    Not counted: Lykta's own lines below WARNING (start-up, migrations, sweeps, each with a
    meaning of its own) and lines marked `STATE_CHANGE`. Library lines are counted at every
    level: what an outsider can make uvicorn or websockets say, they can make them say often.
    """

    def __init__(
        self,
        emit: Callable[[logging.LogRecord], object],
        interval: float = REPEAT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._emit = emit
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._kinds: dict[Kind, _Counting] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if "repeats" in record.__dict__ or record.__dict__.get("state_change"):
            return True
        if _ours(record.name) and record.levelno < logging.WARNING:
            return True
        kind = _kind(record)
        now = self._clock()
        due: _Counting | None = None
        with self._lock:
            counting = self._kinds.get(kind)
            if counting is None or (now >= counting.until and not counting.counted):
                self._kinds[kind] = _Counting(now + self.interval, 0, *kind)
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="lykta-log-repeats", daemon=True
                    )
                    self._thread.start()
                return True
            if now >= counting.until:
                # Its interval ended before the count was written: the count is this
                # interval's line, and this one is counted in it.
                due = _Counting(counting.until, counting.counted, *kind)
                counting.counted = 0
                counting.until = now + self.interval
            counting.counted += 1
        if due is not None:
            self._emit(_count_record(due))
        return False

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.interval / 4)):
            self.flush(ended_only=True)

    def flush(self, *, ended_only: bool = False) -> None:
        """Write the counts of the intervals that ended (all of them: at exit)."""
        now = self._clock()
        due: list[_Counting] = []
        with self._lock:
            for kind, counting in list(self._kinds.items()):
                if ended_only and now < counting.until:
                    continue
                if counting.counted:
                    due.append(_Counting(counting.until, counting.counted, *kind))
                    counting.counted = 0
                    counting.until = now + self.interval
                else:
                    del self._kinds[kind]
        for counting in due:
            self._emit(_count_record(counting))

    def close(self) -> None:
        self._stop.set()
        self.flush()


def _kind(record: logging.LogRecord) -> Kind:
    exc = record.exc_info[0] if record.exc_info else None
    fields = tuple(
        (name, str(record.__dict__[name]))
        for name in ALLOWED_FIELDS
        if name != "count" and record.__dict__.get(name) is not None and name not in _STANDARD
    )
    return (
        record.name,
        record.levelno,
        event_of(record),
        exc.__name__ if exc is not None else None,
        fields,
    )


def _count_record(counting: _Counting) -> logging.LogRecord:
    record = logging.LogRecord(
        counting.logger, counting.level, __file__, 0, counting.event, None, None
    )
    # Already what event_of would make of the original: shown as it is.
    record.__dict__.update(dict(counting.fields))
    record.__dict__["repeats"] = counting.counted
    record.__dict__["counted_event"] = counting.event
    if counting.exception is not None:
        record.__dict__["exception_name"] = counting.exception
    return record


_repeats: Repeats | None = None


def flush_repeats() -> None:
    """Write every count not yet written (at shutdown: uvicorn ends a SIGTERM by dying of it,
    which skips atexit)."""
    if _repeats is not None:
        _repeats.flush()


atexit.register(flush_repeats)


def stop_repeats() -> None:
    """Write the counts not yet written and stop counting (when logging is set up again, or
    by a test that set it up)."""
    global _repeats
    if _repeats is not None:
        _repeats.close()
        _repeats = None


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


def configure_logging(level: str = "INFO", repeat_seconds: float = REPEAT_SECONDS) -> None:
    global _repeats
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(JsonFormatter())
    handler.addFilter(DropClientLines())
    stop_repeats()
    _repeats = Repeats(handler.handle, repeat_seconds)
    handler.addFilter(_repeats)
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
