"""Liveness and readiness.

``/healthz`` is liveness: the process answers HTTP (no database, so an outage does not get a healthy process
restarted). ``/readyz`` is readiness: the database accepts a write right now, so requests sent here can be
stored. A readiness probe writes one small row; concurrent probes share one write and a result is reused for a
second, so a flood of probes cannot load the database.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from pydantic import BaseModel

from bot.errors import new_error_id
from bot.store import Store

log = structlog.get_logger("opsgate.health")

PROBE_KEY = "opsgate.readyz"
TIMEOUT_SECONDS = 3.0
REUSE_SECONDS = 1.0


class Readiness(BaseModel):
    """What /readyz answers (200 when ready, else 503)."""

    ready: bool
    reason: str | None = None
    error_id: str | None = None


class ReadinessProbe:
    """Checks that the database can be written, at most once per REUSE_SECONDS."""

    def __init__(self, store: Store, timeout: float = TIMEOUT_SECONDS, reuse: float = REUSE_SECONDS) -> None:
        self.store = store
        self.timeout = timeout
        self.reuse = reuse
        self._lock = asyncio.Lock()
        self._last: tuple[float, Readiness] | None = None
        # A write stuck in the driver cannot be cancelled (it sits in SQLite's busy wait or on a dead socket), so
        # it is left to finish on its own; until it does, probes answer at once instead of stacking more writes.
        self._write: asyncio.Task[None] | None = None

    async def check(self) -> Readiness:
        """The current readiness (a fresh probe, or one finished less than ``reuse`` seconds ago)."""
        async with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.reuse:
                return self._last[1]
            result = await self._probe()
            self._last = (time.monotonic(), result)
            return result

    async def _probe(self) -> Readiness:
        if self._write is None or self._write.done():
            self._write = asyncio.create_task(self.store.set_state(PROBE_KEY, {"at": time.time()}),
                                              name="readiness-write")
            # A write that fails after its probe gave up is read here, so its error is never left unretrieved.
            self._write.add_done_callback(lambda task: task.cancelled() or task.exception())
        write = self._write
        done, _ = await asyncio.wait({write}, timeout=self.timeout)
        if not done:
            log.warning("not_ready", reason="write timed out", timeout_s=self.timeout)
            return Readiness(ready=False, reason=f"the database did not accept a write within {self.timeout:g} s")
        error = write.exception()
        if error is not None:
            error_id = new_error_id()  # the database's message may hold SQL: it goes to the log only
            log.error("not_ready", reason="write failed", error_id=error_id, exc_info=error)
            return Readiness(ready=False, reason="the database cannot be written", error_id=error_id)
        return Readiness(ready=True)
