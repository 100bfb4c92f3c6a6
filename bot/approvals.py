"""Turning a person's decision into an ``ApprovalDecided`` event, or a clear refusal. Pure functions.

``check`` is everything a decision must pass (the approval is pending, nobody decided it yet, ``may_decide``);
``decide`` adds the edited arguments and builds the event. Channels that ask before a modal opens call ``check``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from bot.agent import Agent
from bot.authorization import Allowed, may_decide
from bot.config import Settings
from bot.errors import AlreadyDecided, InvalidArguments, NotWaiting
from bot.events import ApprovalDecided, ArgumentChange, Via
from bot.field_help import describe_validation as describe_validation  # plain words; re-exported for callers
from bot.field_help import field_errors
from bot.people import Actor, Person, identity_of
from bot.policy import four_eyes_applies
from bot.thread import PendingApproval, Thread


def check(
    thread: Thread, approval_id: str, actor: Actor | str | None, channel: str, settings: Settings, *, approving: bool
) -> tuple[PendingApproval, Person]:
    """The pending approval and the deciding person, or the signal saying why this decision cannot count."""
    request = thread.approval_request(approval_id)
    if request is None:
        raise NotWaiting(f"thread {thread.id} has no approval {approval_id}")
    earlier = thread.decision(approval_id)
    if earlier is not None:
        raise AlreadyDecided(earlier.by, earlier.approved, earlier.closed_by)
    pending = thread.pending
    if pending is None or pending.approval_id != approval_id:
        raise NotWaiting(f"approval {approval_id} is no longer pending")
    answer = may_decide(actor, pending, channel, settings, approving=approving)
    if not isinstance(answer, Allowed):
        raise answer.error()
    return pending, answer.person


def decide(
    thread: Thread,
    agent: Agent,
    approval_id: str,
    *,
    approved: bool,
    user: Actor | str | None,
    via: Via,
    settings: Settings,
    comment: str | None = None,
    arguments: dict[str, Any] | None = None,
) -> ApprovalDecided:
    """Validate a decision against the thread and the policy; return the event to append."""
    pending, person = check(thread, approval_id, user, via.channel, settings, approving=approved)
    by = identity_of(user)
    assert by is not None  # may_decide refuses anonymous decisions

    edited: dict[str, Any] | None = None
    changes: list[ArgumentChange] = []
    if arguments:
        if not approved:
            raise InvalidArguments("edited arguments only apply to an approval")
        action_type = agent.action(pending.action)
        if action_type is None:
            raise InvalidArguments(f"unknown action {pending.action}")
        merged = {**pending.arguments, **arguments}
        try:
            action = action_type.model_validate(merged)
        except ValidationError as exc:
            raise InvalidArguments(describe_validation(exc), field_errors(exc)) from None
        edited = action.model_dump(mode="json")
        changes = [
            ArgumentChange(field=k, old=pending.arguments.get(k), new=v)
            for k, v in edited.items() if pending.arguments.get(k) != v
        ]
        if not changes:
            edited = None
        else:
            # The edited action must still be one this person may approve (e.g. staging -> production).
            if action_type.approval.group_for(action) != pending.group:
                raise InvalidArguments("edited arguments would need a different approver group")
            if four_eyes_applies(action, settings) and not pending.four_eyes:
                stricter = pending.model_copy(update={"four_eyes": True})
                answer = may_decide(user, stricter, via.channel, settings, approving=True)
                if not isinstance(answer, Allowed):
                    raise answer.error()
    text = (comment or "").strip() or None
    return ApprovalDecided(
        approval_id=approval_id, action_id=pending.action_id, approved=approved, by=by,
        by_person=person.name, comment=text, arguments=edited, changes=changes, via=via,
    )
