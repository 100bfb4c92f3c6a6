"""Fixtures for the Slack tests: the fake Web API, a real store (SQLite and PostgreSQL), settings for both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from bot.config import Settings, load_settings
from bot.runtime import Runtime
from bot.thread import Thread
from bot.wiring import build_registry
from channels.slack import SlackChannel
from channels.slack.slack_inbound import Incoming, receive
from storage import SqlStore, store_for, upgrade
from tests.channels.slack.e2e_support import api, opsgate, sender, server_db  # noqa: F401 - e2e fixtures
from tests.channels.slack.slack_requests import SIGNING_SECRET
from tests.support.fake_slack import BOT_TOKEN, FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A started fake Slack Web API."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def slack_settings(slack: FakeSlack, database_url: str) -> Settings:
    """Settings for the Slack channel against the fake Web API, approvers Carol and Dave."""
    return load_settings({
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "OPSGATE_APPROVERS": "UCAROL01,UDAVE001",
    })


@pytest.fixture
async def store(slack_settings: Settings) -> AsyncIterator[SqlStore]:
    """A real store on a fresh database (each test runs on SQLite and on PostgreSQL)."""
    await upgrade(slack_settings.database_url)
    sql = store_for(slack_settings.database_url)
    yield sql
    await sql.close()


@pytest.fixture
async def runtime(slack_settings: Settings, store: SqlStore) -> AsyncIterator[Runtime]:
    """A runtime (service, engine, journal) with the Slack channel and no model; no loops run."""
    channel = SlackChannel(slack_settings)
    built = Runtime(settings=slack_settings, store=store, registry=build_registry(slack_settings),
                    channels=[channel], model=None)
    yield built
    await channel.aclose()
    await built.http.aclose()


async def waiting_deploy(runtime: Runtime, requester: str = "UALICE01", event_id: str = "EvDeploy") -> Thread:
    """A thread started by a Slack mention whose production deploy waits for approval (!command: no model)."""
    message = Incoming(
        event_id=event_id, channel="C0OPS0001", user=requester, ts="1732270000.000100",
        root_ts="1732270000.000100", addressed=True,
        text="!deploy service=api version=1.4.2 environment=production",
    )
    received = await receive(message, runtime.service)
    assert received.thread_id is not None
    advanced = await runtime.engine.advance(received.thread_id)
    assert advanced is not None and advanced.status == "waiting_for_approval", advanced
    return advanced
