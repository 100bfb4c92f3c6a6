"""Block Kit for opsgate: the approval card, the decided card, the reject and edit modals. Pure functions.

Blocks are Slack's wire format (JSON objects), so they are built as dicts here and nowhere else. Text that
came from people or the model is escaped (&, <, >) so it can never turn into a mention or a link.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from bot.claims import SUMMARY_LABEL, claims_note, quote_heading
from bot.events import ApprovalDecided, ApprovalRequested
from channels.slack.slack_payloads import CardRef, EditField

Block = dict[str, Any]

APPROVE = "opsgate_approve"
REJECT = "opsgate_reject"
EDIT = "opsgate_edit"
REJECT_MODAL = "opsgate_reject"
EDIT_MODAL = "opsgate_edit"
REASON_BLOCK = "reason"
REASON_INPUT = "reason"
EDIT_INPUT = "value"

_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_MAX_FIELDS = 10  # Slack's limit of fields in one section
_MAX_TEXT = 2900  # section text limit is 3000


def escape(text: str) -> str:
    """Slack's three control characters, escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def who(identity: str) -> str:
    """``<@U123>`` for a Slack user id (Slack renders the name), the escaped identity otherwise."""
    return f"<@{identity}>" if _SLACK_ID.match(identity) else escape(identity)


def when(at: datetime) -> str:
    """A Slack date token: shown in each reader's own time zone, with the ISO time as fallback."""
    fallback = at.isoformat(timespec="seconds")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def clip(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def show_value(value: Any) -> str:
    """An argument value as people read it: strings bare, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def summary(name: str, arguments: dict[str, Any]) -> str:
    """``deploy service=api version=1.2.3`` for notifications and modal texts."""
    args = " ".join(f"{k}={show_value(v)}" for k, v in arguments.items() if k != "reason")
    return f"{name} {args}".strip()


def _text(text: str) -> Block:
    return {"type": "mrkdwn", "text": clip(text)}


def _plain(text: str, limit: int = 150) -> Block:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def _section(text: str) -> Block:
    return {"type": "section", "text": _text(text)}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [_text(text)]}


def _button(action_id: str, label: str, value: str, style: str | None = None) -> Block:
    button: Block = {"type": "button", "action_id": action_id, "text": _plain(label), "value": value}
    if style:
        button["style"] = style
    return button


def _argument_blocks(arguments: dict[str, Any]) -> list[Block]:
    shown = [(k, v) for k, v in arguments.items() if k != "reason"]
    if not shown:
        return [_section("_no arguments_")]
    fields = [_text(f"*{escape(k)}*\n{escape(clip(show_value(v), 1900))}") for k, v in shown[:_MAX_FIELDS]]
    blocks: list[Block] = [{"type": "section", "fields": fields}]
    if len(shown) > _MAX_FIELDS:
        rest = "\n".join(f"*{escape(k)}*: {escape(show_value(v))}" for k, v in shown[_MAX_FIELDS:])
        blocks.append(_section(rest))
    return blocks


def _reason(request: ApprovalRequested) -> str | None:
    reason = str(request.reason or request.arguments.get("reason") or "").strip()
    return reason or None


def _who_claims_what(request: ApprovalRequested) -> list[Block]:
    """People's own words quoted and attributed, apart from the agent's labelled summary; claims flagged."""
    blocks: list[Block] = []
    for quote in request.quotes:
        heading = quote_heading(who(quote.by) if quote.by else None)
        quoted = "\n".join(f">{line}" for line in escape(clip(quote.text, 1200)).splitlines() or [""])
        blocks.append(_section(f"*{heading}:*\n{quoted}"))
    reason = _reason(request)
    if reason:
        blocks.append(_section(f"*{SUMMARY_LABEL}:* {escape(reason)}"))
    note = claims_note(request.claims)
    if note:
        blocks.append(_context(f":warning: {escape(note)}"))
    return blocks


def approvers_line(request: ApprovalRequested) -> str:
    """Who may decide, as the card says it."""
    if not request.approvers:
        return "No approvers are configured: decide from the opsgate web inbox, CLI or API."
    names = ", ".join(who(a) for a in request.approvers)
    group = f" (group *{escape(request.group)}*)" if request.group else ""
    line = f"Can approve{group}: {names}"
    if request.four_eyes and request.requester:
        line += f". Four-eyes: {who(request.requester)} asked and cannot approve it."
    return line


def _head_blocks(request: ApprovalRequested, title: str) -> list[Block]:
    blocks: list[Block] = [{"type": "header", "text": _plain(title)}]
    blocks.extend(_argument_blocks(request.arguments))
    blocks.extend(_who_claims_what(request))
    requested = f"Requested by {who(request.requester)}" if request.requester else "Requested"
    blocks.append(_context(f"{requested} · {when(request.at)}"))
    return blocks


def approval_card(
    thread_id: str, request: ApprovalRequested, *, editable: bool = True
) -> tuple[str, list[Block]]:
    """Notification text and blocks of the card asking for a decision, with Approve/Reject(/Edit) buttons."""
    value = CardRef(thread_id=thread_id, approval_id=request.approval_id).to_value()
    buttons = [_button(APPROVE, "Approve", value, "primary"), _button(REJECT, "Reject", value, "danger")]
    if editable and any(k != "reason" for k in request.arguments):
        buttons.append(_button(EDIT, "Edit", value))
    blocks = _head_blocks(request, f"Approval needed: {request.name}")
    blocks.append(_context(approvers_line(request)))
    blocks.append({"type": "actions", "block_id": f"decide_{request.approval_id}", "elements": buttons})
    text = f"Approval needed: {summary(request.name, request.arguments)}"
    return clip(text), blocks


def decided_card(request: ApprovalRequested, decision: ApprovalDecided) -> tuple[str, list[Block]]:
    """The card after a decision: buttons gone, who decided, when, and the reason or the edits."""
    arguments = decision.arguments if decision.arguments is not None else request.arguments
    edited = request.model_copy(update={"arguments": arguments})
    verb = "Approved" if decision.approved else "Rejected"
    icon = ":white_check_mark:" if decision.approved else ":no_entry:"
    blocks = _head_blocks(edited, f"{verb}: {request.name}")
    line = f"{icon} *{verb}* by {who(decision.by)} at {when(decision.at)}"
    if decision.comment:
        line += f": {escape(decision.comment)}"
    blocks.append(_section(line))
    if decision.changes:
        changes = "\n".join(
            f"• *{escape(c.field)}*: {escape(show_value(c.old))} → {escape(show_value(c.new))}"
            for c in decision.changes
        )
        blocks.append(_section(f"Edited before approval:\n{changes}"))
    text = f"{verb} by {decision.by}: {summary(request.name, arguments)}"
    return clip(text), blocks


# --- modals -------------------------------------------------------------------------------------------------


def _modal(callback_id: str, title: str, submit: str, ref: CardRef, blocks: list[Block]) -> Block:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": _plain(title, 24),
        "submit": _plain(submit, 24),
        "close": _plain("Cancel", 24),
        "private_metadata": ref.to_value(),
        "blocks": blocks,
    }


def reject_modal(ref: CardRef, name: str, arguments: dict[str, Any]) -> Block:
    """The modal asking why; the reason goes back to the model."""
    blocks: list[Block] = [
        _section(f"Reject *{escape(summary(name, arguments))}*?"),
        {
            "type": "input",
            "block_id": REASON_BLOCK,
            "label": _plain("Reason"),
            "hint": _plain("The agent reads this and may propose something else."),
            "element": {
                "type": "plain_text_input", "action_id": REASON_INPUT, "multiline": True, "max_length": 2000,
                "placeholder": _plain("e.g. not during the release freeze"),
            },
        },
    ]
    return _modal(REJECT_MODAL, f"Reject {name}", "Reject", ref, blocks)


def edit_fields(arguments: dict[str, Any], required: set[str]) -> list[EditField]:
    """The arguments the edit modal offers, remembering which must be read back as JSON."""
    return [
        EditField(name=k, json_value=not isinstance(v, str), required=k in required)
        for k, v in arguments.items() if k != "reason"
    ]


def edit_block_id(name: str) -> str:
    return f"arg_{name}"


def edit_modal(ref: CardRef, name: str, arguments: dict[str, Any]) -> Block:
    """The modal with one input per argument; submitting approves the edited action."""
    blocks: list[Block] = [_section(f"Edit the arguments of *{escape(name)}*, then approve.")]
    for field in ref.fields:
        value = arguments.get(field.name)
        element: Block = {"type": "plain_text_input", "action_id": EDIT_INPUT}
        if value is not None:
            element["initial_value"] = clip(show_value(value), 3000)
        blocks.append({
            "type": "input", "block_id": edit_block_id(field.name), "label": _plain(field.name, 2000),
            "optional": not field.required, "element": element,
            **({"hint": _plain("JSON value")} if field.json_value else {}),
        })
    return _modal(EDIT_MODAL, f"Edit {name}", "Approve", ref, blocks)
