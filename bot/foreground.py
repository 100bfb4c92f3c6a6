"""Acks first: work a sender is waiting on runs before background work in the same process.

A Slack event must be answered within 3 s, and opsgate promises far less (issue 11: p99 ≤ 50 ms). The ack is
cheap (verify, record, 200); what makes it wait is the rest of the process sharing one event loop and one GIL:
turning recorded events into threads, running steps, their writes. So the ack path marks itself ``serving()``
and the background loops ask ``turn()`` before each unit of their work: it returns once no ack has been in
flight for ``settle`` seconds. While acks keep coming, the background still gets one unit every
``max_defer`` seconds, so a flood of events delays threads but never stops them (nothing waits forever, and
every recorded event is turned into a thread once the flood passes).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterator
from contextlib import contextmanager

SETTLE_SECONDS = 0.003  # a burst's requests arrive microseconds apart; 3 ms of silence means it has passed
MAX_DEFER_SECONDS = 0.1  # while acks keep coming, background work still runs one unit this often


class Foreground:
    """Counts acks in flight; lets background work through when there are none (or it has waited too long)."""

    def __init__(self, settle: float = SETTLE_SECONDS, max_defer: float = MAX_DEFER_SECONDS) -> None:
        self.settle = settle
        self.max_defer = max_defer
        self.in_flight = 0
        self._last_ack = 0.0  # monotonic time the last ack started or finished
        self._last_turn = time.monotonic()  # when background work last got its turn
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._gate: asyncio.Task[None] | None = None
        self.deferred = 0  # background turns that had to wait (for tests and benchmarks)

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Mark an ack in flight for the duration of the block."""
        self.in_flight += 1
        self._last_ack = time.monotonic()
        try:
            yield
        finally:
            self.in_flight -= 1
            self._last_ack = time.monotonic()

    def _quiet(self, now: float) -> bool:
        return self.in_flight == 0 and now - self._last_ack >= self.settle

    async def turn(self) -> None:
        """Wait until background work may run one unit (at once when no ack is in flight or recent)."""
        now = time.monotonic()
        if not self._waiters and (self._quiet(now) or now - self._last_turn >= self.max_defer):
            self._last_turn = now
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        self.deferred += 1
        gate = self._gate
        if gate is None or gate.done() or gate.get_loop() is not loop:  # one gatekeeper per loop, while needed
            self._gate = loop.create_task(self._keep_gate(), name="foreground-gate")
        await waiter  # cancelled with its task; the gatekeeper skips it

    async def _keep_gate(self) -> None:
        """Release every waiter once the acks have passed; one per ``max_defer`` while they keep coming."""
        while self._waiters:
            now = time.monotonic()
            if self._quiet(now):
                while self._waiters:
                    _release(self._waiters.popleft())
                self._last_turn = now
                return
            if now - self._last_turn >= self.max_defer:
                while self._waiters and not _release(self._waiters.popleft()):
                    pass
                self._last_turn = now
            quiet_in = self.settle - (now - self._last_ack) if self.in_flight == 0 else self.settle
            starved_in = self.max_defer - (now - self._last_turn)
            await asyncio.sleep(max(0.0005, min(quiet_in, starved_in)))


def _release(waiter: asyncio.Future[None]) -> bool:
    """Let one waiter run; False when it had already gone (cancelled)."""
    if waiter.done():
        return False
    waiter.set_result(None)
    return True
