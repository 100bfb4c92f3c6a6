"""Mail is parsed in a worker process, not a thread: the event loop never waits for it, not even for the GIL.

Parsing is linear in its (capped) input but still CPU work: a 4 MB message costs ~0.1-0.2 s of pure Python. In a
thread that work holds the GIL, and every request the server answers meanwhile queues for it (measured: /healthz
stalls of 75-150 ms while one such mail was parsed; under 10 ms with a worker process). A worker also contains
the damage of input we did not foresee: if it dies (out of memory, a crash in a C extension), the pool is
rebuilt and the mail counts as failed, so the watcher's poison handling takes over.

The worker is started with ``forkserver`` (never ``fork``: the server has threads, and forking them is unsafe).
It exits by itself when the server is gone, even after a SIGKILL that left no chance to shut the pool down: its
task queue's pipe never reaches EOF (the worker holds both ends), so a watchdog thread notices instead.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from channels.email.inbound import InboundMail, Oversize, parse_mail

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


_WATCH_SECONDS = 1.0


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exit_with(server_pid: int) -> None:
    """In the worker: exit as soon as the server process is gone (or this worker was handed to another parent)."""
    parent = os.getppid()  # the fork server, which itself exits when the server does

    def watch() -> None:
        while os.getppid() == parent and _is_alive(server_pid):
            time.sleep(_WATCH_SECONDS)
        os._exit(0)  # nothing to clean up: a parse in flight belonged to the dead server

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


class ParserCrashed(Exception):
    """The parsing worker died while parsing this mail (a poison-mail failure, not a connection problem)."""


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            context = multiprocessing.get_context("forkserver")
            # The fork server imports the parser once (fast worker starts), and not the main script.
            context.set_forkserver_preload(["channels.email.inbound"])
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_exit_with,
                                        initargs=(os.getpid(),))
        return _pool


def _discard(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


async def parse_in_worker(raw: bytes, oversize: Oversize | None = None) -> InboundMail:
    """``parse_mail`` run in the worker process; ParserCrashed if the worker died doing it."""
    pool = _executor()
    try:
        # Submitted from a thread: the first submit starts the worker, which must not block the event loop either.
        future = await asyncio.to_thread(pool.submit, parse_mail, raw, oversize)
        return await asyncio.wrap_future(future)
    except BrokenProcessPool as exc:
        _discard(pool)
        raise ParserCrashed(f"the mail parser process died ({exc})") from exc
