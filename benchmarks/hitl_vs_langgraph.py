"""Launch / pause / resume throughput and storage of one chat-ops turn: opsgate vs LangGraph.

Every measurement runs in its own subprocess (so peak RSS is that side's alone) on a fresh SQLite file in WAL
mode; the sides alternate within each repetition so drift on the machine hits both alike. Reported figures are
medians over the repetitions. Run: ``python -m benchmarks.hitl_vs_langgraph`` (N = 1,000 and 10,000, 3 reps),
``--n 500 --reps 5`` for other sizes, ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.report import median, table, write_json

SIDES = {"opsgate": "benchmarks.hitl_opsgate", "langgraph": "benchmarks.hitl_langgraph"}
MODES = ("sequential", "concurrent")
METRICS = (
    "launch_per_s", "resume_per_s", "bytes_per_paused", "bytes_per_done",
    "rows_per_paused", "rows_per_done", "peak_rss_mb",
)
# ratio opsgate/langgraph; for throughput higher is better, for the rest lower is better
TARGETS = {"launch_per_s": (">=", 10.0), "resume_per_s": (">=", 10.0), "bytes_per_paused": ("<=", 0.2)}
ROOT = Path(__file__).resolve().parent.parent


def run_once(side: str, n: int, mode: str, workdir: Path, rep: int) -> dict[str, Any]:
    """One measurement in a fresh subprocess and a fresh database file."""
    db = workdir / f"{side}-{mode}-{n}-{rep}.db"
    proc = subprocess.run(
        [sys.executable, "-m", SIDES[side], "--n", str(n), "--mode", mode, "--db", str(db)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{side} {mode} n={n} failed:\n{proc.stderr[-4000:]}")
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict[str, Any]], sides: list[str], sizes: list[int]) -> list[dict[str, Any]]:
    """Medians per (n, mode, side) and the opsgate/LangGraph ratios."""
    rows = []
    for n in sizes:
        for mode in MODES:
            entry: dict[str, Any] = {"n": n, "mode": mode}
            for side in sides:
                mine = [r for r in runs if r["side"] == side and r["mode"] == mode and r["n"] == n]
                entry[side] = {m: median([r[m] for r in mine]) for m in METRICS}
                entry[side]["repetitions"] = len(mine)
                entry[side]["sqlite_pragmas"] = mine[0]["sqlite_pragmas"] if mine else {}
            if "opsgate" in sides and "langgraph" in sides:
                entry["ratio_opsgate_over_langgraph"] = {
                    m: entry["opsgate"][m] / entry["langgraph"][m] if entry["langgraph"][m] else None
                    for m in METRICS
                }
                entry["targets_met"] = {
                    m: (entry["ratio_opsgate_over_langgraph"][m] >= limit if op == ">="
                        else entry["ratio_opsgate_over_langgraph"][m] <= limit)
                    for m, (op, limit) in TARGETS.items()
                }
            rows.append(entry)
    return rows


def print_table(summary: list[dict[str, Any]], sides: list[str]) -> None:
    headers = ["n", "mode", "side", "launch/s", "resume/s", "B/paused", "B/done", "rows/paused",
               "rows/done", "peak RSS MB"]
    lines = []
    for entry in summary:
        for side in sides:
            s = entry[side]
            lines.append([entry["n"], entry["mode"], side, *(s[m] for m in METRICS)])
        if "ratio_opsgate_over_langgraph" in entry:
            r = entry["ratio_opsgate_over_langgraph"]
            lines.append([entry["n"], entry["mode"], "ratio o/lg", *(
                f"{r[m]:.2f}x" if r[m] is not None else "-" for m in METRICS
            )])
    print(table(headers, lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000], help="threads per run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per (side, mode, n); medians reported")
    parser.add_argument("--sides", nargs="+", choices=sorted(SIDES), default=["opsgate", "langgraph"])
    parser.add_argument("--quick", action="store_true", help="smoke run: n=20, 1 repetition")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    sizes, reps = ([20], 1) if args.quick else (args.n, args.reps)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="opsgate-hitl-") as tmp:
        for n in sizes:
            for rep in range(reps):
                for mode in MODES:
                    for side in args.sides:
                        result = run_once(side, n, mode, Path(tmp), rep)
                        print(f"  rep {rep + 1}/{reps} {side:9} {mode:10} n={n}: "
                              f"launch {result['launch_per_s']:,.0f}/s resume {result['resume_per_s']:,.0f}/s",
                              file=sys.stderr, flush=True)
                        runs.append(result)
    summary = summarize(runs, args.sides, sizes)
    print_table(summary, args.sides)
    path = write_json("hitl_vs_langgraph", {
        "scenario": "request -> model proposes deploy(production) -> pause for approval -> approve -> "
                    "no-op executor -> model says done; in-process scripted model on both sides",
        "sizes": sizes, "repetitions": reps, "concurrent_batch": 100,
        "bytes_note": "database file bytes after PRAGMA wal_checkpoint(TRUNCATE), minus the empty schema",
        "summary": summary, "runs": runs,
    }, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
