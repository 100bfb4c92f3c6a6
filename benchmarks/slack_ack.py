"""Slack ack latency under load: signed app_mention events against `opsgate serve` while the model is slow.

`opsgate serve` (a subprocess, SQLite file in WAL mode, default settings) talks to a fake Slack Web API and a
scripted model server that takes 2 s per call (both in a helper process, benchmarks/slack_fakes.py). After 5
warm-up events, a burst of 200 signed app_mention events is sent at once, then 2,000 more with 100 in flight.
Reported per phase: ack latency p50/p95/p99/max (client-side, request sent to response received), non-200
answers, the time from the phase's start until every event's thread exists (read back through the HTTP API),
and events with no thread ("lost"). A sequential phase (one event at a time) gives the cost of one ack alone.
``--pin`` gives the server CPU 0 to itself and runs this load generator and the fakes on the other CPUs, so
that the client's own work does not queue the server's (on a machine this small there is no other host to
drive the load from). Run: ``python -m benchmarks.slack_ack`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.paused_scale import rss_mb
from benchmarks.pg import throwaway_database
from benchmarks.raw_http import post_all, request_bytes
from benchmarks.report import percentile, table, write_json
from tests.channels.slack.slack_requests import EVENTS_PATH, SIGNING_SECRET, mention, signed_headers
from tests.support.fake_slack import BOT_TOKEN
from tests.support.processes import OpsgateProcess

TOKEN = "bench-token"
APPROVER = "U0APPROVER"
ROOT = Path(__file__).resolve().parent.parent
TARGET_P99_MS = 50.0


def signed_event(marker: str, index: int) -> tuple[bytes, dict[str, str]]:
    """One app_mention delivery, body and Slack's signature headers, as Slack's servers send it."""
    ts = f"{1_732_300_000 + index}.{index % 1_000_000:06d}"
    envelope = mention(f"{marker} what is deployed for api?", ts=ts, event_id=f"Ev{marker.replace('-', '')}")
    body = json.dumps(envelope, separators=(",", ":")).encode()
    return body, signed_headers(SIGNING_SECRET, body, "application/json")


SERVER_CPUS = {0}


def pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` onto ``cpus`` (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def pin_load_generator() -> set[int]:
    """This process (and the fakes it starts next) onto every CPU but the server's; those CPUs."""
    others = set(os.sched_getaffinity(0)) - SERVER_CPUS
    if not others:
        raise SystemExit("--pin needs at least two CPUs")
    os.sched_setaffinity(0, others)
    return others


async def send_all(base_url: str, events: list[tuple[bytes, dict[str, str]]], concurrency: int,
                   client: str = "raw") -> list[Any]:
    """POST every event with at most ``concurrency`` in flight; [(status or error, seconds)] in order.

    ``raw`` (benchmarks/raw_http.py) times the server from prepared bytes on connections opened beforehand;
    ``raw-fresh`` the same with a new connection per request, its set-up timed; ``httpx`` also times the
    client's own queueing (what the earlier figures measured).
    """
    if client in ("raw", "raw-fresh"):
        url = httpx.URL(base_url)
        host, port = url.host, url.port or 80
        requests = [request_bytes(f"{host}:{port}", "POST", EVENTS_PATH, body, headers) for body, headers in events]
        return await post_all(host, port, requests, concurrency, fresh=client == "raw-fresh")
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
        async def one(body: bytes, headers: dict[str, str]) -> tuple[int | str, float]:
            async with gate:
                began = time.perf_counter()
                try:
                    response = await http.post(EVENTS_PATH, content=body, headers=headers)
                    status: int | str = response.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                return status, time.perf_counter() - began

        return await asyncio.gather(*(one(body, headers) for body, headers in events))


async def thread_titles(http: httpx.AsyncClient) -> list[str]:
    """Every thread's title, page by page."""
    titles: list[str] = []
    offset = 0
    while True:
        page = (await http.get("/threads", params={"limit": 1000, "offset": offset})).json()
        titles += [t["title"] for t in page]
        if len(page) < 1000:
            return titles
        offset += 1000


async def wait_for_threads(http: httpx.AsyncClient, markers: list[str], timeout: float) -> tuple[float, int]:  # noqa: ASYNC109
    """Seconds until a thread exists for every marker (or the timeout), and how many never got one."""
    began = time.perf_counter()
    missing = set(markers)
    while missing and time.perf_counter() - began < timeout:
        titles = " ".join(await thread_titles(http))
        missing = {m for m in missing if m not in titles}
        if missing:
            await asyncio.sleep(0.05)
    return time.perf_counter() - began, len(missing)


async def phase(server: OpsgateProcess, api: httpx.AsyncClient, name: str, count: int, concurrency: int,
                offset: int, client: str = "raw") -> dict[str, Any]:
    markers = [f"b-{name}-{i:05d}" for i in range(count)]
    events = [signed_event(m, offset + i) for i, m in enumerate(markers)]
    began = time.perf_counter()
    answers = await send_all(server.url, events, concurrency, client)
    sent_s = time.perf_counter() - began
    waited_s, lost = await wait_for_threads(api, markers, timeout=120)
    acks_ms = [seconds * 1000 for _, seconds in answers]
    non_200 = [status for status, _ in answers if status != 200]
    return {
        "phase": name, "events": count, "concurrency": concurrency,
        "ack_p50_ms": percentile(acks_ms, 50), "ack_p95_ms": percentile(acks_ms, 95),
        "ack_p99_ms": percentile(acks_ms, 99), "ack_max_ms": max(acks_ms),
        "non_200": len(non_200), "non_200_kinds": sorted({str(s) for s in non_200}),
        "all_threads_exist_s": sent_s + waited_s, "send_s": sent_s, "lost": lost,
    }


async def run(
    burst: int, sustained: int, concurrency: int, model_seconds: float, database_url: str | None = None,
    pin: bool = False, sequential: int = 100, client: str = "raw",
) -> dict[str, Any]:
    client_cpus = sorted(pin_load_generator()) if pin else None
    fakes = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.slack_fakes", "--model-seconds", str(model_seconds),
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert fakes.stdout is not None and fakes.stdin is not None
    try:
        urls = json.loads(await fakes.stdout.readline())
        async with contextlib.AsyncExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="opsgate-slack-"))
            url = f"sqlite+aiosqlite:///{tmp}/opsgate.db"
            if database_url is not None:
                url = await stack.enter_async_context(throwaway_database(database_url))
            env = {
                "DATABASE_URL": url, "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": urls["slack_api_url"],
                "OPENAI_BASE_URL": urls["model_url"], "OPENAI_API_KEY": "bench-key",
                "OPSGATE_API_TOKEN": TOKEN, "OPSGATE_APPROVERS": APPROVER,
            }
            server = OpsgateProcess(env, cwd=tmp)
            async with server, httpx.AsyncClient(base_url=server.url, timeout=30,
                                                 headers={"Authorization": f"Bearer {TOKEN}"}) as api:
                if pin:
                    pin_process(server.pid or 0, SERVER_CPUS)
                await phase(server, api, "warmup", 5, 5, 0)
                phases = [await phase(server, api, "sequential", sequential, 1, 10, client)]
                phases.append(await phase(server, api, "burst", burst, burst, 10 + sequential, client))
                phases.append(await phase(server, api, "sustained", sustained, concurrency,
                                          10 + sequential + burst, client))
                rss_now, rss_peak = rss_mb(server.pid or 0)
        fakes.stdin.close()
        seen = json.loads(await fakes.stdout.readline() or b"{}")
    finally:
        if fakes.returncode is None:
            fakes.kill()
        await fakes.wait()
    pinned = {"server_cpus": sorted(SERVER_CPUS), "client_and_fakes_cpus": client_cpus} if pin else None
    return {"phases": phases, "server_rss_mb": rss_now, "server_peak_rss_mb": rss_peak, "fakes_saw": seen,
            "pinned": pinned}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--sustained", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100, help="in flight during the sustained phase")
    parser.add_argument("--model-seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 burst, 20 sustained at 5")
    parser.add_argument("--database-url", default=None,
                        help="run the server on PostgreSQL: a server URL; the run gets a throwaway database on it")
    parser.add_argument("--sequential", type=int, default=100, help="events sent one at a time first")
    parser.add_argument("--pin", action="store_true",
                        help="server alone on CPU 0; this load generator and the fakes on the other CPUs")
    parser.add_argument("--client", choices=["raw", "raw-fresh", "httpx"], default="raw",
                        help="raw: prepared bytes on connections opened beforehand (times the server); raw-fresh: "
                             "a new connection per request, timed; httpx: also times the client's own queueing")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    burst, sustained, concurrency = (10, 20, 5) if args.quick else (args.burst, args.sustained, args.concurrency)
    sequential = 5 if args.quick else args.sequential
    result = asyncio.run(run(burst, sustained, concurrency, args.model_seconds, args.database_url, args.pin,
                             sequential, args.client))
    phases = result["phases"]
    print(table(
        ["phase", "events", "in flight", "p50 ms", "p95 ms", "p99 ms", "max ms", "non-200", "all threads s",
         "lost"],
        [[p["phase"], p["events"], p["concurrency"], p["ack_p50_ms"], p["ack_p95_ms"], p["ack_p99_ms"],
          p["ack_max_ms"], p["non_200"], p["all_threads_exist_s"], p["lost"]] for p in phases],
    ))
    print(f"server RSS {result['server_rss_mb']:.0f} MB (peak {result['server_peak_rss_mb']:.0f} MB)")
    met = all(p["ack_p99_ms"] <= TARGET_P99_MS and p["non_200"] == 0 and p["lost"] == 0 for p in phases
              if p["phase"] != "sequential")
    path = write_json("slack_ack", {
        "database": "postgresql" if args.database_url else "sqlite",
        "setup": "opsgate serve subprocess, SQLite (WAL) or PostgreSQL, default worker settings; fake Slack Web "
                 f"API and a scripted model taking {args.model_seconds} s per call in a separate process; "
                 "5 warm-up events",
        "client": args.client,
        "latency": "client-side over loopback: " + (
            "request's bytes written to the answer's last byte read, connections opened beforehand"
            if args.client == "raw" else
            "connect started to the answer's last byte read, a new connection per request"
            if args.client == "raw-fresh" else "httpx request started to response received"),
        "target": f"p99 <= {TARGET_P99_MS} ms, zero non-200, zero lost", "target_met": met, **result,
    }, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
