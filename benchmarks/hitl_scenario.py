"""The chat-ops turn both systems run in the HITL benchmark, and how one measurement run is taken.

A user asks for a production deploy; the model proposes ``deploy(...)``; the thread pauses for approval; an
approval arrives; a no-op executor runs the action; the model says done. Both sides get the same texts, the same
arguments and the same instant, in-process scripted model, so only the machinery around the model differs.
"""

from __future__ import annotations

import asyncio
import resource
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REQUEST = "please deploy api 1.2.3 to production"
REQUESTER = "U0REQUESTER"
APPROVER = "U0APPROVER"
DEPLOY_ARGS: dict[str, Any] = {"service": "api", "version": "1.2.3", "environment": "production"}
DEPLOY_REASON = "the user asked for api 1.2.3 in production"
EXECUTOR_RESULT = "deployed api 1.2.3 to production (no-op executor)"
DONE_MESSAGE = "Deployed api 1.2.3 to production."
BATCH = 100  # concurrent mode: threads per asyncio.gather batch


@dataclass
class RunResult:
    """One side, one mode, one N, one repetition: what the subprocess prints as JSON."""

    side: str
    mode: str
    n: int
    launch_per_s: float
    resume_per_s: float
    bytes_per_paused: float
    bytes_per_done: float
    rows_per_paused: float
    rows_per_done: float
    peak_rss_mb: float
    baseline_rss_mb: float
    # The process's CPU per thread in each phase (user, system), and its minor page faults per thread: a slow
    # phase with the CPU of a fast one was waiting; one with more system time and faults was the memory's.
    launch_user_us: float
    launch_sys_us: float
    launch_faults: float
    resume_user_us: float
    resume_sys_us: float
    resume_faults: float
    # The slowest single launch and resume (ms) and which thread (its index) it was: one wait among fast ones.
    launch_slowest_ms: float
    launch_slowest_at: int
    resume_slowest_ms: float
    resume_slowest_at: int
    empty_db_bytes: int
    sqlite_pragmas: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def drive(ids: Sequence[str], one: Callable[[str], Awaitable[None]], mode: str,
                slowest: list[tuple[float, int]] | None = None) -> float:
    """Run ``one`` for every id, one at a time or in gathered batches of 100; return the elapsed seconds.

    ``slowest`` (if given) receives the longest single call's seconds and its index."""
    times: list[tuple[float, int]] = []

    async def timed(index: int, thread_id: str) -> None:
        began = time.perf_counter()
        await one(thread_id)
        times.append((time.perf_counter() - began, index))

    start = time.perf_counter()
    if mode == "sequential":
        for index, thread_id in enumerate(ids):
            await timed(index, thread_id)
    else:
        for i in range(0, len(ids), BATCH):
            await asyncio.gather(*(timed(i + j, t) for j, t in enumerate(ids[i : i + BATCH])))
    elapsed = time.perf_counter() - start
    if slowest is not None and times:
        slowest.append(max(times))
    return elapsed


def _checkpoint(db: Path) -> int | None:
    """The database's bytes after a TRUNCATE checkpoint, or None if a writer blocked it."""
    with sqlite3.connect(db, timeout=5) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        return None
    wal = db.with_name(db.name + "-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def checkpointed_size(db: Path) -> int:
    """Bytes of the database file after folding the WAL back in (PRAGMA wal_checkpoint(TRUNCATE)).

    A checkpoint is blocked while a side's background loop (a worker releasing its lease) writes; retry briefly.
    """
    for _ in range(200):
        size = await asyncio.to_thread(_checkpoint, db)
        if size is not None:
            return size
        await asyncio.sleep(0.02)
    raise RuntimeError(f"WAL checkpoint of {db} stayed blocked by another connection for 4 s")


def total_rows(db: Path) -> int:
    """Rows in every user table of the database."""
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )]
        return sum(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names)


def pragmas(db: Path) -> dict[str, Any]:
    """The journal mode and page size the database ended up with (synchronous is per connection)."""
    with sqlite3.connect(db) as conn:
        return {
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
            "page_size": conn.execute("PRAGMA page_size").fetchone()[0],
        }


def rss_mb() -> float:
    """This process's peak resident set size so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Side:
    """One system under test: open a database, take a thread to paused, resume it to done, close."""

    name = "side"
    database_url: str | None = None  # PostgreSQL instead of the SQLite file (sides that support it)

    async def open(self, db: Path) -> None:
        raise NotImplementedError

    async def launch(self, thread_id: str) -> None:
        """Start a thread from the user's request and run it until it waits for approval (raise otherwise)."""
        raise NotImplementedError

    async def resume(self, thread_id: str) -> None:
        """Approve the thread's pending deploy and run it to done (raise otherwise)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def footprint(self, db: Path) -> tuple[int, int]:
        """(bytes, rows) the side's database holds now; a SQLite file after a TRUNCATE checkpoint by default."""
        return await checkpointed_size(db), total_rows(db)

    def settings_used(self, db: Path) -> dict[str, Any]:
        """Database settings worth reporting (SQLite: journal mode and page size)."""
        return pragmas(db)


async def measure(side: Side, n: int, mode: str, db: Path) -> RunResult:
    """Launch ``n`` threads to paused, then resume all to done; sizes after WAL checkpoints, peak RSS."""
    baseline = rss_mb()
    await side.open(db)
    empty, empty_rows = await side.footprint(db)
    ids = [f"t{i:07d}" for i in range(n)]
    slow_launch: list[tuple[float, int]] = []
    slow_resume: list[tuple[float, int]] = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    launch_s = await drive(ids, side.launch, mode, slow_launch)
    launched = resource.getrusage(resource.RUSAGE_SELF)
    paused_bytes, paused_rows = (x - e for x, e in zip(await side.footprint(db), (empty, empty_rows), strict=True))
    resuming = resource.getrusage(resource.RUSAGE_SELF)
    resume_s = await drive(ids, side.resume, mode, slow_resume)
    resumed = resource.getrusage(resource.RUSAGE_SELF)
    done_bytes, done_rows = (x - e for x, e in zip(await side.footprint(db), (empty, empty_rows), strict=True))
    used = side.settings_used(db)
    await side.close()
    return RunResult(
        side=side.name, mode=mode, n=n,
        launch_per_s=n / launch_s, resume_per_s=n / resume_s,
        bytes_per_paused=paused_bytes / n, bytes_per_done=done_bytes / n,
        rows_per_paused=paused_rows / n, rows_per_done=done_rows / n,
        peak_rss_mb=rss_mb(), baseline_rss_mb=baseline, empty_db_bytes=empty, sqlite_pragmas=used,
        **_usage("launch", before, launched, n), **_usage("resume", resuming, resumed, n),
        launch_slowest_ms=slow_launch[0][0] * 1000, launch_slowest_at=slow_launch[0][1],
        resume_slowest_ms=slow_resume[0][0] * 1000, resume_slowest_at=slow_resume[0][1],
    )


def _usage(phase: str, start: Any, end: Any, n: int) -> dict[str, float]:
    """A phase's user and system CPU (µs) and minor page faults, per thread, from two ``getrusage`` readings."""
    return {f"{phase}_user_us": (end.ru_utime - start.ru_utime) * 1e6 / n,
            f"{phase}_sys_us": (end.ru_stime - start.ru_stime) * 1e6 / n,
            f"{phase}_faults": (end.ru_minflt - start.ru_minflt) / n}


def run_cli(side: Side, argv: Sequence[str] | None = None) -> None:
    """``--n N --mode sequential|concurrent --db PATH``: measure once and print the result as one JSON line."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=f"one HITL measurement run of {side.name}")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--mode", choices=("sequential", "concurrent"), required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--result", type=Path, help="write the JSON here instead of stdout (stdout may carry logs)")
    parser.add_argument("--database-url", default=None,
                        help="opsgate only: run on this (empty, migrated) PostgreSQL database instead of --db")
    args = parser.parse_args(argv)
    side.database_url = args.database_url
    if args.db.exists():
        raise SystemExit(f"{args.db} exists; each run needs a fresh database")
    result = json.dumps(asyncio.run(measure(side, args.n, args.mode, args.db)).as_dict())
    if args.result:
        args.result.write_text(result + "\n", encoding="utf-8")
    else:
        print(result)
