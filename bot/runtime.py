"""Assembling opsgate from its parts, and running its loops (worker, outbox, channel loops) together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import structlog

from bot import approval_timers
from bot.agent import Registry
from bot.channel import Channel
from bot.config import Settings
from bot.engine import Engine
from bot.errors import ConfigError
from bot.foreground import Foreground
from bot.journal import Journal
from bot.llm import ChatModel
from bot.outbox import OutboxDispatcher
from bot.policy import approvers_for
from bot.schedules import ScheduleLoop, parse_schedules
from bot.service import Service
from bot.store import Store
from bot.timers import TimerHandlers, TimerLoop
from bot.triggers import Triggers
from bot.worker import Worker

log = structlog.get_logger("opsgate.runtime")


@dataclass
class Runtime:
    """Everything one opsgate process needs; built without I/O, started with ``run``."""

    settings: Settings
    store: Store
    registry: Registry
    channels: list[Channel]
    model: ChatModel | None
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30))
    journal: Journal = field(init=False)
    service: Service = field(init=False)
    engine: Engine = field(init=False)
    worker: Worker = field(init=False)
    outbox: OutboxDispatcher = field(init=False)
    timer_handlers: TimerHandlers = field(default_factory=TimerHandlers)
    timers: TimerLoop = field(init=False)
    schedules: ScheduleLoop = field(init=False)
    foreground: Foreground = field(default_factory=Foreground)

    def __post_init__(self) -> None:
        self.journal = Journal(self.store, self.channels)
        self.service = Service(self.settings, self.store, self.registry, self.journal, self.foreground)
        self.engine = Engine(self.settings, self.store, self.registry, self.journal, self.model, self.http)
        self.worker = Worker(self.settings, self.store, self.engine, self.journal.runnable,
                             self.foreground)
        self.outbox = OutboxDispatcher(self.store, self.journal, self.channels, self.settings.poll_interval,
                                       max_attempts=self.settings.outbox_max_attempts)
        self.timers = TimerLoop(self.store, self.journal, self.timer_handlers, self.settings.poll_interval)
        approval_timers.register(self.timer_handlers, lambda group: approvers_for(group, self.settings))
        self.journal.schedulers.append(approval_timers.approval_timers)
        schedules = parse_schedules(self.settings.schedules_raw)  # ConfigError names a bad one
        named = [("OPSGATE_SCHEDULES", s.agent) for s in schedules]
        named += [("OPSGATE_ALERT_AGENT", self.settings.alert_agent)] if self.settings.alert_agent else []
        for variable, agent in named:  # an agent that is not installed, or not turned on, stops the start
            if agent not in self.registry.names:
                running = ", ".join(self.registry.names)
                raise ConfigError(f"{variable}: no agent {agent!r} is running; running: {running}")
        self.schedules = ScheduleLoop(schedules, Triggers(self.settings, self.service))
        for agent in self.registry:  # the agents' own durable timers, and what schedules them
            for kind, handler in agent.timers.items():
                self.timer_handlers.register(kind, handler)
            self.journal.schedulers.extend(agent.schedulers)
        for channel in self.channels:
            channel.bind(self.service)

    def loops(self, *, worker: bool = True, outbox: bool = True, channels: bool = True) -> dict[str, Loop]:
        """The long-running loops of this process, by name."""
        found: dict[str, Loop] = {}
        if worker:
            found["worker"] = self.worker.run
            found["timers"] = self.timers.run  # timers fire where threads run: `opsgate worker` and serve
            if self.schedules.schedules:
                found["schedules"] = self.schedules.run
        if outbox:
            found["outbox"] = self.outbox.run
        if channels:
            for channel in self.channels:
                for index, task in enumerate(channel.background(self.service)):
                    found[f"{channel.name}-{index}"] = task
        return found

    async def aclose(self) -> None:
        for channel in self.channels:
            with contextlib.suppress(Exception):
                await channel.aclose()
        closer = getattr(self.model, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
        await self.http.aclose()
        await self.store.close()


Loop = Callable[[], Awaitable[None]]


def freeze_startup_heap() -> None:
    """Exempt what start-up built (modules, app, settings) from the garbage collector's full passes.

    A full collection walks every tracked object: measured 130-185 ms in ``opsgate serve`` under load, a stall
    every Slack ack in flight waited for (issue 11). Objects frozen here are never collected, so this runs once
    per process, after start-up, and only from the commands that run a long-lived process.
    """
    gc.collect()
    gc.freeze()


async def supervise(name: str, loop: Loop) -> None:
    """Run a loop forever, restarting it with backoff when it crashes (and logging the traceback)."""
    delay = 1.0
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("loop_crashed", loop=name, restart_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)


class Loops:
    """Holds the tasks of running loops (never fire-and-forget) and stops them together."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, loops: dict[str, Loop]) -> None:
        for name, loop in loops.items():
            self.tasks[name] = asyncio.create_task(supervise(name, loop), name=name)

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()
