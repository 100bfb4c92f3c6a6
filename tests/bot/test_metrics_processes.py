"""Metrics across processes: `opsgate serve` and an `opsgate worker` on PostgreSQL sharing PROMETHEUS_MULTIPROC_DIR;
either one's /metrics reports the counters of both."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

from storage import upgrade
from tests.bot.test_metrics import parse, value
from tests.support.api_client import TOKEN, ApiClient
from tests.support.databases import postgres_database
from tests.support.processes import REPO_ROOT, OpsgateProcess
from tests.support.servers import free_port


async def _scrape(url: str) -> dict:  # type: ignore[type-arg]
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


async def test_serve_and_a_worker_report_each_others_counters(tmp_path: Path) -> None:
    """Requests arrive at serve, work is shared with the worker: both /metrics show the same totals."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    async with postgres_database() as url:
        await upgrade(url)
        env = {"DATABASE_URL": url, "PROMETHEUS_MULTIPROC_DIR": str(shared), "OPSGATE_API_TOKEN": TOKEN,
               "OPSGATE_POLL_INTERVAL": "0.05"}
        metrics_port = free_port()
        worker_env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        worker_env.update(env, PYTHONPATH=str(REPO_ROOT), OPSGATE_METRICS_PORT=str(metrics_port),
                          OPSGATE_HOST="127.0.0.1")
        worker_log = (tmp_path / "worker.log").open("wb")
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "worker", env=worker_env, cwd=tmp_path,
            stdout=worker_log, stderr=asyncio.subprocess.STDOUT)
        worker_url = f"http://127.0.0.1:{metrics_port}"
        try:
            async with OpsgateProcess(env, cwd=tmp_path) as serve:
                api = ApiClient(serve.url)
                try:
                    ids = [await api.start(f"!deploy service=api version=1.0.{n} environment=staging")
                           for n in range(6)]
                    for thread_id in ids:
                        await api.wait(thread_id, "done")
                finally:
                    await api.aclose()
                health = await _healthz(worker_url, tmp_path / "worker.log")
                assert health.status_code == 200 and health.text == "ok\n"
                from_serve, from_worker = await _scrape(serve.url), await _scrape(worker_url)
        finally:
            if worker.returncode is None:
                worker.terminate()
            await asyncio.wait_for(worker.wait(), 20)
            worker_log.close()
    ran = {"agent": "deploy", "action": "deploy", "outcome": "ok"}
    for samples in (from_serve, from_worker):
        assert value(samples, "opsgate_tool_executions_total", **ran) == 6
        assert value(samples, "opsgate_thread_events_total", agent="deploy", type="user_message") == 6
        assert value(samples, "opsgate_threads", status="done", agent="deploy") == 6
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()[-2000:]


async def _healthz(url: str, log: Path) -> httpx.Response:
    """The worker's /healthz once its listener is up (a loaded machine may take seconds to import uvicorn)."""
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(300):
            try:
                return await http.get(f"{url}/healthz")
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    tail = (await asyncio.to_thread(log.read_text))[-2000:]
    raise AssertionError(f"the worker's listener never answered:\n{tail}")
