"""Scheduled triggers: cron expressions that start a thread for an agent with a message (a morning digest).

``OPSGATE_SCHEDULES`` is a JSON list of ``{"name", "cron", "agent", "message", "timezone"?}``; cron expressions
are read by cronsim (five fields, the usual syntax). Every worker runs the loop; a due time fires exactly once
however many run, because the thread it starts carries the ref ``schedule/<name>@<due time>`` in its creating
transaction: a second worker gets DuplicateRef and writes nothing. A due time missed while every worker was down
still fires if one starts within the grace period (OPSGATE_SCHEDULE_GRACE seconds).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from bot.config import read_json_setting
from bot.errors import ConfigError, DuplicateRef
from bot.store import Ref
from bot.triggers import Triggers

log = structlog.get_logger("opsgate.schedules")

SCHEDULE_REF = "schedule"
GRACE = timedelta(minutes=10)


class Schedule(BaseModel):
    """One scheduled trigger."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    cron: str = Field(min_length=1, max_length=200)
    agent: str = Field(min_length=1, max_length=64)
    message: str = Field(min_length=1, max_length=4000)
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        try:
            CronSim(value, datetime.now(UTC))
        except CronSimError as exc:
            raise ValueError(f"not a cron expression ({exc})") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def last_due(self, now: datetime) -> datetime:
        """The latest due time at or before ``now`` (UTC)."""
        local = now.astimezone(ZoneInfo(self.timezone)) + timedelta(seconds=1)
        return next(CronSim(self.cron, local, reverse=True)).astimezone(UTC)

    def next_due(self, now: datetime) -> datetime:
        """The first due time after ``now`` (UTC)."""
        return next(CronSim(self.cron, now.astimezone(ZoneInfo(self.timezone)))).astimezone(UTC)


_SCHEDULES: TypeAdapter[list[Schedule]] = TypeAdapter(list[Schedule])


def parse_schedules(raw: str | None) -> list[Schedule]:
    """OPSGATE_SCHEDULES read and checked; ConfigError names the variable and the problem."""
    if not raw or not raw.strip():
        return []
    schedules = read_json_setting("OPSGATE_SCHEDULES", raw, _SCHEDULES)
    names = [s.name for s in schedules]
    if len(set(names)) != len(names):
        raise ConfigError("OPSGATE_SCHEDULES: schedule names must be unique")
    return schedules


class ScheduleLoop:
    """Fires due schedules; any number may run, each due time starts one thread."""

    def __init__(self, schedules: list[Schedule], triggers: Triggers, grace: timedelta = GRACE) -> None:
        self.schedules = schedules
        self.triggers = triggers
        self.grace = grace
        self.started = 0  # threads this loop started (for tests)

    async def run(self) -> None:
        """Fire what is due, then sleep until the next due time (at most a minute: clocks and DST move)."""
        while True:
            now = datetime.now(UTC)
            await self.fire_due(now)
            soonest = min((s.next_due(now) for s in self.schedules), default=now + timedelta(minutes=1))
            await asyncio.sleep(min(60.0, max(0.05, (soonest - datetime.now(UTC)).total_seconds())))

    async def fire_due(self, now: datetime) -> int:
        """Start the thread of every schedule whose latest due time is within the grace period; how many."""
        fired = 0
        for schedule in self.schedules:
            due = schedule.last_due(now)
            if now - due > self.grace:
                continue
            try:
                fired += await self._fire(schedule, due)
            except Exception:  # one bad schedule (an agent removed?) must not stop the others
                log.exception("schedule_failed", schedule=schedule.name, due=due.isoformat())
        return fired

    async def _fire(self, schedule: Schedule, due: datetime) -> int:
        ref = Ref(channel=SCHEDULE_REF, key=f"{schedule.name}@{due:%Y-%m-%dT%H:%MZ}")
        if await self.triggers.service.store.get_ref(ref.channel, ref.key) is not None:
            return 0
        source = f"schedule:{schedule.name}"
        service = self.triggers.service
        try:
            thread = await service.start_thread(schedule.message, user=source, via=self.triggers.via(source),
                                                agent=schedule.agent, refs=[ref])
        except DuplicateRef:
            return 0  # another worker started it
        self.started += 1
        log.info("schedule_fired", schedule=schedule.name, due=due.isoformat(), thread_id=thread.id)
        return 1
