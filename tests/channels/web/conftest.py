"""A real opsgate app (worker, outbox, web inbox) on a uvicorn socket in the test's loop, and a cookie client."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from bot.app import create_app
from bot.config import load_settings
from bot.credentials import issue_token
from bot.runtime import Runtime
from bot.thread import Thread, ThreadStatus
from bot.wiring import build_runtime
from channels.web import WebChannel
from storage.migrate import upgrade
from tests.support.databases import sqlite_url
from tests.support.servers import free_port

PRODUCTION_DEPLOY = "!deploy service=api version=1.2.3 environment=production"
_CSRF = re.compile(r'name="csrf-token" content="([^"]*)"')
_APPROVAL = re.compile(r'name="approval_id" value="([^"]+)"')


@dataclass
class Inbox:
    """A running opsgate process-in-a-task: its URL, runtime and web channel."""

    url: str
    runtime: Runtime
    web: WebChannel

    @property
    def login_token(self) -> str:
        assert self.web.auth.login_token is not None
        return self.web.auth.login_token

    def client(self, **headers: str) -> Client:
        return Client(httpx.AsyncClient(base_url=self.url, follow_redirects=False, headers=headers, timeout=10))

    async def thread(self, thread_id: str) -> Thread:
        return await self.runtime.service.get_thread(thread_id)

    async def personal_token(self, person: str, lifetime: timedelta | None = None) -> str:
        """Create a personal token for ``person`` as `opsgate tokens create` does; return the secret."""
        secret, record = issue_token(person, "test", lifetime)
        await self.runtime.store.add_api_token(record)
        return secret

    async def logged_in(self, person: str) -> Client:
        """A client logged in with a fresh personal token of ``person``."""
        client = self.client()
        response = await client.login_with(await self.personal_token(person))
        assert response.status_code == 303, response.text
        return client

    async def wait_status(self, thread_id: str, *statuses: ThreadStatus, within: float = 10.0) -> Thread:
        """The thread once its status is one of ``statuses`` (the worker runs in the same loop)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            thread = await self.thread(thread_id)
            if thread.status in statuses:
                return thread
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"thread {thread_id} is {thread.status}, not {statuses}")
            await asyncio.sleep(0.02)


class Client:
    """A browser-like HTTP client: keeps cookies, reads the CSRF token from pages."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def aclose(self) -> None:
        await self.http.aclose()

    async def get(self, path: str, **kwargs: object) -> httpx.Response:
        return await self.http.get(path, **kwargs)  # type: ignore[arg-type]

    async def post(self, path: str, data: Mapping[str, str], **kwargs: object) -> httpx.Response:
        return await self.http.post(path, data=data, **kwargs)  # type: ignore[arg-type]

    async def login_by_url(self, token: str, identity: str | None = None) -> httpx.Response:
        """Open the printed login URL; pick ``identity`` when the page offers a choice."""
        response = await self.get(f"/login?token={token}")
        if response.status_code == 200 and identity is not None:
            response = await self.post("/login", {"csrf": csrf_of(response.text), "token": token,
                                                   "identity": identity, "next": "/"})
        return response

    async def login_by_token(self, token: str, identity: str) -> httpx.Response:
        """The login form with a token and an asserted identity (the trusted-relay form)."""
        page = await self.get("/login")
        return await self.post("/login", {"csrf": csrf_of(page.text), "token": token, "identity": identity})

    async def login_with(self, token: str) -> httpx.Response:
        """The login form with a personal token."""
        page = await self.get("/login")
        return await self.post("/login", {"csrf": csrf_of(page.text), "token": token})

    async def csrf(self) -> str:
        page = await self.get("/new")
        assert page.status_code == 200, page.status_code
        return csrf_of(page.text)

    async def start(self, text: str, agent: str = "deploy") -> str:
        """Start a request through the form; return the new thread's id."""
        response = await self.post("/new", {"csrf": await self.csrf(), "agent": agent, "text": text})
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith("/t/")
        return location.removeprefix("/t/")

    async def decide(
        self, thread_id: str, decision: str, fields: Mapping[str, str] | None = None, *, fetch: bool = False
    ) -> httpx.Response:
        """Post a decision from the thread page's form (as the script does when ``fetch``)."""
        page = await self.get(f"/t/{thread_id}")
        found = _APPROVAL.search(page.text)
        assert found, "no pending approval on the page"
        data = {"csrf": csrf_of(page.text), "approval_id": found.group(1), "decision": decision, **(fields or {})}
        headers = {"X-Requested-With": "fetch"} if fetch else {}
        return await self.post(f"/t/{thread_id}/decide", data, headers=headers)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html) or re.search(r'name="csrf" value="([^"]*)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def text_of(html: str) -> str:
    """The visible text of a page, whitespace collapsed, entities kept simple."""
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    text = text.replace("&#39;", "'").replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    return re.sub(r"\s+", " ", text.replace("&amp;", "&")).strip()


@asynccontextmanager
async def running_inbox(database_url: str, env: Mapping[str, str] | None = None) -> AsyncIterator[Inbox]:
    """Serve create_app() with its lifespan (schema, worker, outbox, channel loops) on a free port."""
    port = free_port()
    settings = load_settings({"DATABASE_URL": database_url, "PORT": str(port), "OPSGATE_HOST": "127.0.0.1",
                              "OPSGATE_POLL_INTERVAL": "0.05", **(env or {})})
    if database_url.startswith("postgresql"):
        await upgrade(database_url)  # PostgreSQL is never migrated implicitly
    runtime = build_runtime(settings, model=False)
    app = create_app(settings, runtime)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_config=None,
                                           access_log=False, timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                raise RuntimeError("opsgate did not start; see the captured log")
            await asyncio.sleep(0.01)
        web = next(c for c in runtime.channels if isinstance(c, WebChannel))
        yield Inbox(f"http://127.0.0.1:{port}", runtime, web)
    finally:
        server.should_exit = True
        with contextlib.suppress(SystemExit):  # uvicorn exits with 3 when start-up failed
            await task


InboxFactory = Callable[..., AbstractAsyncContextManager[Inbox]]


@pytest.fixture
def inbox_at(tmp_path: Path) -> InboxFactory:
    """``async with inbox_at(env={...}) as inbox``: a fresh SQLite opsgate with the given environment."""
    def factory(
        env: Mapping[str, str] | None = None, database_url: str | None = None
    ) -> AbstractAsyncContextManager[Inbox]:
        return running_inbox(database_url or sqlite_url(tmp_path / "opsgate.db"), env)

    return factory


@pytest.fixture
async def inbox(inbox_at: InboxFactory) -> AsyncIterator[Inbox]:
    """Open mode (no approvers): the local user approves everything."""
    async with inbox_at() as running:
        yield running


@pytest.fixture
async def local(inbox: Inbox) -> AsyncIterator[Client]:
    """A client logged in through the login URL as ``local``."""
    client = inbox.client()
    response = await client.login_by_url(inbox.login_token)
    assert response.status_code == 303
    yield client
    await client.aclose()
