"""OpsgateProcess runs, health-checks, logs and stops a real subprocess with a clean environment.

`python -m bot` resolves from the working directory first, so these tests put a tiny stand-in `bot` package
there (stdlib HTTP server with /healthz, JSON log lines); that tests this helper without depending on the app.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.support.processes import OpsgateProcess

STAND_IN = '''
import argparse, json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("command")
parser.add_argument("--host")
parser.add_argument("--port", type=int)
args = parser.parse_args()
if os.environ.get("FAIL_AT_START"):
    print("config error: FAIL_AT_START is set", flush=True)
    sys.exit(3)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "env": dict(os.environ)}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass

def stop(*_):
    print(json.dumps({"event": "shutdown", "level": "info"}), flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
print("not json: starting", flush=True)
print(json.dumps({"event": "listening", "port": args.port, "command": args.command}), flush=True)
HTTPServer((args.host, args.port), Handler).serve_forever()
'''


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "__init__.py").write_text("")
    (tmp_path / "bot" / "__main__.py").write_text(STAND_IN)
    return tmp_path


async def test_start_waits_for_healthz_and_env_is_clean(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start() returns once /healthz is 200; the child sees the given variables but not the developer's."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-developer-secret")
    async with OpsgateProcess({"DATABASE_URL": "sqlite+aiosqlite:///x.db"}, cwd=workdir) as proc:
        async with httpx.AsyncClient() as http:
            seen = (await http.get(f"{proc.url}/healthz")).json()
        record = await proc.wait_for_log(event="listening", timeout=5)
    assert seen["env"]["DATABASE_URL"] == "sqlite+aiosqlite:///x.db"
    assert "OPENAI_API_KEY" not in seen["env"]
    assert seen["env"]["PATH"] == os.environ["PATH"]
    assert record == {"event": "listening", "port": proc.port, "command": "serve"}
    assert "not json: starting" in proc.log_text()
    assert proc.returncode == -signal.SIGKILL


async def test_terminate_is_graceful_and_restart_reuses_port(workdir: Path) -> None:
    """terminate() sends SIGTERM and waits; restart() comes back on the same port and appends to the log."""
    proc = OpsgateProcess({}, cwd=workdir)
    await proc.start()
    port = proc.port
    try:
        await proc.restart()
        assert proc.port == port
        assert [r["event"] for r in proc.log_records()].count("listening") == 2
        assert await proc.terminate() == 0
        assert [r["event"] for r in proc.log_records()] == ["listening", "shutdown", "listening", "shutdown"]
    finally:
        await proc.kill()


async def test_exit_during_start_raises_with_log_tail(workdir: Path) -> None:
    """A process that dies during start-up makes start() raise with its output."""
    with pytest.raises(RuntimeError, match=r"status 3(.|\n)*FAIL_AT_START is set"):
        await OpsgateProcess({"FAIL_AT_START": "1"}, cwd=workdir).start()


async def test_start_timeout_kills_and_raises(tmp_path: Path) -> None:
    """A process that never serves /healthz is killed after start_timeout and start() raises."""
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "__init__.py").write_text("")
    hang = "import time\nprint('hanging', flush=True)\ntime.sleep(60)\n"
    (tmp_path / "bot" / "__main__.py").write_text(hang)
    proc = OpsgateProcess({}, cwd=tmp_path, start_timeout=1.0)
    with pytest.raises(TimeoutError, match="hanging"):
        await proc.start()
    assert proc.returncode == -signal.SIGKILL


def test_command_and_log_records_skip_non_json(tmp_path: Path) -> None:
    """The argv is python -m bot serve --host 127.0.0.1 --port P; log_records keeps only JSON objects."""
    proc = OpsgateProcess({}, port=4567, cwd=tmp_path)
    assert proc.command[1:] == ["-m", "bot", "serve", "--host", "127.0.0.1", "--port", "4567"]
    proc.log_path.write_text('{"event": "a"}\nplain\n[1]\n{broken\n' + json.dumps({"event": "b"}) + "\n")
    assert [r["event"] for r in proc.log_records()] == ["a", "b"]


async def test_real_opsgate_serve_starts_and_stops(tmp_workdir: Path, sqlite_database_url: str) -> None:
    """The real `python -m bot serve` passes the /healthz wait, logs JSON lines and stops on SIGTERM."""
    proc = OpsgateProcess({"DATABASE_URL": sqlite_database_url, "OPSGATE_API_TOKEN": "t"}, cwd=tmp_workdir)
    try:
        await proc.start()
        assert proc.log_records(), proc.log_tail()
        # uvicorn re-raises SIGTERM after its graceful shutdown, so -SIGTERM is a clean exit too.
        assert await proc.terminate() in (0, -signal.SIGTERM)
    finally:
        await proc.kill()
