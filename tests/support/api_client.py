"""A small client for opsgate's HTTP API, used by end-to-end tests against a real server process."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import httpx

from tests.support.processes import REPO_ROOT

TOKEN = "test-token"
FINAL = ("done", "failed")


class ApiClient:
    """Bearer-authenticated calls plus waiting for a thread to reach a status."""

    def __init__(self, base_url: str, token: str = TOKEN) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def start(self, message: str, **fields: Any) -> str:
        """POST /threads; returns the thread id (asserts 202)."""
        response = await self.http.post("/threads", json={"message": message, **fields})
        assert response.status_code == 202, response.text
        return str(response.json()["thread_id"])

    async def thread(self, thread_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/threads/{thread_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait(self, thread_id: str, *statuses: str, timeout: float = 15.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Poll until the thread has one of ``statuses``; fail with its events if it does not."""
        deadline = time.monotonic() + timeout
        while True:
            thread = await self.thread(thread_id)
            if thread["status"] in statuses:
                return thread
            if time.monotonic() > deadline:
                kinds = [e["type"] for e in thread["events"]]
                raise AssertionError(f"thread {thread_id} is {thread['status']}, wanted {statuses}: {kinds}")
            await asyncio.sleep(0.05)

    async def respond(self, thread_id: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(f"/threads/{thread_id}/responses", json=body)

    async def approve(self, thread: dict[str, Any], user: str, **fields: Any) -> httpx.Response:
        pending = thread["pending"]
        assert pending is not None, thread
        body = {"type": "approval", "approval_id": pending["approval_id"], "approved": True, "user": user, **fields}
        return await self.respond(thread["id"], body)

    async def reject(self, thread: dict[str, Any], user: str, comment: str) -> httpx.Response:
        pending = thread["pending"]
        assert pending is not None, thread
        body = {"type": "approval", "approval_id": pending["approval_id"], "approved": False, "user": user,
                "comment": comment}
        return await self.respond(thread["id"], body)


async def run_cli(*args: str, env: dict[str, str], stdin: bytes | None = None, timeout: float = 60) -> tuple[int, str]:  # noqa: ASYNC109
    """Run ``python -m bot ARGS`` with ``env`` added; returns (exit code, combined output)."""
    import os

    full = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    full.update(PYTHONPATH=str(REPO_ROOT), **env)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=full, cwd=str(REPO_ROOT),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(stdin), timeout)
    except TimeoutError:
        process.kill()  # never leave a stray server behind
        await process.wait()
        raise
    return process.returncode or 0, out.decode()
