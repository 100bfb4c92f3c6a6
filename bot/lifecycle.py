"""An approval's lifecycle as policy in code: how long a request waits, reminders, escalation, what expiry means.

Each action's ``Approval`` may set its own ``Timing``; an agent has defaults; the environment overrides the
agents' defaults (``OPSGATE_APPROVAL_EXPIRY=4h,incident=15m``: every agent 4 h, the incident agent 15 min).
``gate`` fixes the resolved times in the ``ApprovalRequested`` event; bot/approval_timers.py turns them into
durable timers and fires them. Expiry fails closed: the request is closed as a
rejection by "opsgate" that the model reads like any other, or (``on_expiry="stop"``) the thread ends.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from bot.actions import Timing
from bot.events import ApprovalDecided, ApprovalRequested, Via
from bot.thread import PendingApproval, Thread

MIN_DURATION, MAX_DURATION = timedelta(seconds=1), timedelta(days=90)
OPSGATE = "opsgate"  # who closes an expired request

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str) -> timedelta | None:
    """``90s``, ``15m``, ``4h``, ``2d``, ``1h30m`` or plain seconds; ``off``/``never``/``0`` is None."""
    value = text.strip().lower()
    if value in ("off", "never", "none", "0"):
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    else:
        parts = _PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 4h, 2d or 1h30m (or off)")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    duration = timedelta(seconds=seconds)
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise ValueError(f"{text!r} is outside 1s..90d")
    return duration


def describe(duration: timedelta) -> str:
    """``4h``, ``1h 30m``, ``45s``: a duration as people read it."""
    seconds = int(round(duration.total_seconds()))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts) or "0s"


NEVER = timedelta(0)
# Built in for agents that say nothing: a request nobody decides is closed after a day, approvers hear hourly.
BUILT_IN = Timing(expire_after=timedelta(hours=24), remind_every=timedelta(hours=1), escalate_after=NEVER,
                  on_expiry="reject")


@dataclass(frozen=True)
class TimingOverrides:
    """The environment's overrides of agents' defaults: a value for every agent, and per agent."""

    every: Timing = Timing()
    agents: Mapping[str, Timing] = field(default_factory=dict)

    def for_agent(self, agent: str) -> Timing:
        own = self.agents.get(agent, Timing())
        return own.over(self.every)


def parse_overrides(expiry: str | None, reminder: str | None, escalation: str | None,
                    escalate_to: str | None) -> TimingOverrides:
    """Read ``[agent=]value`` lists (``4h,incident=15m``); ValueError naming the bad item."""
    every: dict[str, object] = {}
    agents: dict[str, dict[str, object]] = {}
    fields = (("expire_after", "EXPIRY", expiry, _duration_or_never),
              ("remind_every", "REMINDER", reminder, _duration_or_never),
              ("escalate_after", "ESCALATION", escalation, _duration_or_never),
              ("escalate_to", "ESCALATE_TO", escalate_to, _group))
    for name, variable, raw, parse in fields:
        for item in (raw or "").split(","):
            item = item.strip()
            if not item:
                continue
            agent, _, value = item.rpartition("=")
            target = agents.setdefault(agent.strip().lower(), {}) if agent else every
            where = f"OPSGATE_APPROVAL_{variable}"
            if name in target:
                raise ValueError(f"{where}: {'agent ' + agent if agent else 'the default'} is given twice")
            try:
                target[name] = parse(value)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
    return TimingOverrides(Timing(**every), {name: Timing(**values) for name, values in agents.items()})  # type: ignore[arg-type]


def _duration_or_never(value: str) -> timedelta:
    duration = parse_duration(value)
    return NEVER if duration is None else duration


def _group(value: str) -> str:
    name = value.strip().lower()
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"{value!r} is not a group name (OPSGATE_APPROVERS_<GROUP>)")
    return name


@dataclass(frozen=True)
class Resolved:
    """The lifecycle of one request, in absolute times (None: never)."""

    expires_at: datetime | None
    remind_every: timedelta | None
    escalate_at: datetime | None
    escalate_to: str | None
    on_expiry: Literal["reject", "stop"]


def resolve(action: Timing | None, agent: Timing | None, overrides: TimingOverrides, agent_name: str,
            at: datetime) -> Resolved:
    """Action's own settings, else the environment's for the agent, else the agent's defaults, else built in."""
    timing = _merged(action, overrides.for_agent(agent_name), agent)

    def when(delay: timedelta | None) -> datetime | None:
        return at + delay if delay else None
    escalate_at = when(timing.escalate_after) if timing.escalate_to else None
    return Resolved(
        expires_at=when(timing.expire_after), remind_every=timing.remind_every or None,
        escalate_at=escalate_at, escalate_to=timing.escalate_to if escalate_at else None,
        on_expiry=timing.on_expiry or "reject",
    )


@functools.lru_cache(maxsize=256)
def _merged(action: Timing | None, environment: Timing, agent: Timing | None) -> Timing:
    # The same few combinations on every request (timings are frozen, hashable values): merged once each.
    return (action or Timing()).over(environment).over(agent or Timing()).over(BUILT_IN)


def with_lifecycle(request: ApprovalRequested, resolved: Resolved) -> ApprovalRequested:
    """The request with its lifecycle fixed in it."""
    return request.model_copy(update={
        "expires_at": resolved.expires_at, "on_expiry": resolved.on_expiry,
        "remind_every_s": resolved.remind_every.total_seconds() if resolved.remind_every else None,
        "escalate_at": resolved.escalate_at, "escalate_to": resolved.escalate_to,
    })


def expiry_event(thread: Thread, pending: PendingApproval) -> ApprovalDecided:
    """The decision an expiry records: a rejection by opsgate with the reason, like any other decision."""
    request = thread.approval_request(pending.approval_id)
    waited = (pending.expires_at - pending.requested_at) if pending.expires_at else NEVER
    return ApprovalDecided(
        approval_id=pending.approval_id, action_id=pending.action_id, approved=False, by=OPSGATE,
        comment=f"expired: nobody decided within {describe(waited)}, so the request was rejected"
        + (" and the thread stopped" if request is not None and request.on_expiry == "stop" else ""),
        via=Via(channel="timer"), closed_by="expiry",
    )


def expired(pending: PendingApproval, now: datetime) -> bool:
    """The request's time is up (a decision at or after its expiry instant does not count)."""
    return pending.expires_at is not None and now >= pending.expires_at
