"""structlog JSON lines on stdout: one line per thread event (thread_id, agent, type, latency, tokens)."""

from __future__ import annotations

import logging
import sys

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
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=cache,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    for noisy in ("uvicorn.access", "httpx", "httpx2", "httpcore", "openai", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
