"""Grounded arguments (factor 8): a value nobody gave must not reach an approver or a tool.

An action's fields declare where their values must come from (``Grounded`` in ``bot/actions.py``). Before the
policy gate, each declared value is looked for in its sources: what people said in the thread, what tools
returned, the facts the agent pre-fetched. Matching is by whole token after normalizing case, quotes and a
leading ``v`` on versions, so ``V1.2.3`` is grounded by "1.2.3" but ``1.2`` is not grounded by "1.2.3" and
``web`` is not grounded by "web-frontend". Pure functions; the engine records what failed and asks the person.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.actions import Action, Grounded, GroundSource, grounded_fields
from bot.events import ActionResult, ApprovalDecided, ContextFetched, HumanInputReceived, UserMessage
from bot.thread import Thread

# A token is a run of characters that can appear inside an identifier or a version; everything else separates.
_TOKEN = re.compile(r"[a-z0-9][a-z0-9._+\-/:@]*")
_QUOTES = "\"'`“”‘’«»"
_PARTS = re.compile(r"[@:/]")


def normalize(value: str) -> str:
    """Lower case, no surrounding quotes or sentence punctuation, no leading ``v`` before a digit."""
    text, previous = value.strip().lower(), None
    while text != previous:  # quotes and punctuation nest: "'1.4.2'." -> 1.4.2
        previous = text
        text = text.strip().strip(_QUOTES).rstrip(".,;:!?)").lstrip("(")
    if len(text) > 1 and text[0] == "v" and text[1].isdigit():
        text = text[1:]
    return text


def _without_v(text: str) -> str:
    return text[1:] if len(text) > 1 and text[0] == "v" and text[1].isdigit() else text


def tokens(text: str) -> set[str]:
    """The normalized tokens of a text (each also without a trailing dot, as at a sentence's end).

    The same as ``normalize`` on each match, done directly: a match holds no quotes, spaces or brackets, so
    normalizing one only strips trailing separators and a leading ``v`` (every proposal's check runs this).
    """
    found: set[str] = set()
    for raw in _TOKEN.findall(text.lower()):
        token = _without_v(raw.rstrip(".-/:"))
        if token:
            found.add(token)
            if "@" in token or ":" in token or "/" in token:
                # "api@1.4.2", "api:1.4.2", "team/api": each part is a value people gave as well
                found.update(_without_v(part.rstrip(".")) for part in _PARTS.split(token) if part)
    return found


@dataclass(frozen=True)
class Evidence:
    """The tokens each source offers, read from a thread (and the agent's pre-fetched facts)."""

    said: frozenset[str] = frozenset()
    tool_result: frozenset[str] = frozenset()
    context: frozenset[str] = frozenset()

    @classmethod
    def from_texts(
        cls, said: Iterable[str] = (), tool_results: Iterable[str] = (), context: Iterable[str] = ()
    ) -> Evidence:
        """Evidence from plain texts (tests, eval cases)."""
        return cls(*(frozenset().union(*(tokens(t) for t in texts)) for texts in (said, tool_results, context)))

    @classmethod
    def from_thread(cls, thread: Thread, context: Sequence[str] = ()) -> Evidence:
        """People's messages and answers, approvers' comments, tool results; plus the agent's facts and what it
        fetched before its first model call (an alert's labels, recent deploys)."""
        said: list[str] = []
        results: list[str] = []
        fetched: list[str] = []
        for event in thread.events:
            if isinstance(event, UserMessage | HumanInputReceived):
                said.append(event.text)
            elif isinstance(event, ApprovalDecided) and event.comment:
                said.append(event.comment)
            elif isinstance(event, ActionResult) and event.ok:
                results.append(event.result)
            elif isinstance(event, ContextFetched) and event.ok:
                fetched.append(event.text)
        return cls.from_texts(said, results, [*context, *fetched])

    def offers(self, source: GroundSource) -> frozenset[str]:
        """The tokens one source offers."""
        return {"said": self.said, "tool_result": self.tool_result, "context": self.context}[source]


@dataclass(frozen=True)
class Ungrounded:
    """One field whose value no allowed source gave, and why."""

    field: str
    value: Any
    why: str


@dataclass(frozen=True)
class GroundingCheck:
    """The result of checking one proposal: the fields that failed (empty: all grounded)."""

    missing: list[Ungrounded] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every grounded field was found in its sources."""
        return not self.missing


@dataclass(frozen=True)
class _RuleWords:
    """A rule's declared words, normalized: alias words by their canonical value, and the not-answers."""

    aliases: dict[str, frozenset[str]]
    not_answers: frozenset[str]


_RULE_WORDS: dict[int, tuple[Grounded, _RuleWords]] = {}


def _rule_words(rule: Grounded) -> _RuleWords:
    # Normalized once per rule, not on every check (rules are declared once, on action classes; a rule is not
    # hashable, its aliases being a mapping, so it is keyed by identity and kept alive with its entry).
    entry = _RULE_WORDS.get(id(rule))
    if entry is None or entry[0] is not rule:
        aliases: dict[str, set[str]] = {}
        for canonical, said in rule.aliases.items():
            aliases.setdefault(normalize(canonical), set()).update(normalize(w) for w in said)
        normalized = _RuleWords({k: frozenset(v) for k, v in aliases.items()},
                                frozenset(normalize(w) for w in rule.not_answers))
        entry = _RULE_WORDS[id(rule)] = (rule, normalized)
    return entry[1]


def spellings(value: str, rule: Grounded) -> set[str]:
    """The normalized forms that ground ``value`` (or name it, as an option): itself and its declared aliases."""
    form = normalize(value)
    return {form, *_rule_words(rule).aliases.get(form, ())}


def names_none(value: str, rule: Grounded) -> bool:
    """Whether ``value`` is one of the rule's words that look like a value but name none (``latest``)."""
    return normalize(value) in _rule_words(rule).not_answers


def check_field(name: str, value: Any, rule: Grounded, evidence: Evidence) -> Ungrounded | None:
    """None when the value is grounded in one of the rule's sources, else what is wrong."""
    if value is None:
        return None  # an optional field left out is not an invented value
    text = str(value)
    forms = spellings(text, rule)
    if names_none(text, rule):
        return Ungrounded(name, value, f"{text!r} does not name a specific {name}")
    # A multi-word value (rare for identifiers) must have all its words in one source.
    for source in sorted(rule.sources):
        offered = evidence.offers(source)
        for form in forms:
            words = tokens(form) or {form}
            if words <= offered:
                return None
    sources = " or ".join({"said": "what people said", "tool_result": "a tool result",
                           "context": "the agent's context"}[s] for s in sorted(rule.sources))
    return Ungrounded(name, value, f"{name}={text} is not in {sources}")


def check(action: Action, evidence: Evidence) -> GroundingCheck:
    """Check every grounded field of a proposed action against the evidence."""
    missing = []
    for name, rule in grounded_fields(type(action)).items():
        problem = check_field(name, getattr(action, name), rule, evidence)
        if problem is not None:
            missing.append(problem)
    return GroundingCheck(missing)


def choices(action: type[Action], name: str) -> list[str]:
    """The values an enumerated field allows (a ``Literal``), else an empty list."""
    return list(_choices(action, name))


@functools.cache
def _choices(action: type[Action], name: str) -> tuple[str, ...]:
    # Building the JSON schema costs ~0.6 ms and an action's fields never change: once per (action, field).
    schema = action.model_json_schema().get("properties", {}).get(name, {})
    return tuple(str(v) for v in schema.get("enum", []))


def question(action: Action, result: GroundingCheck) -> str:
    """One question to the requester naming every missing field, using the values that are grounded."""
    missing = {m.field for m in result.missing}
    known = {k: str(v) for k, v in action.model_dump(exclude_none=True).items() if k not in missing}
    rules = grounded_fields(type(action))
    asks = []
    for item in result.missing:
        rule = rules[item.field]
        options = choices(type(action), item.field)
        generic = f"Which {item.field}" + (f" ({' or '.join(options)})" if options else "") + "?"
        try:
            ask = rule.ask.format_map(known) if rule.ask else generic
        except KeyError:  # the template names a field that is itself missing
            ask = generic
        if options and rule.ask and not any(c in ask for c in options):
            ask = ask.rstrip("?") + f" ({' or '.join(options)})?"
        asks.append(ask)
    notes = [f"{m.value!r} is not a specific {m.field}" for m in result.missing
             if names_none(str(m.value), rules[m.field])]
    text = " ".join(asks)
    if notes:
        text += f" ({'; '.join(notes)}: please name one.)"
    return text
