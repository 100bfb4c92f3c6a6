"""Shared fixtures: the scripted model server, the webhook receiver, databases and a working directory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from tests.support.databases import postgres_database, sqlite_url
from tests.support.model_server import ScriptedModelServer
from tests.support.webhook_receiver import WebhookReceiver

WEBHOOK_SECRET = "whsecret"


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """Each test ends on the logging configuration it started with: a command run in-process (``opsgate eval``)
    sets a warning-level filter, which would otherwise hide info lines from later tests' ``capture_logs``."""
    config = structlog.get_config()
    processors = config["processors"]
    saved = list(processors)
    others = {k: v for k, v in config.items() if k != "processors"}
    yield
    processors[:] = saved  # the same list object: loggers bound earlier keep seeing it
    structlog.configure(processors=processors, **others)


@pytest.fixture
def model_server() -> Iterator[ScriptedModelServer]:
    """A started ScriptedModelServer with an empty script (unscripted calls get HTTP 500)."""
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A started WebhookReceiver verifying signatures with WEBHOOK_SECRET ("whsecret")."""
    with WebhookReceiver(WEBHOOK_SECRET) as receiver:
        yield receiver


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite file in the test's tmp_path."""
    return sqlite_url(tmp_path / "opsgate.db")


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each test runs on a fresh SQLite file and on a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "opsgate.db")
    else:
        async with postgres_database() as url:
            yield url


@pytest.fixture
def tmp_workdir(tmp_path: Path) -> Path:
    """An empty directory to use as a subprocess's working directory (not chdir'd into)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    return workdir
