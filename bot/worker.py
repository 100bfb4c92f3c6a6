"""The worker loop: lease runnable threads, advance them, release them.

Threads this process made runnable are handed over in memory (``bot.handoff``) and leased by id; the database is
polled only every ``OPSGATE_POLL_INTERVAL`` for other processes' work and for retries that came due. Many workers
in many processes can run at once: the store's claims guarantee one owner per thread (``FOR UPDATE SKIP LOCKED``
on PostgreSQL, a single writer on SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

import structlog

from bot import telemetry
from bot.config import Settings
from bot.engine import Engine
from bot.errors import ModelUnavailable, new_error_id
from bot.events import ErrorEvent
from bot.foreground import Foreground
from bot.handoff import Runnable
from bot.store import Lease, QuarantineItem, Store
from bot.thread import Thread

log = structlog.get_logger("opsgate.worker")

_MAX_RETRY_DELAY = 300.0


def _release(slots: asyncio.Semaphore, count: int) -> None:
    for _ in range(count):
        slots.release()


def retry_delay(attempts: int) -> float:
    """Exponential backoff for a thread whose model was down: 2, 4, 8, … seconds, at most five minutes."""
    return min(2.0 ** (attempts + 1), _MAX_RETRY_DELAY)


class Worker:
    """Runs up to ``OPSGATE_WORKER_CONCURRENCY`` threads at once; every task is held and awaited."""

    def __init__(self, settings: Settings, store: Store, engine: Engine, runnable: Runnable,
                 foreground: Foreground | None = None) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.runnable = runnable
        self.foreground = foreground or Foreground()
        self.owner = f"{socket.gethostname()[:64]}:{os.getpid()}:{id(self):x}"  # fits threads.lease_owner
        self._tasks: set[asyncio.Task[None]] = set()
        self._poll_at = 0.0  # poll the database at once on start (work left by a crash or another process)

    async def run(self) -> None:
        """Claim and advance threads until cancelled; in-flight steps finish or are retried by a later claim."""
        slots = asyncio.Semaphore(self.settings.worker_concurrency)
        log.info("worker_started", owner=self.owner, concurrency=self.settings.worker_concurrency)
        self.runnable.lease = Lease(owner=self.owner, seconds=self.settings.lease_seconds)
        try:
            while True:
                await slots.acquire()
                await self.foreground.turn()  # a step waits while acks are being answered
                free = 1
                while not slots.locked():  # every slot free now (acquiring one that is free never waits)
                    await slots.acquire()
                    free += 1
                try:
                    claimed = await self._claim(free)
                except Exception:
                    _release(slots, free)
                    log.exception("claim_failed")
                    await asyncio.sleep(self.settings.poll_interval)
                    continue
                _release(slots, free - len(claimed))
                if not claimed:
                    await self.runnable.wait(max(0.0, self._poll_at - time.monotonic()))
                    continue
                for thread_id, known in claimed:
                    task = asyncio.create_task(self._run_one(thread_id, known, slots), name=f"thread-{thread_id}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            self.runnable.lease = None
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _claim(self, limit: int) -> list[tuple[str, Thread | None]]:
        """Up to ``limit`` threads to run: first those handed over in memory, then (when the poll is due) anyone's,
        with the thread itself when it is known to be current (no need to load it)."""
        lease = self.settings.lease_seconds
        claimed: list[tuple[str, Thread | None]] = []
        while len(claimed) < limit and (handed := self.runnable.take()) is not None:
            thread = handed.thread
            if handed.leased:  # the commit that made it runnable leased it to us
                fresh = time.monotonic() - handed.at < lease / 3
                if fresh or await self.store.renew_lease(thread.id, self.owner, lease):
                    claimed.append((thread.id, thread if fresh else None))
                continue  # else it waited so long in the queue that the lease ran out: someone else may have it
            seq = await self.store.claim_one(thread.id, self.owner, lease)
            if seq is not None:  # nobody appended since the commit that handed it over: no need to load it
                claimed.append((thread.id, thread if seq == thread.seq else None))
        if len(claimed) == limit or time.monotonic() < self._poll_at:
            return claimed
        wanted = limit - len(claimed)
        # One round trip (one commit) for every slot free now, not one per slot: a worker starting on a backlog,
        # or back from a pause, fills its slots at once.
        polled = await self.store.claim_threads(self.owner, lease, wanted)
        if len(polled) < wanted:  # nothing more anywhere: next look in one poll interval (or when one is handed)
            self._poll_at = time.monotonic() + self.settings.poll_interval
        return claimed + [(thread_id, None) for thread_id in polled]

    async def _heartbeat(self, thread_id: str, interval: float) -> None:
        """Keep the lease while a slow model call or tool runs; a crashed worker's lease simply expires."""
        while True:
            try:
                if not await self.store.renew_lease(thread_id, self.owner, self.settings.lease_seconds):
                    log.warning("lease_lost", thread_id=thread_id)
                    return
            except Exception:
                log.exception("lease_renew_failed", thread_id=thread_id)
            await asyncio.sleep(interval)

    async def _give_up(self, thread_id: str, failures: int, exc: Exception) -> bool:
        """A thread whose step keeps failing (a bug, an agent that no longer exists) is poison: stop it.

        It fails with an error id people can quote (the log has the traceback under the same id), and is put in
        the quarantine; a new message starts it again. True when that was recorded (which dropped the lease).
        """
        error_id = new_error_id()
        log.error("step_failed", thread_id=thread_id, failures=failures, error_id=error_id, gave_up=True,
                  exc_info=exc)
        message = (f"opsgate could not continue this thread: internal error (error id {error_id}) "
                   f"{failures} times in a row. Send a new message to try again.")
        try:
            # Quarantined first: a thread people see as failed is always on the operators' list (a crash in
            # between leaves it running, to fail and be quarantined again, never failed and unlisted).
            await self.store.quarantine(QuarantineItem(
                channel="worker", key=f"thread:{thread_id}:{error_id}", reason=f"thread step failed {failures} times",
                detail=f"error id {error_id}: {type(exc).__name__}: {exc}", attempts=failures,
            ))
            await self.engine.journal.append_independent(thread_id, [ErrorEvent(kind="internal", message=message)])
        except Exception:  # the database is what fails: keep retrying the thread instead
            log.exception("give_up_failed", thread_id=thread_id, error_id=error_id)
            return False
        return True

    async def _run_one(self, thread_id: str, known: Thread | None, slots: asyncio.Semaphore) -> None:
        retry_in: float | None = None
        released = False
        # The renewals start only when a step outlasts a third of the lease: most steps end long before, and a
        # timer costs a fraction of a task created and cancelled on every step (issue 11).
        interval = self.settings.lease_seconds / 3
        heartbeats: list[asyncio.Task[None]] = []

        def start_heartbeat() -> None:
            heartbeats.append(asyncio.create_task(self._heartbeat(thread_id, interval), name=f"lease-{thread_id}"))

        timer = asyncio.get_running_loop().call_later(interval, start_heartbeat)
        try:
            # When our own append made the thread wait, it dropped the lease in the same transaction.
            with telemetry.thread_step(thread_id):
                _, released = await self.engine.advance_claimed(thread_id, known)
        except ModelUnavailable as exc:
            retry_in = retry_delay(await self.store.thread_attempts(thread_id))
            log.warning("model_unavailable", thread_id=thread_id, error=str(exc), retry_in_s=retry_in)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            attempts = await self.store.thread_attempts(thread_id)
            if attempts + 1 >= self.settings.thread_max_failures:
                released = await self._give_up(thread_id, attempts + 1, exc)
            if not released:
                retry_in = retry_delay(attempts)
                log.exception("step_failed", thread_id=thread_id, retry_in_s=retry_in)
        finally:
            timer.cancel()
            for heartbeat in heartbeats:
                heartbeat.cancel()
            await asyncio.gather(*heartbeats, return_exceptions=True)
            slots.release()
            if not released:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.store.release_thread(thread_id, self.owner, retry_in))
