"""The next unit of work on a thread, as ``Thread.next_work`` decides it and the engine carries it out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.events import ExecutionStarted
    from bot.thread import ThreadStatus


@dataclass(frozen=True)
class Route:
    """No agent owns the thread yet."""


@dataclass(frozen=True)
class CallModel:
    """Ask the model for the next action."""


@dataclass(frozen=True)
class RunCommand:
    """The latest message is an explicit ``!command``: parse it, no model."""

    text: str


@dataclass(frozen=True)
class Execute:
    """Run a cleared action (approved or needing no approval); resumes after a crash with the same key."""

    action_id: str
    name: str
    arguments: dict[str, Any]
    approved_by: str | None
    started: ExecutionStarted | None


@dataclass(frozen=True)
class Finish:
    """An explicit command's action was decided or ran: reply with the outcome, no model involved."""

    message: str


@dataclass(frozen=True)
class Wait:
    """Nothing to do until a person (or nobody) acts."""

    status: ThreadStatus


Work = Route | CallModel | RunCommand | Execute | Finish | Wait
