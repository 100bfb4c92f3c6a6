"""Typed actions and their approval policies.

An action is a pydantic model an agent may propose; its class carries the policy our code enforces
(never / always / a predicate on the arguments), the approver group, and the four-eyes rule. The model
only fills in the arguments; it cannot change the policy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

Predicate = Callable[[Any], bool]
_T = TypeVar("_T")


def _never(_: Any) -> bool:
    return False


def _always(_: Any) -> bool:
    return True


@dataclass(frozen=True)
class Timing:
    """How long an approval request waits and what happens meanwhile; None fields fall back to the defaults.

    ``expire_after``/``remind_every``/``escalate_after`` of ``timedelta(0)`` mean "never" (override a default).
    """

    expire_after: timedelta | None = None
    remind_every: timedelta | None = None
    escalate_after: timedelta | None = None
    escalate_to: str | None = None
    on_expiry: Literal["reject", "stop"] | None = None

    def over(self, default: Timing) -> Timing:
        """These settings where set, ``default``'s elsewhere."""
        def pick(mine: _T | None, theirs: _T | None) -> _T | None:
            return mine if mine is not None else theirs

        return Timing(
            pick(self.expire_after, default.expire_after), pick(self.remind_every, default.remind_every),
            pick(self.escalate_after, default.escalate_after), pick(self.escalate_to, default.escalate_to),
            pick(self.on_expiry, default.on_expiry),
        )


@dataclass(frozen=True)
class Approval:
    """When an action needs a person's approval, from which group, and whether the requester is excluded."""

    required_when: Predicate = _never
    group: str | None = None
    four_eyes_when: Predicate = _never
    describe: str = "never"
    timing: Timing | None = None  # this action's expiry, reminders, escalation (else the agent's defaults)
    # The approver group chosen from the arguments (an access role's owners); None: ``group`` for every action.
    group_of: Callable[[Any], str | None] | None = None

    @classmethod
    def never(cls) -> Approval:
        return cls()

    @classmethod
    def always(
        cls, group: str | None = None, four_eyes: bool | Predicate = False, timing: Timing | None = None,
        group_of: Callable[[Any], str | None] | None = None,
    ) -> Approval:
        return cls(_always, group, _as_predicate(four_eyes), "always", timing, group_of)

    @classmethod
    def when(
        cls, predicate: Predicate, group: str | None = None, four_eyes: bool | Predicate = False,
        describe: str = "conditional", timing: Timing | None = None,
    ) -> Approval:
        return cls(predicate, group, _as_predicate(four_eyes), describe, timing)

    def group_for(self, action: Action) -> str | None:
        """The approver group of this action."""
        return self.group_of(action) if self.group_of is not None else self.group

    def required(self, action: Action) -> bool:
        return bool(self.required_when(action))

    def four_eyes(self, action: Action) -> bool:
        return bool(self.four_eyes_when(action))


def _as_predicate(value: bool | Predicate) -> Predicate:
    if callable(value):
        return value
    return _always if value else _never


GroundSource = Literal["said", "tool_result", "context"]


@dataclass(frozen=True)
class Grounded:
    """Field metadata (``Annotated[str, Grounded(...)]``): where a value must come from before it is trusted.

    ``said``: what people wrote in the thread; ``tool_result``: what a tool returned; ``context``: facts the agent
    pre-fetched into its context. ``aliases`` maps an enumerated value to words people use for it (``prod``);
    ``not_answers`` are words that look like a value but name none (``latest``). ``ask`` is the question put to
    the requester when the value is missing; ``{field}`` placeholders take the other grounded arguments.
    """

    sources: frozenset[GroundSource] = frozenset({"said", "tool_result", "context"})
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    not_answers: frozenset[str] = frozenset()
    ask: str | None = None


class Action(BaseModel):
    """Base of every typed action. Subclasses set ``name``, a docstring (the tool description) and ``approval``.

    ``side_effects`` says whether running it changes the world; read-only actions set it to False and may be
    repeated freely, a side-effecting one runs at most once per request with the same arguments.
    """

    model_config = ConfigDict(extra="forbid")
    name: ClassVar[str]
    approval: ClassVar[Approval] = Approval.never()
    side_effects: ClassVar[bool] = True
    # The agent whose records its tool works on, when another agent may propose it too (the incident agent's
    # rollback is the deploy agent's, with the deploy agent's ledger); None: the thread's agent.
    owner: ClassVar[str | None] = None

    def summary(self) -> str:
        """One line such as ``deploy service=api version=1.2.3 environment=production``."""
        args = " ".join(f"{k}={v}" for k, v in self.model_dump(exclude_none=True).items())
        return f"{self.name} {args}".strip()

    def describe(self) -> str:
        """How people see this action in every channel (approval cards, mails, the inbox): ``name value value``.

        An agent overrides it for wording its people know (``deploy api 1.4.2 to production``).
        """
        values = [str(v) for k, v in self.model_dump(exclude_none=True).items() if k != "reason"]
        return " ".join([self.name, *values])

    @classmethod
    def description(cls) -> str:
        return " ".join((cls.__doc__ or cls.name).split())


class RequestMoreInformation(Action):
    """Ask the person for information you need before you can continue. The thread pauses until they answer."""

    name: ClassVar[str] = "request_more_information"
    side_effects: ClassVar[bool] = False
    message: str


class DoneForNow(Action):
    """Reply to the person and finish: the request is complete, refused, or needs nothing more from you."""

    name: ClassVar[str] = "done_for_now"
    side_effects: ClassVar[bool] = False
    message: str


INTENTS: tuple[type[Action], ...] = (RequestMoreInformation, DoneForNow)


@dataclass(frozen=True)
class ActionSchema:
    """An action's name, description and JSON schema, for tool definitions, ``!help`` and forms."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    approval: str = "never"


@functools.cache
def grounded_fields(action: type[Action]) -> Mapping[str, Grounded]:
    """The fields of an action that declare a grounding rule, by name (read once per class: every proposal's
    checks ask)."""
    found: dict[str, Grounded] = {}
    for name, info in action.model_fields.items():
        rule = next((m for m in info.metadata if isinstance(m, Grounded)), None)
        if rule is not None:
            found[name] = rule
    return MappingProxyType(found)


def action_schema(action: type[Action]) -> ActionSchema:
    """The JSON schema of an action's arguments, with refs inlined so every client can read it."""
    schema = action.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return ActionSchema(action.name, action.description(), schema, action.approval.describe)
