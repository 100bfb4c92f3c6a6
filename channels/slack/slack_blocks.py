"""Block Kit for opsgate: the approval card, the decided card, the reject and edit modals. Pure functions.

Blocks are Slack's wire format (JSON objects), so they are built as dicts here and nowhere else. Text that
came from people or the model is escaped (&, <, >) so it can never turn into a mention or a link, and every
piece is cut to a budget (``limits.fit``) that keeps the whole message inside Slack's limits: a card shows
at most 10 arguments of ``CARD_VALUE`` characters (the rest in one short section), so its blocks stay under
``limits.BLOCKS_TEXT_TOTAL`` whatever the arguments are. The edit modal offers at most ``MAX_EDIT_FIELDS``
inputs; arguments beyond them, or too long for an input (``limits.INPUT_VALUE``), are named and kept as they are.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.claims import SUMMARY_LABEL, claims_note, quote_heading
from bot.events import ApprovalDecided, ApprovalRequested
from channels.slack import limits
from channels.slack.limits import escape as escape  # re-exported: the one escape every builder uses
from channels.slack.limits import fit, fit_escaped
from channels.slack.slack_payloads import CardRef

Block = dict[str, Any]

APPROVE = "opsgate_approve"
REJECT = "opsgate_reject"
EDIT = "opsgate_edit"
WITHDRAW = "opsgate_withdraw"  # the requester takes the request back (authorized on click: service.cancel)
REJECT_MODAL = "opsgate_reject"
EDIT_MODAL = "opsgate_edit"
REASON_BLOCK = "reason"
REASON_INPUT = "reason"
EDIT_INPUT = "value"

MAX_EDIT_FIELDS = 10  # inputs in the edit modal: keeps its submission far below verify.MAX_BODY_BYTES
CARD_NAME = 100  # an argument's name on the card
CARD_VALUE = 400  # an argument's value on the card (10 of them: 5,000 characters at most)
CARD_SECTION = 800  # the overflow arguments, the reason, the decision line, the edits
CARD_LINE = 800  # who asked / who may approve
IDENTITY = 200  # a person's identity when it is not a Slack user id
FALLBACK = 1000  # the notification text of a card
LABEL = 200  # an argument's name as an input label

_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def who(identity: str) -> str:
    """``<@U123>`` for a Slack user id (Slack renders the name), the escaped identity otherwise."""
    if _SLACK_ID.match(identity) and len(identity) <= 32:
        return f"<@{identity}>"
    return fit_escaped(identity, IDENTITY)


def when(at: datetime) -> str:
    """A Slack date token: shown in each reader's own time zone, with the ISO time as fallback."""
    fallback = at.isoformat(timespec="seconds")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def show_value(value: Any) -> str:
    """An argument value as people read it: strings bare, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def summary(name: str, arguments: dict[str, Any]) -> str:
    """``deploy service=api version=1.2.3`` for notifications and modal texts (not escaped, not cut)."""
    args = " ".join(f"{k}={show_value(v)}" for k, v in arguments.items() if k != "reason")
    return f"{name} {args}".strip()


def _text(text: str, limit: int = limits.SECTION_TEXT) -> Block:
    return {"type": "mrkdwn", "text": fit(text, limit)}


def _plain(text: str, limit: int) -> Block:
    return {"type": "plain_text", "text": fit(text, limit) or "-", "emoji": True}


def _section(text: str, limit: int = CARD_SECTION) -> Block:
    return {"type": "section", "text": _text(text, limit)}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [_text(text, CARD_LINE)]}


def _button(action_id: str, label: str, value: str, style: str | None = None) -> Block:
    button: Block = {"type": "button", "action_id": action_id, "text": _plain(label, limits.BUTTON_TEXT),
                     "value": value}
    if style:
        button["style"] = style
    return button


def _argument_blocks(arguments: dict[str, Any]) -> list[Block]:
    shown = [(k, v) for k, v in arguments.items() if k != "reason"]
    if not shown:
        return [_section("_no arguments_")]
    fields = [
        _text(f"*{fit_escaped(k, CARD_NAME)}*\n{fit_escaped(show_value(v), CARD_VALUE)}", limits.FIELD_TEXT)
        for k, v in shown[:limits.SECTION_FIELDS]
    ]
    blocks: list[Block] = [{"type": "section", "fields": fields}]
    if len(shown) > limits.SECTION_FIELDS:
        rest = "\n".join(f"*{fit_escaped(k, CARD_NAME)}*: {fit_escaped(show_value(v), CARD_NAME)}"
                         for k, v in shown[limits.SECTION_FIELDS:limits.SECTION_FIELDS + 50])
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
        quoted = "\n".join(f">{line}" for line in fit_escaped(quote.text, 1200).splitlines() or [""])
        blocks.append(_section(f"*{heading}:*\n{quoted}"))
    reason = _reason(request)
    if reason:
        blocks.append(_section(f"*{SUMMARY_LABEL}:* {fit_escaped(reason, CARD_SECTION)}"))
    note = claims_note(request.claims)
    if note:
        blocks.append(_context(f":warning: {fit_escaped(note, CARD_SECTION)}"))
    return blocks


def approvers_line(request: ApprovalRequested) -> str:
    """Who may decide, as the card says it."""
    if not request.approvers:
        return "No approvers are configured: decide from the opsgate web inbox, CLI or API."
    names = ", ".join(who(a) for a in request.approvers[:50])
    group = f" (group *{fit_escaped(request.group, CARD_NAME)}*)" if request.group else ""
    line = f"Can approve{group}: {names}"
    if request.four_eyes and request.requester:
        line += f". Four-eyes: {who(request.requester)} asked and cannot approve it."
    return line


def _head_blocks(request: ApprovalRequested, title: str) -> list[Block]:
    blocks: list[Block] = [{"type": "header", "text": _plain(title, limits.HEADER_TEXT)}]
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
    buttons.append(_button(WITHDRAW, "Withdraw", value))
    blocks = _head_blocks(request, f"Approval needed: {request.name}")
    blocks.append(_context(approvers_line(request)))
    if request.expires_at is not None:
        blocks.append(_context(f":hourglass: Expires {when(request.expires_at)} if nobody decides: then it is "
                               "rejected."))
    blocks.append({"type": "actions", "block_id": limits.stable_id("decide_", request.approval_id),
                   "elements": buttons})
    text = fit_escaped(f"Approval needed: {request.summary or summary(request.name, request.arguments)}", FALLBACK)
    return text, blocks


_CLOSED = {"decision": ("Rejected", ":no_entry:"), "expiry": ("Expired", ":hourglass:"),
           "withdrawal": ("Withdrawn", ":leftwards_arrow_with_hook:")}


def decided_card(request: ApprovalRequested, decision: ApprovalDecided) -> tuple[str, list[Block]]:
    """The card after a decision: buttons gone, who decided, when, and the reason or the edits."""
    arguments = decision.arguments if decision.arguments is not None else request.arguments
    edited = request.model_copy(update={"arguments": arguments})
    verb, icon = ("Approved", ":white_check_mark:") if decision.approved else _CLOSED[decision.closed_by]
    blocks = _head_blocks(edited, f"{verb}: {request.name}")
    line = f"{icon} *{verb}* by {who(decision.by)} at {when(decision.at)}"
    if decision.comment:
        line += f": {fit_escaped(decision.comment, CARD_SECTION)}"
    blocks.append(_section(line))
    if decision.changes:
        changes = "\n".join(
            f"• *{fit_escaped(c.field, CARD_NAME)}*: {fit_escaped(show_value(c.old), CARD_NAME)} → "
            f"{fit_escaped(show_value(c.new), CARD_NAME)}"
            for c in decision.changes[:50]
        )
        blocks.append(_section(f"Edited before approval:\n{changes}"))
    text = fit_escaped(f"{verb} by {decision.by}: {summary(request.name, arguments)}", FALLBACK)
    return text, blocks


# --- modals -------------------------------------------------------------------------------------------------


def _modal(callback_id: str, title: str, submit: str, ref: CardRef, blocks: list[Block]) -> Block:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": _plain(title, limits.MODAL_TITLE),
        "submit": _plain(submit, limits.MODAL_BUTTON),
        "close": _plain("Cancel", limits.MODAL_BUTTON),
        "private_metadata": ref.to_value(),
        "blocks": blocks,
    }


def reject_modal(ref: CardRef, name: str, arguments: dict[str, Any]) -> Block:
    """The modal asking why; the reason goes back to the model."""
    blocks: list[Block] = [
        _section(f"Reject *{fit_escaped(summary(name, arguments), 2800)}*?", limits.SECTION_TEXT),
        {
            "type": "input",
            "block_id": REASON_BLOCK,
            "label": _plain("Reason", limits.INPUT_LABEL),
            "hint": _plain("The agent reads this and may propose something else.", limits.INPUT_HINT),
            "element": {
                "type": "plain_text_input", "action_id": REASON_INPUT, "multiline": True, "max_length": 2000,
                "placeholder": _plain("e.g. not during the release freeze", limits.PLACEHOLDER),
            },
        },
    ]
    return _modal(REJECT_MODAL, f"Reject {name}", "Reject", ref, blocks)


@dataclass(frozen=True)
class EditField:
    """One argument offered in the edit modal; ``json_value`` when it is not a string (numbers, lists)."""

    name: str
    json_value: bool = False
    required: bool = True


@dataclass(frozen=True)
class EditPlan:
    """What the edit modal offers: ``fields`` as inputs (block ``arg_<index>``), ``kept`` unchanged."""

    fields: list[EditField]
    kept: list[str]


def edit_plan(arguments: dict[str, Any], required: set[str]) -> EditPlan:
    """The first ``MAX_EDIT_FIELDS`` arguments whose value fits an input; the others are kept as they are.

    A pure function of the approval's arguments and the action's schema, so the modal and its submission
    (which only carries the approval's id) always agree on which input is which argument.
    """
    fields: list[EditField] = []
    kept: list[str] = []
    for name, value in arguments.items():
        if name == "reason":
            continue
        if len(fields) < MAX_EDIT_FIELDS and limits.length(show_value(value)) <= limits.INPUT_VALUE:
            fields.append(EditField(name=name, json_value=not isinstance(value, str), required=name in required))
        else:
            kept.append(name)
    return EditPlan(fields=fields, kept=kept)


def edit_block_id(index: int) -> str:
    """The block id of the ``index``-th input (argument names can be anything, so they are not used)."""
    return f"arg_{index}"


def edit_modal(ref: CardRef, name: str, arguments: dict[str, Any], plan: EditPlan) -> Block:
    """The modal with one input per offered argument; submitting approves the edited action."""
    blocks: list[Block] = [
        _section(f"Edit the arguments of *{fit_escaped(name, CARD_NAME)}*, then approve.", limits.SECTION_TEXT)
    ]
    for index, field in enumerate(plan.fields):
        value = arguments.get(field.name)
        element: Block = {"type": "plain_text_input", "action_id": EDIT_INPUT, "max_length": limits.INPUT_VALUE}
        if value is not None:
            element["initial_value"] = show_value(value)
            if limits.length(element["initial_value"]) > 150 or "\n" in element["initial_value"]:
                element["multiline"] = True
        blocks.append({
            "type": "input", "block_id": edit_block_id(index), "label": _plain(field.name, LABEL),
            "optional": not field.required, "element": element,
            **({"hint": _plain("JSON value", limits.INPUT_HINT)} if field.json_value else {}),
        })
    if plan.kept:
        names = ", ".join(f"*{fit_escaped(k, CARD_NAME)}*" for k in plan.kept[:20])
        more = f" and {len(plan.kept) - 20} more" if len(plan.kept) > 20 else ""
        blocks.append(_section(
            f"Kept as they are (too many or too long to edit here): {names}{more}. "
            "To change them, edit the action in the opsgate web inbox.", limits.SECTION_TEXT))
    return _modal(EDIT_MODAL, f"Edit {name}", "Approve", ref, blocks)
