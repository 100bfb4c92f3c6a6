"""Threads this process paused for a person, kept in memory so that the person's answer does not read them back.

An approval or an answer usually reaches the process that asked for it, soon after. Reading the thread back meant
fetching and validating every event again (~50 µs of a paused deploy's four events, and the status, pending
approval and next work computed anew); resumes ran 13-27% faster without it (A/B runs). The database stays the
truth: a kept thread is used only while the stored sequence number is still its own (one indexed read). Events are
only ever appended, and every append moves the number by compare-and-set, so the same number means the same
events; any other process's append (a second worker, a CLI) makes the kept copy stale, and it is read whole.
"""

from __future__ import annotations

from collections import OrderedDict

from bot.thread import Thread

# A paused deploy thread takes ~11 KB of objects: at most ~11 MB. Beyond it the longest paused are forgotten
# (their answer reads them from the database, as before).
_LIMIT = 1024
_WAITING = frozenset({"waiting_for_approval", "waiting_for_human"})


class PausedThreads:
    """The last ``limit`` threads this process's commits left waiting for a person, as committed."""

    def __init__(self, limit: int = _LIMIT) -> None:
        self._threads: OrderedDict[str, Thread] = OrderedDict()
        self._limit = limit

    def __len__(self) -> int:
        return len(self._threads)

    def committed(self, thread: Thread) -> None:
        """After a commit: keep ``thread`` if it now waits for a person, else forget any copy of it."""
        if thread.status in _WAITING:
            self._threads[thread.id] = thread
            self._threads.move_to_end(thread.id)
            if len(self._threads) > self._limit:
                self._threads.popitem(last=False)
        else:
            self._threads.pop(thread.id, None)

    def get(self, thread_id: str, stored_seq: int | None) -> Thread | None:
        """The kept thread if the store holds exactly it (``stored_seq``, its sequence number there, is the kept
        one's); a stale copy is forgotten."""
        thread = self._threads.get(thread_id)
        if thread is None or thread.seq == stored_seq:
            return thread
        del self._threads[thread_id]
        return None

    def __contains__(self, thread_id: object) -> bool:
        return thread_id in self._threads
