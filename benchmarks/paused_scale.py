"""Scale of paused work: approving one thread when 100, 10,000 or 100,000 threads wait for approval.

For each size a fresh SQLite file (WAL) is filled through the store API (``SqlStore.create_thread``, one
transaction per thread, with the events the real path writes: request, agent choice, the model's deploy proposal
and the approval request built by ``bot.policy.gate``). Then a real ``opsgate serve`` subprocess is started on
each, all at once, and 100 randomly chosen threads of each are approved through the HTTP API (POST
/threads/{id}/responses), one approval on each server in turn, so that the machine's drift hits every size alike;
each approval's latency is timed, then the worker is left to finish that thread (not timed). Also: the latency
of the first page of the approval queue (GET /threads?status=waiting_for_approval) and each server's RSS.
Run: ``python -m benchmarks.paused_scale`` (``--sizes 100 10000``; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from agents.deploy.actions import Deploy
from benchmarks.hitl_scenario import APPROVER, DEPLOY_ARGS, DEPLOY_REASON, REQUEST, REQUESTER
from benchmarks.report import median, percentile, table, write_json
from bot.config import load_settings
from bot.events import ActionProposed, AgentSelected, UserMessage, Via
from bot.policy import gate
from bot.thread import Thread
from storage import ensure_schema, store_for
from tests.support.processes import OpsgateProcess

SIZES = (100, 10_000, 100_000)
TOKEN = "bench-token"
SLACK = Via(channel="slack", conversation="C0BENCH", message="1700000000.000100")
TARGETS = {"latency_ratio_largest_over_smallest": 1.2, "rss_mb": 200}


def paused_thread(index: int, settings: Any) -> Thread:
    """A thread exactly as the worker leaves it when a production deploy waits for approval."""
    action = Deploy(**DEPLOY_ARGS)
    proposal = ActionProposed(name=action.name, arguments=action.model_dump(mode="json"), reason=DEPLOY_REASON)
    events = [
        UserMessage(text=REQUEST, user=REQUESTER, via=SLACK),
        AgentSelected(agent="deploy", reason="only agent"),
        *gate(proposal, action, settings, REQUESTER),
    ]
    return Thread(id=f"p{index:07d}", events=[]).with_events(events)


async def populate(db: Path, size: int) -> tuple[dict[str, str], float]:
    """Create ``size`` paused threads through the store API; return {thread id: approval id} and seconds taken."""
    url = f"sqlite+aiosqlite:///{db}"
    settings = load_settings({"DATABASE_URL": url, "OPSGATE_APPROVERS": APPROVER})
    await ensure_schema(url)
    store = store_for(url)
    approvals: dict[str, str] = {}
    started = time.perf_counter()
    try:
        for index in range(size):
            thread = paused_thread(index, settings)
            assert thread.status == "waiting_for_approval" and thread.pending is not None
            await store.create_thread(thread, thread.status)
            approvals[thread.id] = thread.pending.approval_id
    finally:
        await store.close()
    return approvals, time.perf_counter() - started


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of a process in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def server_env(db: Path) -> dict[str, str]:
    """`opsgate serve` on the database; approvals name their approver with the shared token (a trusted relay, as a
    chat bridge would be)."""
    return {"DATABASE_URL": f"sqlite+aiosqlite:///{db}", "OPSGATE_API_TOKEN": TOKEN,
            "OPSGATE_API_TRUSTED_RELAY": "true", "OPSGATE_APPROVERS": APPROVER, "OPSGATE_LOG_LEVEL": "info"}


async def approve(http: httpx.AsyncClient, thread_id: str, approval_id: str) -> float:
    """One approval through the HTTP API, timed in ms; then the worker is left to finish the thread (not timed)."""
    body = {"type": "approval", "approval_id": approval_id, "approved": True, "user": APPROVER}
    began = time.perf_counter()
    response = await http.post(f"/threads/{thread_id}/responses", json=body)
    elapsed = (time.perf_counter() - began) * 1000
    if response.status_code != 202:
        raise RuntimeError(f"approval of {thread_id} answered {response.status_code}: {response.text}")
    await wait_finished(http, thread_id)
    return elapsed


async def queue_page(http: httpx.AsyncClient) -> float:
    """The first page of the approval queue, timed in ms."""
    began = time.perf_counter()
    page = await http.get("/threads", params={"status": "waiting_for_approval", "limit": 50})
    elapsed = (time.perf_counter() - began) * 1000
    page.raise_for_status()
    return elapsed


async def wait_finished(http: httpx.AsyncClient, thread_id: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Let the worker take the approved thread to done (executes the deploy in the local ledger)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = (await http.get(f"/threads/{thread_id}")).json()["status"]
        if status in ("done", "failed"):
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"thread {thread_id} did not finish within {timeout}s")


async def run(sizes: list[int], samples: int) -> list[dict[str, Any]]:
    """Fill one database per size, start a server on each, then time approvals round-robin across them.

    Interleaving (one approval on each server in turn, ``samples`` rounds) makes whatever the machine does
    meanwhile land on every size alike; measured one size after the other, the ratio moved 0.9-1.3× between runs.
    """
    with contextlib.ExitStack() as dirs:
        filled = []
        for size in sizes:
            db = Path(dirs.enter_context(tempfile.TemporaryDirectory(prefix="opsgate-paused-"))) / "paused.db"
            approvals, fill_s = await populate(db, size)
            chosen = random.Random(size).sample(sorted(approvals), min(samples, len(approvals)))
            filled.append((size, db, approvals, chosen, fill_s))
        async with contextlib.AsyncExitStack() as stack:
            servers = []
            for size, db, _, _, _ in filled:
                server = await stack.enter_async_context(
                    OpsgateProcess(server_env(db), cwd=db.parent, log_path=db.parent / f"serve-{size}.log"))
                http = await stack.enter_async_context(httpx.AsyncClient(
                    base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}))
                servers.append((server, http))
            rss_start = [rss_mb(server.pid or 0)[0] for server, _ in servers]
            pages: list[list[float]] = [[] for _ in filled]
            latencies: list[list[float]] = [[] for _ in filled]
            for _ in range(10):
                for i, (_, http) in enumerate(servers):
                    pages[i].append(await queue_page(http))
            for round_ in range(max(len(chosen) for *_, chosen, _ in filled)):
                for i, (_, _, approvals, chosen, _) in enumerate(filled):
                    if round_ < len(chosen):
                        thread_id = chosen[round_]
                        latencies[i].append(await approve(servers[i][1], thread_id, approvals[thread_id]))
            rss_end = [rss_mb(server.pid or 0) for server, _ in servers]
        results = []
        for i, (size, db, _, _, fill_s) in enumerate(filled):
            results.append({
                "threads": size, "fill_seconds": fill_s, "fill_per_s": size / fill_s, "db_bytes": db.stat().st_size,
                "approvals": len(latencies[i]),
                "approve_p50_ms": percentile(latencies[i], 50), "approve_p95_ms": percentile(latencies[i], 95),
                "approve_max_ms": max(latencies[i]), "queue_page_p50_ms": median(pages[i]),
                "rss_start_mb": rss_start[i], "rss_end_mb": rss_end[i][0], "rss_peak_mb": rss_end[i][1],
            })
        return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--samples", type=int, default=100, help="approvals timed per size")
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 10 and 30, 5 approvals")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes, samples = ([10, 30], 5) if args.quick else (args.sizes, args.samples)
    results = asyncio.run(run(sizes, samples))
    print(table(
        ["threads", "fill/s", "approve p50 ms", "p95 ms", "max ms", "queue page ms", "RSS MB", "peak RSS MB"],
        [[r["threads"], r["fill_per_s"], r["approve_p50_ms"], r["approve_p95_ms"], r["approve_max_ms"],
          r["queue_page_p50_ms"], r["rss_end_mb"], r["rss_peak_mb"]] for r in results],
    ))
    ratio = results[-1]["approve_p50_ms"] / results[0]["approve_p50_ms"]
    peak = max(r["rss_peak_mb"] for r in results)
    print(f"approve p50 at {results[-1]['threads']:,} / at {results[0]['threads']:,}: {ratio:.2f}x; "
          f"peak server RSS {peak:.0f} MB")
    path = write_json("paused_scale", {
        "fill": "SqlStore.create_thread per thread (store API), events as the worker writes them",
        "approval_path": "HTTP POST /threads/{id}/responses on an `opsgate serve` subprocess per size (SQLite, WAL), "
                         "all servers up at once, one approval on each in turn",
        "samples_per_size": samples,
        "latency_ratio_largest_over_smallest": ratio, "peak_rss_mb": peak,
        "targets": TARGETS,
        "targets_met": {"latency": ratio <= TARGETS["latency_ratio_largest_over_smallest"],
                        "rss": peak <= TARGETS["rss_mb"]},
        "results": results,
    }, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
