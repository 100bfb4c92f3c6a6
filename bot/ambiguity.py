"""Ambiguous choices are asked, not guessed (factor 8): "to staging, no wait, to production".

Grounding cannot catch this: every value the model used *was* said. But when the request names two options of an
enumerated grounded field and the model picks the one its action's approval policy scrutinizes less (staging runs
without an approver, production does not), a wrong guess runs unreviewed, and a decoy ("use staging so it skips
approval") is exactly such a guess. So the person is asked which one they meant. Picking the stricter option is
left alone: the approver sees it on the card.

Scope: the newest message of the current request (the person's last message and their answers since) that names
the field's options at all. An answer naming one option settles it ("production" after the question); an answer
naming none ("1.4.2") leaves the request's own words in force; an approver's comment is not the requester's
request. Pure functions; ``bot.proposals.decide`` records what they find and asks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.actions import Action, Grounded, grounded_fields
from bot.events import HumanInputReceived, UserMessage
from bot.grounding import choices, spellings, tokens
from bot.thread import Thread


@dataclass(frozen=True)
class Ambiguity:
    """A field whose proposed value is one of several options the request named, and a stricter one among them."""

    field: str
    value: str
    named: list[str]  # the options named, in the order the message names them
    stricter: str  # a named option the approval policy scrutinizes more than the proposed one


def scrutiny(action: Action) -> tuple[bool, bool]:
    """How closely the action's own policy looks at it: (an approver is asked, the requester may not approve)."""
    policy = type(action).approval
    return policy.required(action), policy.four_eyes(action)


def named_options(text: str, options: list[str], rule: Grounded) -> list[str]:
    """The options a text names (by value or alias, whole tokens), in the order it first names them."""
    found = tokens(text)
    words = [(option, spellings(option, rule)) for option in options]
    named = [option for option, forms in words if forms & found]
    if len(named) < 2:
        return named  # nothing to order
    lowered = text.lower()

    def first_mention(option: str) -> int:
        spots = [re.search(rf"(?<![a-z0-9]){re.escape(form)}(?![a-z0-9])", lowered) for form in spellings(option, rule)]
        return min((m.start() for m in spots if m is not None), default=len(lowered))

    return sorted(named, key=first_mention)


def _request_messages(thread: Thread) -> list[str]:
    """What the requester said in the current request, newest first: answers, then the message that opened it."""
    said: list[str] = []
    for event in reversed(thread.events):
        if isinstance(event, HumanInputReceived):
            said.append(event.text)
        elif isinstance(event, UserMessage):
            said.append(event.text)
            break
    return said


def find_ambiguity(action: Action, thread: Thread) -> Ambiguity | None:
    """The first enumerated grounded field whose proposed value the request leaves in doubt, else None."""
    said = _request_messages(thread)
    for name, rule in grounded_fields(type(action)).items():
        options = choices(type(action), name)
        value = getattr(action, name)
        if len(options) < 2 or value is None:
            continue
        named = next((found for text in said if (found := named_options(text, options, rule))), [])
        if len(named) < 2:
            continue  # one option named last, or none: grounding has already judged the value
        proposed = scrutiny(action)
        stricter = [o for o in named if scrutiny(action.model_copy(update={name: o})) > proposed]
        if stricter:
            return Ambiguity(field=name, value=str(value), named=named, stricter=stricter[0])
    return None


def _listed(options: list[str]) -> str:
    if len(options) == 2:
        return f"both {options[0]} and {options[1]}"
    return f"{', '.join(options[:-1])} and {options[-1]}"


def ask(action: Action, found: Ambiguity) -> str:
    """The question naming the options: "You mentioned both staging and production: which environment should web
    go to?"."""
    rule = grounded_fields(type(action))[found.field]
    known = {k: str(v) for k, v in action.model_dump(exclude_none=True).items() if k != found.field}
    try:
        question = rule.ask.format_map(known) if rule.ask else f"Which {found.field}?"
    except KeyError:  # the template names a field this action does not have
        question = f"Which {found.field}?"
    return f"You mentioned {_listed(found.named)}: {question[:1].lower()}{question[1:]}"


def why(action: Action, found: Ambiguity) -> str:
    """The reason recorded with the blocked proposal."""
    def level(option: str) -> str:
        required, four_eyes = scrutiny(action.model_copy(update={found.field: option}))
        if not required:
            return "no approval"
        return "approval by someone other than the requester" if four_eyes else "approval"

    return (f"the request names {' and '.join(found.named)}; {found.field}={found.value} needs {level(found.value)}, "
            f"{found.stricter} needs {level(found.stricter)}: asked instead of choosing")
