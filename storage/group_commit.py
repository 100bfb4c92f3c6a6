"""Answering the callers of one grouped transaction (both backends commit concurrent writes together).

Each write in a group succeeds or fails on its own (a savepoint each), and every caller is answered only after
the COMMIT: never before its write is durable.
"""

from __future__ import annotations

import asyncio
from typing import Any

Outcome = tuple["asyncio.Future[Any]", bool, Any]  # the caller's future, whether its write stands, result or error


def settle(outcomes: list[Outcome]) -> None:
    """Runs on the callers' event loop: set each future's result or exception (callers that gave up are skipped:
    their write stands, or failed, all the same)."""
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
