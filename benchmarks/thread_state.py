"""Derived thread state per step: what an append costs in status, pending approval and next work, by thread length.

The worker and the journal ask a thread what it is (``status``, ``pending``, ``next_work``) after every append
(``Thread.with_events``). Those answers are folded append by append (bot/flow.py), so a step should cost the same
at 500 events as at 20. Measured on the realistic deploy threads of ``benchmarks/thread_fixtures.py``: each thread
is grown from half its length to its length one event at a time, and each step is timed (with_events, then the
three questions). "From scratch" is the same questions asked of a thread built anew from the same events, as a
load from the database does once. Run: ``python -m benchmarks.thread_state``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks.report import median, table, write_json
from benchmarks.thread_fixtures import thread_of
from bot.thread import Thread

SIZES = (20, 50, 200, 500)


def _ask(thread: Thread) -> None:
    _ = thread.status, thread.pending, thread.next_work()


def measure(n: int, rounds: int) -> dict[str, Any]:
    """Median µs per appended event, and per thread built from scratch at full length."""
    events = thread_of(n).events
    half = n // 2
    steps: list[float] = []
    scratch: list[float] = []
    for _ in range(rounds):
        grown = Thread(id="bench", agent="deploy", events=events[:half])
        _ask(grown)
        began = time.perf_counter()
        for event in events[half:]:
            grown = grown.with_events([event])
            _ask(grown)
        steps.append((time.perf_counter() - began) / (n - half) * 1e6)
        began = time.perf_counter()
        _ask(Thread(id="bench", agent="deploy", events=events))
        scratch.append((time.perf_counter() - began) * 1e6)
    return {"events": n, "step_us": median(steps), "from_scratch_us": median(scratch), "rounds": rounds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 20 and 50, 2 rounds")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes, rounds = ([20, 50], 2) if args.quick else (args.sizes, args.rounds)
    measure(sizes[0], 2)  # warm-up: the first rounds of a fresh process ran up to 2x slower
    results = [measure(n, rounds) for n in sizes]
    print(table(["events", "µs per append (with_events + status, pending, next_work)", "µs from scratch"],
                [[r["events"], f"{r['step_us']:.1f}", f"{r['from_scratch_us']:.1f}"] for r in results]))
    path = write_json("thread_state", {
        "setup": "benchmarks/thread_fixtures.py deploy threads grown from n/2 to n events one append at a time; "
                 "median over rounds",
        "results": results,
    }, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
