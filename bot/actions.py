"""Typed actions and their approval policies.

An action is a pydantic model an agent may propose; its class carries the policy our code enforces
(never / always / a predicate on the arguments), the approver group, and the four-eyes rule. The model
only fills in the arguments; it cannot change the policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

Predicate = Callable[[Any], bool]


def _never(_: Any) -> bool:
    return False


def _always(_: Any) -> bool:
    return True


@dataclass(frozen=True)
class Approval:
    """When an action needs a person's approval, from which group, and whether the requester is excluded."""

    required_when: Predicate = _never
    group: str | None = None
    four_eyes_when: Predicate = _never
    describe: str = "never"
    # The approver group chosen from the arguments (an access role's owners); None: ``group`` for every action.
    group_of: Callable[[Any], str | None] | None = None

    @classmethod
    def never(cls) -> Approval:
        return cls()

    @classmethod
    def always(
        cls, group: str | None = None, four_eyes: bool | Predicate = False,
        group_of: Callable[[Any], str | None] | None = None,
    ) -> Approval:
        return cls(_always, group, _as_predicate(four_eyes), "always", group_of)

    @classmethod
    def when(
        cls, predicate: Predicate, group: str | None = None, four_eyes: bool | Predicate = False,
        describe: str = "conditional",
    ) -> Approval:
        return cls(predicate, group, _as_predicate(four_eyes), describe)

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


class Action(BaseModel):
    """Base of every typed action. Subclasses set ``name``, a docstring (the tool description) and ``approval``."""

    model_config = ConfigDict(extra="forbid")
    name: ClassVar[str]
    approval: ClassVar[Approval] = Approval.never()
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
    message: str


class DoneForNow(Action):
    """Reply to the person and finish: the request is complete, refused, or needs nothing more from you."""

    name: ClassVar[str] = "done_for_now"
    message: str


INTENTS: tuple[type[Action], ...] = (RequestMoreInformation, DoneForNow)


@dataclass(frozen=True)
class ActionSchema:
    """An action's name, description and JSON schema, for tool definitions, ``!help`` and forms."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    approval: str = "never"


def action_schema(action: type[Action]) -> ActionSchema:
    """The JSON schema of an action's arguments, with refs inlined so every client can read it."""
    schema = action.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return ActionSchema(action.name, action.description(), schema, action.approval.describe)
