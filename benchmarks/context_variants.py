"""What-if renderings for the context benchmark: opsgate's ``render_event`` blocks with proposed changes applied.

These are NOT what opsgate sends; they size proposals for bot/context.py. Each variant adds one change to the
previous: drop closing tags; drop the short ids; hide an approval request once it is decided; cut results of
earlier requests to their first and last line; finally keep only what people said and the replies for earlier
requests (the mechanics of finished work dropped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.context import INSTRUCTIONS, render_event
from bot.events import (
    ActionResult,
    ApprovalDecided,
    ApprovalRequested,
    Done,
    ErrorEvent,
    HumanInputReceived,
    HumanInputRequested,
    UserMessage,
)
from bot.thread import Thread

_IDS = re.compile(r' (?:id|action)="[0-9a-f]{8}"')


@dataclass(frozen=True)
class Variant:
    closing: bool = True
    ids: bool = True
    decided_requests: bool = True
    old_results: bool = True
    old_mechanics: bool = True


VARIANTS = {
    "no closing tags": Variant(closing=False),
    "+ no short ids": Variant(closing=False, ids=False),
    "+ decided approval requests hidden": Variant(closing=False, ids=False, decided_requests=False),
    "+ earlier results cut to first/last line": Variant(closing=False, ids=False, decided_requests=False,
                                                         old_results=False),
    "+ earlier requests: only words and replies": Variant(closing=False, ids=False, decided_requests=False,
                                                           old_results=False, old_mechanics=False),
}
_SAID = (UserMessage, HumanInputReceived, HumanInputRequested, Done)


def render(thread: Thread, variant: Variant) -> list[dict[str, Any]]:
    """The user message opsgate would send with ``variant`` applied (same instructions and framing)."""
    hidden = thread.resolved_error_ids
    decided = {e.approval_id for e in thread.events if isinstance(e, ApprovalDecided)}
    starts = [i for i, e in enumerate(thread.events) if isinstance(e, UserMessage)]
    current = starts[-1] if starts else 0
    blocks = []
    for index, event in enumerate(thread.events):
        earlier = index < current
        if event.id in hidden or (isinstance(event, ErrorEvent) and event.kind == "delivery"):
            continue
        if not variant.decided_requests and isinstance(event, ApprovalRequested) and event.approval_id in decided:
            continue
        if not variant.old_mechanics and earlier and not isinstance(event, _SAID):
            continue
        block = render_event(event)
        if block is None:
            continue
        if not variant.ids:
            block = _IDS.sub("", block)
        lines = block.split("\n")
        if not variant.old_results and earlier and isinstance(event, ActionResult) and len(lines) > 4:
            lines = [lines[0], lines[1], f"… {len(lines) - 4} more lines", lines[-2], lines[-1]]
        if not variant.closing and len(lines) > 1 and lines[-1].startswith("</"):
            lines = lines[:-1]
        blocks.append("\n".join(lines))
    body = "\n\n".join(blocks)
    return [{"role": "user", "content": f"{INSTRUCTIONS}\n\n{body}\n\nWhat is the next step?"}]
