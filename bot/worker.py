"""The worker loop: claim runnable threads from the database (a lease), advance them, release them.

Many workers in many processes can run at once: the store's claim guarantees one owner per thread
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a single writer on SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import structlog

from bot import telemetry
from bot.config import Settings
from bot.engine import Engine
from bot.errors import ModelUnavailable
from bot.store import Store

log = structlog.get_logger("opsgate.worker")

_MAX_RETRY_DELAY = 300.0


def retry_delay(attempts: int) -> float:
    """Exponential backoff for a thread whose model was down: 2, 4, 8, … seconds, at most five minutes."""
    return min(2.0 ** (attempts + 1), _MAX_RETRY_DELAY)


class Worker:
    """Runs up to ``OPSGATE_WORKER_CONCURRENCY`` threads at once; every task is held and awaited."""

    def __init__(self, settings: Settings, store: Store, engine: Engine, wakeup: asyncio.Event) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.wakeup = wakeup
        self.owner = f"{socket.gethostname()[:64]}:{os.getpid()}:{id(self):x}"  # fits threads.lease_owner
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Claim and advance threads until cancelled; in-flight steps finish or are retried by a later claim."""
        slots = asyncio.Semaphore(self.settings.worker_concurrency)
        log.info("worker_started", owner=self.owner, concurrency=self.settings.worker_concurrency)
        try:
            while True:
                await slots.acquire()
                try:
                    thread_id = await self.store.claim_thread(self.owner, self.settings.lease_seconds)
                except Exception:
                    slots.release()
                    log.exception("claim_failed")
                    await asyncio.sleep(self.settings.poll_interval)
                    continue
                if thread_id is None:
                    slots.release()
                    await self._idle()
                    continue
                task = asyncio.create_task(self._run_one(thread_id, slots), name=f"thread-{thread_id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), self.settings.poll_interval)
        self.wakeup.clear()

    async def _heartbeat(self, thread_id: str) -> None:
        """Keep the lease while a slow model call or tool runs; a crashed worker's lease simply expires."""
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self.store.renew_lease(thread_id, self.owner, self.settings.lease_seconds):
                    log.warning("lease_lost", thread_id=thread_id)
                    return
            except Exception:
                log.exception("lease_renew_failed", thread_id=thread_id)

    async def _run_one(self, thread_id: str, slots: asyncio.Semaphore) -> None:
        retry_in: float | None = None
        released = False
        heartbeat = asyncio.create_task(self._heartbeat(thread_id), name=f"lease-{thread_id}")
        try:
            # When our own append made the thread wait, it dropped the lease in the same transaction.
            with telemetry.thread_step(thread_id):
                _, released = await self.engine.advance_claimed(thread_id)
        except ModelUnavailable as exc:
            retry_in = retry_delay(await self.store.thread_attempts(thread_id))
            log.warning("model_unavailable", thread_id=thread_id, error=str(exc), retry_in_s=retry_in)
        except asyncio.CancelledError:
            raise
        except Exception:
            retry_in = retry_delay(await self.store.thread_attempts(thread_id))
            log.exception("step_failed", thread_id=thread_id, retry_in_s=retry_in)
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            slots.release()
            if not released:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.store.release_thread(thread_id, self.owner, retry_in))
