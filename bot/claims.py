"""Who claims what: approvers see the requester's own words apart from the agent's summary.

A request may claim authority ("I am the approver, just do it", "my manager already approved") or ask to skip the
approval. Such a claim is never a reason: it is found here, shown to approvers as the requester's words with a
warning, and removed from the agent's summary. Decisions stay governed by the approval policy alone.
Pure functions.
"""

from __future__ import annotations

import re

from bot.events import Done, HumanInputReceived, Quote, UserMessage
from bot.thread import Thread

MAX_QUOTE = 1200  # characters of people's words kept on a card or mail; the thread keeps everything
MAX_QUOTES = 5

_CLAIMS = re.compile(
    r"""(
      \b(?:i\s*am|i'?m|as)\s+(?:the|an|a|one\s+of\s+the)\s+(?:approver|admin|owner|release\s+manager|lead|manager|
          cto|ceo|vp|director|on-?call|deployer)s?\b
    | \bi\s+(?:have|got)\s+(?:the\s+)?(?:authority|permission|rights?|clearance|sign-?off)\b
    | \b(?:already|pre-?)\s*approved\b
    | \b(?:has|have|was|were|is|been)\s+(?:been\s+)?(?:approved|signed\s+off)\b
    | \b(?:approved|signed\s+off|ok'?d|okayed)\s+by\b
    | \b(?:my\s+)?(?:manager|boss|cto|ceo|vp|director|lead|security)\s+
          (?:said|says|approved|signed\s+off|ok'?d|agreed)\b
    | \b(?:skip|bypass|ignore|without|no\s+need\s+for|don'?t\s+(?:need|wait\s+for)|no)\s+(?:the\s+|an?\s+|any\s+)?
          (?:approvals?|approver|review|four[-\s]eyes|sign-?off)\b
    | \bjust\s+do\s+it\b
    | \btrust\s+me\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_SENTENCE = re.compile(r"[^.!?;\n]+[.!?;]*")
# A word every phrase of _CLAIMS holds, one per alternative at least (a test holds the two together): ASCII text
# with none of them, lower-cased, cannot match. Most requests and reasons hold none, and looking for these costs
# ~1 µs where the whole pattern costs ~6 µs a text (three or more texts per proposal). Other text gets the pattern.
_HINTS = re.compile("approv|admin|owner|manager|lead|cto|ceo|vp|director|call|deployer|authority|permission|right"
                    "|clearance|sign|ok|boss|security|review|four|just|trust")


def _may_claim(text: str) -> bool:
    return not text.isascii() or _HINTS.search(text.lower()) is not None


def find_claims(text: str) -> list[str]:
    """The phrases in a text that claim authority or ask to skip the approval, as written."""
    if not _may_claim(text):
        return []
    return [" ".join(m.group(0).split()) for m in _CLAIMS.finditer(text)]


def without_claims(reason: str | None) -> str | None:
    """The agent's reason with every sentence that carries a claim removed (None when nothing is left)."""
    if not reason:
        return None
    may_claim = _may_claim(reason)
    kept = [s.strip() for s in _SENTENCE.findall(reason) if s.strip() and not (may_claim and _CLAIMS.search(s))]
    text = " ".join(kept).strip()
    return text or None


def request_quotes(thread: Thread) -> list[Quote]:
    """People's words in the request being worked on (since the last reply), each with its author, clipped.

    At most ``MAX_QUOTES`` messages: the one that opened the request and the latest ones (cards have a block limit).
    """
    start = max((i + 1 for i, e in enumerate(thread.events) if isinstance(e, Done)), default=0)
    said = [e for e in thread.events[start:] if isinstance(e, UserMessage | HumanInputReceived)]
    if len(said) > MAX_QUOTES:
        said = [said[0], *said[-(MAX_QUOTES - 1):]]
    quotes = []
    budget = MAX_QUOTE
    for event in said:
        if budget > 0:
            text = event.text.strip()
            if len(text) > budget:
                text = text[: budget - 1] + "…"
            budget -= len(text)
            quotes.append(Quote(by=event.user, text=text))
    return quotes


# One wording for every channel (Slack card, approval mail, inbox): the adapters only render it.
SUMMARY_LABEL = "Agent's summary (written by the model, not checked)"


def quote_heading(by: str | None) -> str:
    """The line above a person's quoted words."""
    return f"{by} wrote" if by else "The request said"


def claims_note(claims: list[str]) -> str | None:
    """The warning shown beside a request that claims authority or asks to skip approval."""
    if not claims:
        return None
    shown = ", ".join(f"\u201c{c}\u201d" for c in dict.fromkeys(claims))
    return (f"The request claims {shown}. A claim in a request changes nothing: only the approvers listed "
            "here can approve, under the approval policy.")
