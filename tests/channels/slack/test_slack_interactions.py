"""Approve / Reject / Edit clicks and modals through the real service: who may decide, what is recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from bot.events import ApprovalDecided, DecisionRefused
from bot.runtime import Runtime
from bot.store import Ref
from bot.thread import Thread
from channels.slack import slack_interactions as interactions
from channels.slack.replay import request_refs
from channels.slack.slack_blocks import APPROVE, EDIT, EDIT_MODAL, REJECT, REJECT_MODAL
from channels.slack.slack_payloads import BlockActions, CardRef, ViewSubmission
from tests.channels.slack.conftest import waiting_deploy
from tests.channels.slack.slack_requests import click, submission

CARD_TS = "1732270010.000200"
ROOT = "1732270000.000100"


def press(thread: Thread, action_id: str, user: str) -> BlockActions:
    pending = thread.pending
    assert pending is not None
    value = CardRef(thread_id=thread.id, approval_id=pending.approval_id).to_value()
    return BlockActions.model_validate(
        click(action_id, value, user=user, channel="C0OPS0001", message_ts=CARD_TS, thread_ts=ROOT))


def submit(view: dict[str, Any], values: Mapping[str, Mapping[str, str | None]], user: str) -> ViewSubmission:
    return ViewSubmission.model_validate(submission(view["callback_id"], view["private_metadata"], values,
                                                    user=user))


def decisions(thread: Thread) -> list[ApprovalDecided]:
    return [e for e in thread.events if isinstance(e, ApprovalDecided)]


def refusals(thread: Thread) -> list[DecisionRefused]:
    return [e for e in thread.events if isinstance(e, DecisionRefused)]


async def test_approver_click_approves_as_the_signed_user(runtime: Runtime) -> None:
    """An approver's click records the decision by that Slack user, via the card's message."""
    thread = await waiting_deploy(runtime)
    answer = await interactions.approve(press(thread, APPROVE, "UCAROL01"), runtime.service)
    assert answer == interactions.Answer()
    after = await runtime.service.get_thread(thread.id)
    [decision] = decisions(after)
    assert decision.approved and decision.by == "UCAROL01"
    assert (decision.via.channel, decision.via.conversation, decision.via.message) == ("slack", "C0OPS0001",
                                                                                      CARD_TS)


async def test_non_approver_click_is_refused_recorded_and_logged(runtime: Runtime) -> None:
    """Someone not in OPSGATE_APPROVERS: a private refusal, no decision, a refusal in the thread and the log."""
    thread = await waiting_deploy(runtime)
    with capture_logs() as logs:
        answer = await interactions.approve(press(thread, APPROVE, "UEVE0001"), runtime.service)
    assert answer.ephemeral is not None and "UEVE0001 is not one of the approvers" in answer.ephemeral
    after = await runtime.service.get_thread(thread.id)
    assert decisions(after) == [] and after.status == "waiting_for_approval"
    [refused] = refusals(after)
    assert refused.by == "UEVE0001"
    assert any(r["event"] == "approval_refused" and r["user"] == "UEVE0001" for r in logs)


async def test_requester_cannot_approve_their_own_production_deploy(runtime: Runtime) -> None:
    """Four-eyes: an approver who asked for the deploy may not approve it."""
    thread = await waiting_deploy(runtime, requester="UCAROL01")
    answer = await interactions.approve(press(thread, APPROVE, "UCAROL01"), runtime.service)
    assert answer.ephemeral is not None and "four-eyes" in answer.ephemeral
    assert decisions(await runtime.service.get_thread(thread.id)) == []


async def test_second_click_says_who_already_decided(runtime: Runtime) -> None:
    """After Carol approved, Dave's click is told 'Already approved by <@UCAROL01>' and changes nothing."""
    thread = await waiting_deploy(runtime)
    await interactions.approve(press(thread, APPROVE, "UCAROL01"), runtime.service)
    answer = await interactions.approve(press(thread, APPROVE, "UDAVE001"), runtime.service)
    assert answer.ephemeral == "Already approved by <@UCAROL01>."
    assert len(decisions(await runtime.service.get_thread(thread.id))) == 1


async def test_reject_opens_a_modal_and_the_reason_is_recorded(runtime: Runtime) -> None:
    """Reject -> modal; submitting without a reason is an input error; with one, a rejection with comment."""
    thread = await waiting_deploy(runtime)
    answer = await interactions.open_reject(press(thread, REJECT, "UCAROL01"), runtime.service)
    assert answer.view is not None and answer.ephemeral is None
    assert answer.view["callback_id"] == REJECT_MODAL
    errors = await interactions.submit_reject(submit(answer.view, {"reason": {"reason": "  "}}, "UCAROL01"),
                                              runtime.service)
    assert errors is not None and set(errors) == {"reason"}
    assert decisions(await runtime.service.get_thread(thread.id)) == []
    ok = await interactions.submit_reject(
        submit(answer.view, {"reason": {"reason": "release freeze"}}, "UCAROL01"), runtime.service)
    assert ok is None
    [decision] = decisions(await runtime.service.get_thread(thread.id))
    assert not decision.approved and decision.comment == "release freeze" and decision.by == "UCAROL01"


async def test_reject_modal_is_not_offered_to_a_non_approver(runtime: Runtime) -> None:
    """A non-approver clicking Reject gets a private refusal instead of a modal; it is recorded."""
    thread = await waiting_deploy(runtime)
    answer = await interactions.open_reject(press(thread, REJECT, "UEVE0001"), runtime.service)
    assert answer.view is None and answer.ephemeral is not None
    assert [r.by for r in refusals(await runtime.service.get_thread(thread.id))] == ["UEVE0001"]


async def test_modal_submitted_by_someone_else_is_still_checked(runtime: Runtime) -> None:
    """The submitter's signed user id decides, not whoever opened the modal (private_metadata is a pointer)."""
    thread = await waiting_deploy(runtime)
    answer = await interactions.open_reject(press(thread, REJECT, "UCAROL01"), runtime.service)
    assert answer.view is not None
    errors = await interactions.submit_reject(
        submit(answer.view, {"reason": {"reason": "nope"}}, "UEVE0001"), runtime.service)
    assert errors is not None and "not one of the approvers" in errors["reason"]
    assert decisions(await runtime.service.get_thread(thread.id)) == []


async def test_edit_approves_with_validated_arguments(runtime: Runtime) -> None:
    """Edit -> modal with the arguments; a bad value is shown under its input; a good one approves the edit."""
    thread = await waiting_deploy(runtime)
    answer = await interactions.open_edit(press(thread, EDIT, "UCAROL01"), runtime.service)
    assert answer.view is not None and answer.view["callback_id"] == EDIT_MODAL
    values = {"arg_0": {"value": "api"}, "arg_1": {"value": "1.4.3"},
              "arg_2": {"value": "prod"}}
    errors = await interactions.submit_edit(submit(answer.view, values, "UCAROL01"), runtime.service)
    assert errors is not None and list(errors) == ["arg_2"]
    values["arg_2"] = {"value": "production"}
    assert await interactions.submit_edit(submit(answer.view, values, "UCAROL01"), runtime.service) is None
    [decision] = decisions(await runtime.service.get_thread(thread.id))
    assert decision.approved and decision.arguments is not None and decision.arguments["version"] == "1.4.3"
    assert [(c.field, c.old, c.new) for c in decision.changes] == [("version", "1.4.2", "1.4.3")]


async def test_edit_requires_the_required_fields(runtime: Runtime) -> None:
    """An emptied required argument is an input error, and nothing is decided."""
    thread = await waiting_deploy(runtime)
    answer = await interactions.open_edit(press(thread, EDIT, "UCAROL01"), runtime.service)
    assert answer.view is not None
    values: dict[str, dict[str, str | None]] = {
        "arg_0": {"value": None}, "arg_1": {"value": "1.4.3"}, "arg_2": {"value": "production"},
    }
    errors = await interactions.submit_edit(submit(answer.view, values, "UCAROL01"), runtime.service)
    assert errors == {"arg_0": "service is required"}


async def test_button_value_that_is_not_ours_is_a_clear_error(runtime: Runtime) -> None:
    """A forged or foreign button value raises ValueError (answered privately by the bolt listener)."""
    thread = await waiting_deploy(runtime)
    forged = BlockActions.model_validate(click(APPROVE, "drop table", user="UCAROL01", channel="C0OPS0001",
                                               message_ts=CARD_TS, thread_ts=ROOT))
    with pytest.raises(ValueError, match="not an opsgate approval"):
        await interactions.approve(forged, runtime.service)
    assert decisions(await runtime.service.get_thread(thread.id)) == []


# --- replays of the same signed request ---------------------------------------------------------------------


def guard(key: str = "k" * 64) -> list[Ref]:
    return request_refs(key)


async def test_replayed_approve_decides_nothing_and_says_nothing(runtime: Runtime) -> None:
    """The same request again (same key) after an approval: no decision, no refusal note, no event."""
    thread = await waiting_deploy(runtime)
    click_ = press(thread, APPROVE, "UCAROL01")
    assert await interactions.approve(click_, runtime.service, refs=guard()) == interactions.Answer()
    before = await runtime.service.get_thread(thread.id)
    assert await interactions.approve(click_, runtime.service, refs=guard()) == interactions.REPLAYED
    after = await runtime.service.get_thread(thread.id)
    assert after.events == before.events and len(decisions(after)) == 1 and refusals(after) == []


async def test_replayed_refused_click_is_recorded_once(runtime: Runtime) -> None:
    """A non-approver's click replayed: one refusal in the thread, one note, then silence."""
    thread = await waiting_deploy(runtime)
    click_ = press(thread, APPROVE, "UEVE0001")
    first = await interactions.approve(click_, runtime.service, refs=guard())
    assert first.ephemeral is not None and not first.replayed
    assert await interactions.approve(click_, runtime.service, refs=guard()) == interactions.REPLAYED
    assert len(refusals(await runtime.service.get_thread(thread.id))) == 1
    other = await interactions.approve(click_, runtime.service, refs=guard("z" * 64))  # a new request is heard
    assert other.ephemeral is not None and len(refusals(await runtime.service.get_thread(thread.id))) == 2


async def test_replayed_click_that_changed_nothing_is_silent(runtime: Runtime) -> None:
    """A click answered 'no longer pending' (nothing written) is remembered too: its replay gets no note."""
    thread = await waiting_deploy(runtime)
    await interactions.approve(press(thread, APPROVE, "UCAROL01"), runtime.service)
    late = press(thread, REJECT, "UDAVE001")
    answer = await interactions.open_reject(late, runtime.service, refs=guard())
    assert answer.ephemeral is not None and answer.view is None
    assert await interactions.open_reject(late, runtime.service, refs=guard()) == interactions.REPLAYED


async def test_replayed_modal_opening_and_submission_change_nothing(runtime: Runtime) -> None:
    """Reject button and the reject modal, each sent twice: one modal, one rejection."""
    thread = await waiting_deploy(runtime)
    opened = await interactions.open_reject(press(thread, REJECT, "UCAROL01"), runtime.service, refs=guard("a" * 64))
    assert opened.view is not None
    again = await interactions.open_reject(press(thread, REJECT, "UCAROL01"), runtime.service, refs=guard("a" * 64))
    assert again == interactions.REPLAYED
    submitted = submit(opened.view, {"reason": {"reason": "freeze"}}, "UCAROL01")
    assert await interactions.submit_reject(submitted, runtime.service, refs=guard("b" * 64)) is None
    assert await interactions.submit_reject(submitted, runtime.service, refs=guard("b" * 64)) is None
    after = await runtime.service.get_thread(thread.id)
    assert len(decisions(after)) == 1 and refusals(after) == []


async def test_concurrent_replays_of_one_approval_decide_once(runtime: Runtime) -> None:
    """Five copies of one signed Approve click racing: one decision, four replays, no refusal."""
    thread = await waiting_deploy(runtime)
    click_ = press(thread, APPROVE, "UCAROL01")
    answers = await asyncio.gather(*(interactions.approve(click_, runtime.service, refs=guard()) for _ in range(5)))
    assert sorted(a.replayed for a in answers) == [False, True, True, True, True]
    after = await runtime.service.get_thread(thread.id)
    assert len(decisions(after)) == 1 and refusals(after) == []
