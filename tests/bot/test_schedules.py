"""Scheduled triggers: cron expressions checked at start, and each due time firing once with two workers."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from bot.config import load_settings
from bot.errors import ConfigError
from bot.schedules import parse_schedules
from bot.wiring import build_runtime, prepare_database
from storage import upgrade

DIGEST = {"name": "digest", "cron": "*/5 * * * *", "agent": "deploy", "message": "!list_deployments"}


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 30, hour, minute, second, tzinfo=UTC)


async def test_each_due_time_starts_one_thread_with_two_workers(database_url: str) -> None:
    """Two runtimes on one database fire the same due times concurrently: one thread per due time, none twice,
    and a due time older than the grace period is skipped."""
    settings = load_settings({"DATABASE_URL": database_url, "OPSGATE_SCHEDULES": json.dumps([DIGEST])})
    await upgrade(database_url)
    workers = [build_runtime(settings, channels=[], model=False) for _ in range(2)]
    try:
        for now in (at(9, 0, 1), at(9, 0, 30), at(9, 4, 59), at(9, 5, 0), at(9, 7, 0)):
            await asyncio.gather(*(w.schedules.fire_due(now) for w in workers))
        assert sum(w.schedules.started for w in workers) == 2  # 09:00 and 09:05
        await asyncio.gather(*(w.schedules.fire_due(at(10, 0, 0)) for w in workers))
        threads = await workers[0].store.list_threads()
        late = await workers[0].schedules.fire_due(at(10, 30, 0))  # 10:30 due exactly now: fires
        stale = await workers[1].schedules.fire_due(at(11, 4, 0))  # 11:00 was 4 minutes ago: within grace
    finally:
        for worker in workers:
            await worker.aclose()
    assert len(threads) == 3
    assert {t.agent for t in threads} == {"deploy"}
    assert (late, stale) == (1, 1)


async def test_a_due_time_missed_beyond_the_grace_period_is_skipped(sqlite_database_url: str) -> None:
    """A worker starting 30 minutes after a due time does not start it late."""
    settings = load_settings({"DATABASE_URL": sqlite_database_url, "OPSGATE_SCHEDULES": json.dumps([
        {**DIGEST, "cron": "0 9 * * *"}])})
    await prepare_database(settings)
    runtime = build_runtime(settings, channels=[], model=False)
    try:
        assert await runtime.schedules.fire_due(at(9, 30)) == 0
        assert await runtime.store.list_threads() == []
    finally:
        await runtime.aclose()


@pytest.mark.parametrize(("raw", "problem"), [
    ("not json", "OPSGATE_SCHEDULES"),
    (json.dumps([{**DIGEST, "cron": "61 * * * *"}]), "not a cron expression"),
    (json.dumps([{**DIGEST, "timezone": "Mars/Olympus"}]), "unknown time zone"),
    (json.dumps([DIGEST, DIGEST]), "unique"),
    (json.dumps([{**DIGEST, "surprise": 1}]), "surprise"),
])
def test_bad_schedules_are_refused_with_the_reason(raw: str, problem: str) -> None:
    """A mistake in OPSGATE_SCHEDULES stops the start and says what is wrong."""
    with pytest.raises(ConfigError, match=problem):
        parse_schedules(raw)


def test_a_schedule_in_a_time_zone_fires_at_local_time() -> None:
    """09:00 in Europe/Berlin in winter is 08:00 UTC."""
    [schedule] = parse_schedules(json.dumps([{**DIGEST, "cron": "0 9 * * *", "timezone": "Europe/Berlin"}]))
    assert schedule.last_due(at(8, 30)) == at(8, 0)


@pytest.mark.parametrize(("variable", "value"), [
    ("OPSGATE_SCHEDULES", json.dumps([{**DIGEST, "agent": "incident"}])),  # installed, but not turned on
    ("OPSGATE_ALERT_AGENT", "nobody"),
])
def test_a_trigger_for_an_agent_that_is_not_running_stops_the_start(
    sqlite_database_url: str, variable: str, value: str
) -> None:
    """A schedule or the alert agent naming an agent that is not running is a ConfigError naming the variable."""
    settings = load_settings({"DATABASE_URL": sqlite_database_url, variable: value})
    with pytest.raises(ConfigError, match=variable):
        build_runtime(settings, channels=[], model=False)
