"""structlog JSON lines on stdout: one line per thread event (thread_id, agent, type, latency, tokens)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import sys
import threading
import time
import weakref
from datetime import UTC, datetime
from typing import TextIO

import structlog

from bot.telemetry import add_trace_ids


def configure_logging(level: str = "info", *, cache: bool = True) -> None:
    """JSON to stdout for our logs and for the standard library's (uvicorn, alembic).

    ``cache`` binds each logger once, on first use (cheaper per line); one-shot commands pass False, so a process
    that runs them in-process (tests) keeps loggers that follow a later configuration.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        stamp_utc,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, render_json],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *_: LineWriter.to(sys.stdout),
        cache_logger_on_first_use=cache,
    )
    handler = _Lines(LineWriter.to(sys.stdout))  # the same writer: standard library lines keep their place
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, render_json],
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    for noisy in ("uvicorn.access", "httpx", "httpx2", "httpcore", "openai", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _Seconds:
    """The ISO 8601 text of the current second, made once a second (one tuple: threads read it whole)."""

    last: tuple[int, str] = (-1, "")


def stamp_utc(_logger: object, _method: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    """``timestamp``: now in UTC as ISO 8601 with microseconds, as structlog's ``TimeStamper(fmt="iso",
    utc=True)`` writes it, with the date and time of day formatted once a second (~1.5 µs of a log line)."""
    now = time.time()
    second = int(now)
    micro = round((now - second) * 1_000_000)  # to the nearest microsecond, as datetime rounds
    if micro == 1_000_000:
        second, micro = second + 1, 0
    last = _Seconds.last
    if last[0] != second:
        last = _Seconds.last = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    event_dict["timestamp"] = f"{last[1]}.{micro:06d}Z" if micro else f"{last[1]}Z"
    return event_dict


def _fallback(value: object) -> object:
    """What JSON cannot hold, as structlog's renderer writes it: its ``__structlog__()``, else its repr."""
    method = getattr(value, "__structlog__", None)
    return method() if callable(method) else repr(value)


# One encoder for every line: ``json.dumps(..., default=...)`` builds a new one per call (~1 µs of a 12 µs line).
_ENCODER = json.JSONEncoder(default=_fallback)


def render_json(_logger: object, _method: str, event_dict: structlog.types.EventDict) -> str:
    """The line's JSON, exactly as structlog's ``JSONRenderer()`` writes it."""
    return _ENCODER.encode(event_dict)


def say(text: str) -> None:
    """A line for people on stdout (the inbox's login URL), in its place among the log lines written with it."""
    LineWriter.to(sys.stdout).msg(text)


class LineWriter:
    """structlog's logger: JSON lines to a stream, written once per event-loop iteration.

    A busy loop logs many lines per iteration (a commit each); one write per line gave the GIL away to the store's
    threads at every write and made the loop wait to get it back (7% of a concurrent resume, issue 11). Lines
    logged on a loop are joined and written by a callback at the end of that iteration; lines logged outside a
    loop (a CLI command, another thread) are written at once, after any pending ones; what is pending at exit is
    written then.
    """

    _writers: dict[int, LineWriter] = {}

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._scheduled: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        atexit.register(self._flush_at_exit)
        os.register_at_fork(after_in_child=self._forget)

    @classmethod
    def to(cls, stream: TextIO) -> LineWriter:
        """The one writer for ``stream`` (shared by every logger, so lines keep their order)."""
        writer = cls._writers.get(id(stream))
        if writer is None or writer._stream is not stream:
            writer = cls._writers[id(stream)] = cls(stream)
        return writer

    def msg(self, message: str) -> None:
        """Write ``message`` as one line: at the end of this loop iteration, or now outside a running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._pending.append(message + "\n")
            if loop is not None:
                if loop in self._scheduled:
                    return
                self._scheduled.add(loop)
        if loop is None:
            self.flush()
        else:
            loop.call_soon(self._flush_for, loop)

    log = debug = info = warn = warning = fatal = failure = err = error = critical = exception = msg

    def _flush_for(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._scheduled.discard(loop)
        # A stream that cannot be written (a closed pipe) loses these lines; raising here would make the loop log
        # the error, which schedules this again: a busy cycle on a broken stdout.
        with contextlib.suppress(OSError, ValueError):
            self.flush()

    def flush(self) -> None:
        """Write every pending line now."""
        with self._lock:
            lines, self._pending = "".join(self._pending), []
            if lines:
                # As structlog's PrintLogger: the process's own stdout means whatever sys.stdout is now (a test's
                # capture, a redirect), any other stream itself.
                stream = sys.stdout if self._stream is sys.__stdout__ else self._stream
                stream.write(lines)
                stream.flush()

    def _forget(self) -> None:
        # A forked child: the pending lines are the parent's to write, and another thread may have held the lock.
        self._lock = threading.Lock()
        self._pending = []
        self._scheduled = weakref.WeakSet()

    def _flush_at_exit(self) -> None:
        with contextlib.suppress(ValueError, OSError):  # the stream may be closed by then (a test's capture)
            self.flush()


class _Lines(logging.Handler):
    """The standard library's records (uvicorn, alembic), formatted as JSON, through the same ``LineWriter``."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.msg(self.format(record))
        except Exception:
            self.handleError(record)
