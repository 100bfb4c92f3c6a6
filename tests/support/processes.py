"""OpsgateProcess: a real ``python -m bot serve`` subprocess with a clean environment and a log file.

The child sees only PATH, HOME, PYTHONPATH (the repository) and the variables a test passes, so a developer's
OPENAI_API_KEY or DATABASE_URL can never leak into a test. opsgate logs structlog JSON lines to stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from tests.support.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "TMPDIR")


class OpsgateProcess:
    """One opsgate server process on 127.0.0.1; lifecycle methods are async so the test's loop keeps going."""

    def __init__(
        self,
        env: Mapping[str, str],
        port: int | None = None,
        args: Sequence[str] = ("serve",),
        *,
        cwd: str | Path | None = None,
        log_path: str | Path | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.port = port or free_port()
        self.args = tuple(args)
        self.cwd = Path(cwd) if cwd is not None else Path(tempfile.mkdtemp(prefix="opsgate-proc-"))
        self.log_path = Path(log_path) if log_path is not None else self.cwd / f"opsgate-{self.port}.log"
        self.start_timeout = start_timeout
        self.env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
        self.env.update(PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
        self.env.update({key: str(value) for key, value in env.items()})
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def command(self) -> list[str]:
        """The argv that is run."""
        return [sys.executable, "-m", "bot", *self.args, "--host", "127.0.0.1", "--port", str(self.port)]

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. http://127.0.0.1:40123."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The child's pid while started."""
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        """Exit status once the process ended (negative: killed by that signal), else None."""
        return self._process.poll() if self._process else None

    async def start(self) -> OpsgateProcess:
        """Spawn the process and wait until GET /healthz answers 200; raise with the log tail if not."""
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError(f"opsgate already running (pid {self._process.pid})")
        self._log = self.log_path.open("ab")  # append, so a restart keeps the earlier run's log
        self._process = await asyncio.to_thread(
            subprocess.Popen, self.command, cwd=self.cwd, env=self.env, stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.start_timeout
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                if (code := self._process.poll()) is not None:
                    self._close_log()
                    tail = self.log_tail()
                    raise RuntimeError(f"opsgate exited with status {code} during start-up:\n{tail}")
                try:
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    await self.kill()
                    raise TimeoutError(
                        f"opsgate /healthz not 200 within {self.start_timeout}s:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.1)

    async def kill(self) -> int | None:
        """SIGKILL (a crash: nothing gets to clean up) and reap; returns the exit status."""
        return await self._stop(signal.SIGKILL, timeout=10.0)

    async def terminate(self, timeout: float = 15.0) -> int | None:  # noqa: ASYNC109
        """SIGTERM (graceful shutdown) and wait; SIGKILL and raise if it does not exit within ``timeout``.

        uvicorn re-raises the signal after a graceful shutdown, so a clean exit returns -SIGTERM (-15).
        """
        code = await self._stop(signal.SIGTERM, timeout)
        if code is None:
            await self.kill()
            raise TimeoutError(f"opsgate ignored SIGTERM for {timeout}s:\n{self.log_tail()}")
        return code

    async def restart(self) -> OpsgateProcess:
        """Terminate gracefully, then start again on the same port with the same environment."""
        await self.terminate()
        return await self.start()

    async def _stop(self, sig: signal.Signals, timeout: float) -> int | None:  # noqa: ASYNC109
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 (polling a child)
            await asyncio.sleep(0.05)
        code = process.poll()
        if code is not None:
            self._close_log()
        return code

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # logs

    def log_text(self) -> str:
        """Everything the process (and earlier runs of it) wrote to stdout and stderr."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON-object lines of the log (structlog records); other lines are skipped."""
        records = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
        return records

    async def wait_for_log(
        self,
        match: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 (a deadline in the failure message)
        **fields: Any,
    ) -> dict[str, Any]:
        """Wait for a log record with all ``fields`` (e.g. event="thread_done") and ``match``; return it."""
        def wanted(record: dict[str, Any]) -> bool:
            return all(record.get(k) == v for k, v in fields.items()) and (match is None or match(record))

        deadline = time.monotonic() + timeout
        while True:
            found = next((record for record in self.log_records() if wanted(record)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"no log record with {fields} within {timeout}s:\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> OpsgateProcess:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.kill()
