"""Fixtures for the Slack tests: the fake Web API, a real SQLite store, settings pointing at both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from storage import SqlStore, ensure_schema, store_for
from tests.channels.slack.slack_requests import SIGNING_SECRET
from tests.support.databases import sqlite_url
from tests.support.fake_slack import BOT_TOKEN, FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A started fake Slack Web API."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def slack_settings(slack: FakeSlack, tmp_path: Path) -> Settings:
    """Settings for the Slack channel against the fake Web API, approvers Carol and Dave."""
    return load_settings({
        "DATABASE_URL": sqlite_url(tmp_path / "opsgate.db"),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "OPSGATE_APPROVERS": "UCAROL01,UDAVE001",
    })


@pytest.fixture
async def store(slack_settings: Settings) -> AsyncIterator[SqlStore]:
    """A real store on a fresh SQLite file."""
    await ensure_schema(slack_settings.database_url)
    sql = store_for(slack_settings.database_url)
    yield sql
    await sql.close()
