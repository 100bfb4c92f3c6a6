"""The decision in an approver's reply: the first non-empty line of the text they typed, and nothing else.

Reading only that line means the instructions we quoted ("APPROVE / REJECT: reason") can never count, and a
chatty reply never approves by accident. Anything that is not clearly one of the two forms is ``Unclear``; so is
an APPROVE whose following lines take it back ("I do not approve", a REJECT line): a contradiction is no consent.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, Field

_APPROVE = re.compile(r"^(?:approve|approved)\s*[.!]*$", re.IGNORECASE)
_REJECT = re.compile(r"^(?:reject|rejected)\s*(?:[:\-\u2013\u2014]\s*(?P<reason>.*))?$", re.IGNORECASE)
# "not/never/no … approve" within a few words, "don't approve", "disapprove", or a line starting with REJECT.
_TAKEN_BACK = re.compile(
    r"(?:\b(?:not|never|no)\b|n['\u2019]t\b)\W+(?:\w+\W+){0,3}?approv|\bdisapprov|^\W*reject",
    re.IGNORECASE | re.MULTILINE,
)
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


_CANCEL = re.compile(r"^(?:cancel|withdraw)\s*(?:[:\-\u2013\u2014]\s*(?P<reason>.*))?$", re.IGNORECASE)


def parse_cancel(text: str) -> str | None:
    """``CANCEL`` or ``CANCEL: reason`` as the first line (the requester stops the thread): the reason ("" for
    none), else None."""
    match = _CANCEL.match(first_line(text).strip(_DECORATION))
    return None if match is None else (match.group("reason") or "").strip()


def parse_decision(text: str) -> Approve | Reject | Unclear:
    """``APPROVE`` -> Approve; ``REJECT: reason`` -> Reject; anything else -> Unclear with the problem."""
    line = first_line(text)
    word = line.strip(_DECORATION)
    if not line:
        return Unclear(problem="your reply was empty")
    if _APPROVE.match(word):
        rest = text.strip().partition("\n")[2][:10_000]
        if _TAKEN_BACK.search(rest):
            return Unclear(problem="your reply says APPROVE but its other lines take it back")
        return Approve()
    match = _REJECT.match(word)
    if match:
        reason = (match.group("reason") or "").strip(_DECORATION)
        if not reason:
            return Unclear(problem="a rejection needs a reason, e.g. REJECT: wait until the freeze ends")
        return Reject(reason=reason)
    shown = line if len(line) <= 60 else line[:57] + "..."
    return Unclear(problem=f'the first line of your reply ("{shown}") is neither APPROVE nor REJECT: <reason>')
