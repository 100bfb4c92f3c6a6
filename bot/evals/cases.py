"""Eval cases: a thread so far and what must happen next, read from readable YAML files beside each agent.

A file holds ``group`` (default for its cases) and ``cases``; each case has an ``id``, a ``thread`` (steps such as
``user: deploy api 1.4.2 to prod``, ``asked:``, ``answer:``, ``ran:``, ``rejected:``, ``reply:``) and ``expect``:
an action with argument constraints (a value, ``{one_of: [...]}`` or ``{any: true}``) and optionally its
outcome (``approval`` or ``run``), a question (``mentions`` words), a reply, ``talk`` (a question or a reply:
anything but an action), or a routing choice.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.errors import ConfigError

REQUESTER = "requester@example.com"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ran(_Strict):
    """An action that already ran in the thread, with what it returned."""

    action: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: str
    ok: bool = True
    approved_by: str | None = None


class Rejected(_Strict):
    """A proposal an approver rejected, with their reason."""

    action: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    by: str = "carol@example.com"
    comment: str | None = None


class Step(_Strict):
    """One step of the thread so far; exactly one key is set."""

    user: str | None = None  # a person's message (starts a request)
    by: str | None = None  # who wrote ``user`` or ``answer`` (default: the requester)
    answer: str | None = None  # a person's answer to the agent's question
    asked: str | None = None  # the agent's question
    ran: Ran | None = None
    rejected: Rejected | None = None
    reply: str | None = None  # the agent's final reply to an earlier request

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("user", "answer", "asked", "ran", "rejected", "reply") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a step needs exactly one of user, answer, asked, ran, rejected, reply (got {kinds})")
        return self


class Expect(_Strict):
    """What must happen next."""

    kind: Literal["action", "question", "reply", "talk", "route"]  # talk: a question or a reply, no action
    action: str | None = None  # kind=action: the tool
    arguments: dict[str, Any] = Field(default_factory=dict)  # value | {one_of: [...]} | {any: true}
    outcome: Literal["approval", "run"] | None = None  # kind=action: what the policy must make of it
    mentions: list[str] = Field(default_factory=list)  # question/reply: words that must all appear
    agent: str | None = None  # kind=route

    @model_validator(mode="after")
    def _complete(self) -> Expect:
        if self.kind == "action" and not self.action:
            raise ValueError("expect.kind=action needs expect.action")
        if self.kind == "route" and not self.agent:
            raise ValueError("expect.kind=route needs expect.agent")
        return self


class Case(_Strict):
    """One eval case."""

    id: str
    group: str = "general"
    note: str | None = None
    thread: list[Step]
    expect: Expect
    agents: dict[str, str] = Field(default_factory=dict)  # route cases: other agents to choose from (name: what)
    file: str = ""

    @model_validator(mode="after")
    def _starts_with_a_message(self) -> Case:
        if not self.thread or self.thread[0].user is None:
            raise ValueError("a case's thread starts with a user message")
        return self


class CaseFile(_Strict):
    group: str = "general"
    cases: list[dict[str, Any]]


def load_file(path: Path) -> list[Case]:
    """The cases of one YAML file; ConfigError naming the file and the case on anything malformed."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        file = CaseFile.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    cases = []
    for index, raw in enumerate(file.cases):
        try:
            cases.append(Case.model_validate({"group": file.group, **raw, "file": path.name}))
        except ValidationError as exc:
            name = raw.get("id", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
            raise ConfigError(f"{path}: case {name}: {exc}") from None
    return cases


def load_cases(directory: Path, pattern: str | None = None) -> list[Case]:
    """Every case under ``directory`` (sorted by file), optionally only ids matching a glob; ids must be unique."""
    cases = [case for path in sorted(directory.glob("*.yaml")) for case in load_file(path)]
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise ConfigError(f"{directory}: case id {case.id} is used twice")
        seen.add(case.id)
    if pattern:
        cases = [c for c in cases if fnmatch.fnmatchcase(c.id, pattern) or fnmatch.fnmatchcase(c.group, pattern)]
    return cases
