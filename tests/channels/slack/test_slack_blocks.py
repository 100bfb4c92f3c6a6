"""Block Kit built for approvals: the card, the decided card, the reject and edit modals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.claims import SUMMARY_LABEL
from bot.events import ApprovalDecided, ApprovalRequested, ArgumentChange
from channels.slack.limits import message_problems, modal_problems
from channels.slack.slack_blocks import (
    MAX_EDIT_FIELDS,
    approval_card,
    decided_card,
    edit_modal,
    edit_plan,
    escape,
    reject_modal,
)
from channels.slack.slack_payloads import CardRef

AT = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def request(**overrides: Any) -> ApprovalRequested:
    fields: dict[str, Any] = dict(
        approval_id="ap1", action_id="ac1", name="deploy",
        arguments={"service": "api", "version": "1.4.2", "environment": "production"},
        reason="the fix for the <login> bug", group="deployers", approvers=["UCAROL01", "dave@example.com"],
        requester="UALICE01", four_eyes=True, at=AT,
    )
    return ApprovalRequested(**{**fields, **overrides})


def of_type(blocks: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [b for b in blocks if b["type"] == kind]


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_card_shows_action_arguments_reason_and_approvers() -> None:
    """The card says what, with which arguments, why, who asked and who may approve."""
    text, blocks = approval_card("th1", request())
    assert text == "Approval needed: deploy service=api version=1.4.2 environment=production"
    assert of_type(blocks, "header")[0]["text"]["text"] == "Approval needed: deploy"
    fields = [f["text"] for f in of_type(blocks, "section")[0]["fields"]]
    assert fields == ["*service*\napi", "*version*\n1.4.2", "*environment*\nproduction"]
    body = all_text(blocks)
    assert f"*{SUMMARY_LABEL}:* the fix for the &lt;login&gt; bug" in body  # the model's words cannot become markup
    assert "Requested by <@UALICE01>" in body
    assert "<@UCAROL01>, dave@example.com" in body
    assert "(group *deployers*)" in body
    assert "Four-eyes: <@UALICE01> asked and cannot approve it." in body


def test_card_buttons_are_namespaced_and_carry_the_approval() -> None:
    """Approve/Reject/Edit with opsgate_ action ids; each value names thread and approval, nothing else."""
    _, blocks = approval_card("th1", request())
    actions = of_type(blocks, "actions")
    assert len(actions) == 1
    buttons = actions[0]["elements"]
    assert [b["action_id"] for b in buttons] == [
        "opsgate_approve", "opsgate_reject", "opsgate_edit", "opsgate_withdraw"]
    assert [b.get("style") for b in buttons] == ["primary", "danger", None, None]
    for button in buttons:
        assert CardRef.parse(button["value"]) == CardRef(thread_id="th1", approval_id="ap1")


def test_card_without_arguments_has_no_edit_button() -> None:
    """Nothing to edit, no Edit button; and no approvers configured says where to decide."""
    _, blocks = approval_card("th1", request(arguments={}, approvers=[], group=None, four_eyes=False))
    buttons = of_type(blocks, "actions")[0]["elements"]
    assert [b["action_id"] for b in buttons] == ["opsgate_approve", "opsgate_reject", "opsgate_withdraw"]
    assert "No approvers are configured" in all_text(blocks)


def test_card_respects_slack_limits() -> None:
    """At most 10 fields per section (the rest in a text block); long values are cut and say so."""
    arguments = {f"arg{i}": "x" * 5000 for i in range(12)}
    text, blocks = approval_card("th1", request(arguments=arguments))
    sections = of_type(blocks, "section")
    assert len(sections[0]["fields"]) == 10
    assert all(f["text"].endswith("…(truncated)") for f in sections[0]["fields"])
    assert "arg10" in sections[1]["text"]["text"]
    assert message_problems(text, blocks) == []


def test_approved_card_replaces_buttons_with_who_and_when() -> None:
    """After approval: no buttons, 'Approved by <@U…>' and a Slack date token of the decision time."""
    decision = ApprovalDecided(approval_id="ap1", action_id="ac1", approved=True, by="UCAROL01", at=AT)
    text, blocks = decided_card(request(), decision)
    assert of_type(blocks, "actions") == []
    assert of_type(blocks, "header")[0]["text"]["text"] == "Approved: deploy"
    body = all_text(blocks)
    assert f"*Approved* by <@UCAROL01> at <!date^{int(AT.timestamp())}^" in body
    assert "|2026-11-22T09:30:00+00:00>" in body
    assert text.startswith("Approved by UCAROL01: deploy service=api")


def test_rejected_card_shows_the_reason() -> None:
    """After rejection: 'Rejected by <@U…>' with the reason, escaped."""
    decision = ApprovalDecided(approval_id="ap1", action_id="ac1", approved=False, by="UCAROL01",
                               comment="freeze <until> Monday", at=AT)
    _, blocks = decided_card(request(), decision)
    assert of_type(blocks, "actions") == []
    assert "*Rejected* by <@UCAROL01> at <!date^" in all_text(blocks)
    assert ": freeze &lt;until&gt; Monday" in all_text(blocks)


def test_edited_approval_shows_new_arguments_and_changes() -> None:
    """An approval with edits shows the edited arguments and old -> new."""
    decision = ApprovalDecided(
        approval_id="ap1", action_id="ac1", approved=True, by="UCAROL01", at=AT,
        arguments={"service": "api", "version": "1.4.3", "environment": "production"},
        changes=[ArgumentChange(field="version", old="1.4.2", new="1.4.3")],
    )
    _, blocks = decided_card(request(), decision)
    fields = [f["text"] for f in of_type(blocks, "section")[0]["fields"]]
    assert "*version*\n1.4.3" in fields
    assert "*version*: 1.4.2 → 1.4.3" in all_text(blocks)


def test_reject_modal_asks_for_a_reason_and_remembers_the_approval() -> None:
    """The modal has our callback id, a required reason input and the approval in private_metadata."""
    ref = CardRef(thread_id="th1", approval_id="ap1", channel="C1", message_ts="1.2", thread_ts="1.1")
    view = reject_modal(ref, "a_really_long_action_name_here", {"service": "api"})
    assert view["type"] == "modal" and view["callback_id"] == "opsgate_reject"
    assert len(view["title"]["text"]) <= 24
    assert CardRef.parse(view["private_metadata"]) == ref
    assert len(view["private_metadata"]) <= 3000
    inputs = of_type(view["blocks"], "input")
    assert [(i["block_id"], i["element"]["action_id"]) for i in inputs] == [("reason", "reason")]
    assert "optional" not in inputs[0]  # required: Slack itself refuses an empty submit


def test_edit_modal_has_one_input_per_argument() -> None:
    """Each argument is an input pre-filled with its value; non-strings are marked as JSON."""
    arguments = {"service": "api", "replicas": 3, "reason": "x"}
    ref = CardRef(thread_id="th1", approval_id="ap1")
    plan = edit_plan(arguments, {"service"})
    view = edit_modal(ref, "scale", arguments, plan)
    inputs = of_type(view["blocks"], "input")
    assert [i["block_id"] for i in inputs] == ["arg_0", "arg_1"]
    assert [i["label"]["text"] for i in inputs] == ["service", "replicas"]
    assert [i["element"]["initial_value"] for i in inputs] == ["api", "3"]
    assert [i["optional"] for i in inputs] == [False, True]
    assert [f.json_value for f in plan.fields] == [False, True] and plan.kept == []
    assert CardRef.parse(view["private_metadata"]) == ref


def test_edit_modal_with_too_many_or_too_long_arguments_offers_the_first_ones_and_says_so() -> None:
    """150 arguments: the first 10 are inputs, a too-long value is never cut into an input, the rest are named."""
    arguments: dict[str, Any] = {"huge": "y" * 3001, **{f"a{i}": str(i) for i in range(150)}}
    plan = edit_plan(arguments, set())
    assert [f.name for f in plan.fields] == [f"a{i}" for i in range(MAX_EDIT_FIELDS)]
    assert plan.kept[0] == "huge" and len(plan.kept) == 141
    view = edit_modal(CardRef(thread_id="th1", approval_id="ap1"), "scale", arguments, plan)
    assert len(of_type(view["blocks"], "input")) == MAX_EDIT_FIELDS
    note = view["blocks"][-1]["text"]["text"]
    assert "Kept as they are" in note and "*huge*" in note and "and 121 more" in note and "web inbox" in note
    assert modal_problems(view) == []


def test_escape() -> None:
    """&, < and > are escaped; nothing else."""
    assert escape("a & <b> 'c'") == "a &amp; &lt;b&gt; 'c'"
