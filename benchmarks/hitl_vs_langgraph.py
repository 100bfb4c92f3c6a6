"""Launch / pause / resume throughput and storage of one chat-ops turn: opsgate vs LangGraph.

Every measurement runs in its own subprocess (so peak RSS is that side's alone) on a fresh SQLite file in WAL
mode; the sides alternate within each repetition so drift on the machine hits both alike. Reported figures are
medians over the repetitions. Run: ``python -m benchmarks.hitl_vs_langgraph`` (N = 1,000 and 10,000, 3 reps),
``--n 500 --reps 5`` for other sizes, ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.pg import throwaway_database
from benchmarks.report import median, table, write_json

# side -> command; langgraph is AsyncSqliteSaver as shipped (synchronous=FULL), langgraph_normal the same saver
# with synchronous=NORMAL, which is what opsgate's SQLite store sets: the like-for-like durability comparison.
SIDES = {
    "opsgate": ["-m", "benchmarks.hitl_opsgate"],
    "langgraph": ["-m", "benchmarks.hitl_langgraph"],
    "langgraph_normal": ["-m", "benchmarks.hitl_langgraph", "--synchronous-normal"],
}
BASELINES = ("langgraph", "langgraph_normal")
MODES = ("sequential", "concurrent")
METRICS = (
    "launch_per_s", "resume_per_s", "bytes_per_paused", "bytes_per_done",
    "rows_per_paused", "rows_per_done", "peak_rss_mb",
)
# ratio opsgate/langgraph; for throughput higher is better, for the rest lower is better
TARGETS = {"launch_per_s": (">=", 10.0), "resume_per_s": (">=", 10.0), "bytes_per_paused": ("<=", 0.2)}
ROOT = Path(__file__).resolve().parent.parent


def run_once(side: str, n: int, mode: str, workdir: Path, rep: int, database_url: str | None = None) -> dict[str, Any]:
    """One measurement in a fresh subprocess and a fresh database file (or PostgreSQL database, for opsgate)."""
    db = workdir / f"{side}-{mode}-{n}-{rep}.db"
    out = workdir / f"{side}-{mode}-{n}-{rep}.json"
    extra = ["--database-url", database_url] if database_url and side == "opsgate" else []
    # stdout carries opsgate's JSON log lines (formatted as in production) and is discarded
    proc = subprocess.run(
        [sys.executable, *SIDES[side], "--n", str(n), "--mode", mode, "--db", str(db), "--result", str(out), *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{side} {mode} n={n} failed:\n{proc.stderr[-4000:]}")
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return json.loads(out.read_text(encoding="utf-8"))


async def _on_postgres(server_url: str, side: str, n: int, mode: str, workdir: Path, rep: int) -> dict[str, Any]:
    """``run_once`` on a fresh, migrated PostgreSQL database on ``server_url``'s server, dropped afterwards."""
    async with throwaway_database(server_url) as url:
        return await asyncio.to_thread(run_once, side, n, mode, workdir, rep, url)


def met(ratio: float | None, op: str, limit: float) -> bool:
    """Whether an opsgate/LangGraph ratio meets its target (>= for throughput, <= for size)."""
    if ratio is None:
        return False
    return ratio >= limit if op == ">=" else ratio <= limit


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
            for base in BASELINES:
                if "opsgate" not in sides or base not in sides:
                    continue
                ratio = {m: entry["opsgate"][m] / entry[base][m] if entry[base][m] else None for m in METRICS}
                entry[f"ratio_opsgate_over_{base}"] = ratio
                entry[f"targets_met_vs_{base}"] = {m: met(ratio[m], op, limit) for m, (op, limit) in TARGETS.items()}
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
        for base, label in zip(BASELINES, ("opsgate/lg", "opsgate/lg_normal"), strict=True):
            r = entry.get(f"ratio_opsgate_over_{base}")
            if r is not None:
                lines.append([entry["n"], entry["mode"], label, *(
                    f"{r[m]:.2f}x" if r[m] is not None else "-" for m in METRICS
                )])
    print(table(headers, lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000], help="threads per run")
    parser.add_argument("--reps", type=int, nargs="+", default=[3, 1],
                        help="repetitions per (side, mode, n), one value or one per --n; medians reported")
    parser.add_argument("--sides", nargs="+", choices=sorted(SIDES), default=list(SIDES))
    parser.add_argument("--quick", action="store_true", help="smoke run: n=20, 1 repetition")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    parser.add_argument("--database-url", default=None,
                        help="run opsgate on PostgreSQL: a server URL (postgresql+asyncpg://user@host/db); every "
                             "run gets a fresh throwaway database on it. LangGraph stays on SQLite.")
    args = parser.parse_args(argv)
    sizes, reps = ([20], [1]) if args.quick else (args.n, args.reps)
    if len(reps) not in (1, len(sizes)):
        parser.error("--reps takes one value or one per --n")
    reps_for = dict(zip(sizes, reps * len(sizes) if len(reps) == 1 else reps, strict=True))
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="opsgate-hitl-") as tmp:
        for n in sizes:
            for rep in range(reps_for[n]):
                for mode in MODES:
                    for side in args.sides:
                        load = os.getloadavg()[0]
                        if args.database_url and side == "opsgate":
                            result = asyncio.run(_on_postgres(args.database_url, side, n, mode, Path(tmp), rep))
                        else:
                            result = run_once(side, n, mode, Path(tmp), rep)
                        result["loadavg_1m_before"] = load
                        print(f"  rep {rep + 1}/{reps_for[n]} {side:16} {mode:10} n={n} load {load:.1f}: "
                              f"launch {result['launch_per_s']:,.0f}/s resume {result['resume_per_s']:,.0f}/s "
                              f"(CPU per thread, user+sys: launch {result['launch_user_us']:,.0f}+"
                              f"{result['launch_sys_us']:,.0f} µs, resume {result['resume_user_us']:,.0f}+"
                              f"{result['resume_sys_us']:,.0f} µs; faults {result['launch_faults']:.1f}, "
                              f"{result['resume_faults']:.1f}; slowest launch {result['launch_slowest_ms']:,.1f} ms "
                              f"(#{result['launch_slowest_at']}), resume {result['resume_slowest_ms']:,.1f} ms "
                              f"(#{result['resume_slowest_at']}))",
                              file=sys.stderr, flush=True)
                        runs.append(result)
    summary = summarize(runs, args.sides, sizes)
    print_table(summary, args.sides)
    path = write_json("hitl_vs_langgraph", {
        "scenario": "request -> model proposes deploy(production) -> pause for approval -> approve -> "
                    "no-op executor -> model says done; in-process scripted model on both sides",
        "sizes": sizes, "repetitions": reps_for, "concurrent_batch": 100,
        "note": "the machine is shared with other work; loadavg_1m_before on each run shows how busy it was",
        "bytes_note": "database file bytes after PRAGMA wal_checkpoint(TRUNCATE), minus the empty schema",
        "opsgate_database": "postgresql" if args.database_url else "sqlite",
        "summary": summary, "runs": runs,
    }, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
