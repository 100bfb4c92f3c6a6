"""Approval policy enforced in code (factor 8): which actions need whose approval.

``gate`` turns a validated proposal into the events that follow it, a pure function of settings and thread
data. Whether a person may decide a pending approval is bot/authorization.py's ``may_decide``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.actions import Action, DoneForNow, RequestMoreInformation
from bot.config import Settings
from bot.events import ActionProposed, ApprovalRequested, Done, Event, HumanInputRequested
from bot.lifecycle import resolve, with_lifecycle

if TYPE_CHECKING:
    from bot.agent import Agent


def approvers_for(group: str | None, settings: Settings) -> list[str]:
    """The identities allowed to approve an action of this group (group members, else the global list)."""
    if group and settings.approver_groups.get(group):
        return settings.approver_groups[group]
    return settings.approvers


def four_eyes_applies(action: Action, settings: Settings) -> bool:
    """Whether the requester is barred from approving this action (off in open mode or with OPSGATE_FOUR_EYES=false)."""
    return settings.four_eyes and type(action).approval.four_eyes(action) and not settings.open_mode


def gate(
    proposal: ActionProposed, action: Action, settings: Settings, requester: str | None,
    requester_person: str | None = None, agent: Agent | None = None,
) -> list[Event]:
    """The events that follow a proposal: a question, a reply, an approval request, or nothing (run it).

    The requester's person is fixed in the request, so four-eyes holds whichever channel they answer from; so is
    its lifecycle (expiry, reminders, escalation: the action's policy, else the agent's defaults as the
    environment overrides them).
    """
    if isinstance(action, RequestMoreInformation):
        return [proposal, HumanInputRequested(message=action.message, action_id=proposal.action_id)]
    if isinstance(action, DoneForNow):
        return [proposal, Done(message=action.message)]
    policy = type(action).approval
    if not policy.required(action):
        return [proposal]
    four_eyes = four_eyes_applies(action, settings)
    group = policy.group_for(action)
    request = ApprovalRequested(
        action_id=proposal.action_id,
        name=proposal.name,
        arguments=proposal.arguments,
        summary=action.describe(),
        reason=proposal.reason,
        group=group,
        approvers=approvers_for(group, settings),
        requester=requester,
        requester_person=requester_person or (settings.people.resolve(requester).name if requester else None),
        four_eyes=four_eyes,
    )
    timing = resolve(policy.timing, agent.approval_timing if agent else None, settings.approval_timing,
                     agent.name if agent else "", request.at)
    return [proposal, with_lifecycle(request, timing)]
