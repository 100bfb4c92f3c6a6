"""The decision in an approver's reply: the first non-empty line of the stripped reply, and nothing else.

Reading only that line means the instructions we quoted ("APPROVE / REJECT: reason") can never count, and a
chatty reply never approves by accident. Anything that is not clearly one of the two forms is ``Unclear``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, Field

_APPROVE = re.compile(r"^(?:approve|approved)\s*[.!]*$", re.IGNORECASE)
_REJECT = re.compile(r"^(?:reject|rejected)\s*(?:[:\-\u2013\u2014]\s*(?P<reason>.*))?$", re.IGNORECASE)
# Outlook and Gmail mobile sometimes decorate the first word ("*APPROVE*", "**APPROVE**").
_DECORATION = "*_ \t"


class Approve(BaseModel):
    kind: Literal["approve"] = "approve"


class Reject(BaseModel):
    kind: Literal["reject"] = "reject"
    reason: str


class Unclear(BaseModel):
    """Not a decision; ``problem`` says what was wrong, for the polite format reply."""

    kind: Literal["unclear"] = "unclear"
    problem: str


Decision = Annotated[Approve | Reject | Unclear, Field(discriminator="kind")]

UNCLEAR = "could not read a decision from your reply"  # starts a refusal reason that gets FORMAT_HELP
FORMAT_HELP = "Reply with one of these as the first line of your email:\n\n  APPROVE\n  REJECT: <your reason>\n"


def first_line(text: str) -> str:
    """The first non-empty line, trimmed."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def parse_decision(text: str) -> Approve | Reject | Unclear:
    """``APPROVE`` -> Approve; ``REJECT: reason`` -> Reject; anything else -> Unclear with the problem."""
    line = first_line(text)
    word = line.strip(_DECORATION)
    if not line:
        return Unclear(problem="your reply was empty")
    if _APPROVE.match(word):
        return Approve()
    match = _REJECT.match(word)
    if match:
        reason = (match.group("reason") or "").strip(_DECORATION)
        if not reason:
            return Unclear(problem="a rejection needs a reason, e.g. REJECT: wait until the freeze ends")
        return Reject(reason=reason)
    shown = line if len(line) <= 60 else line[:57] + "..."
    return Unclear(problem=f'the first line of your reply ("{shown}") is neither APPROVE nor REJECT: <reason>')
