"""Approval policy enforced in code (factor 8): who must approve what, and who may.

``gate`` turns a validated proposal into the events that follow it; ``authorize`` decides whether a person
may decide a pending approval. Both are pure functions of settings and thread data.
"""

from __future__ import annotations

from bot.actions import Action, DoneForNow, RequestMoreInformation
from bot.config import Settings
from bot.errors import NotAuthorized
from bot.events import ActionProposed, ApprovalRequested, Done, Event, HumanInputRequested
from bot.thread import PendingApproval

# Channels where a person is authenticated locally (token or login URL): in open mode they may approve.
LOCAL_CHANNELS = frozenset({"web", "cli", "api"})


def approvers_for(group: str | None, settings: Settings) -> list[str]:
    """The identities allowed to approve an action of this group (group members, else the global list)."""
    if group and settings.approver_groups.get(group):
        return settings.approver_groups[group]
    return settings.approvers


def four_eyes_applies(action: Action, settings: Settings) -> bool:
    """Whether the requester is barred from approving this action (off in open mode or with OPSGATE_FOUR_EYES=false)."""
    return settings.four_eyes and type(action).approval.four_eyes(action) and not settings.open_mode


def gate(proposal: ActionProposed, action: Action, settings: Settings, requester: str | None) -> list[Event]:
    """The events that follow a proposal: a question, a reply, an approval request, or nothing (run it)."""
    if isinstance(action, RequestMoreInformation):
        return [proposal, HumanInputRequested(message=action.message, action_id=proposal.action_id)]
    if isinstance(action, DoneForNow):
        return [proposal, Done(message=action.message)]
    policy = type(action).approval
    if not policy.required(action):
        return [proposal]
    four_eyes = four_eyes_applies(action, settings)
    request = ApprovalRequested(
        action_id=proposal.action_id,
        name=proposal.name,
        arguments=proposal.arguments,
        reason=proposal.reason,
        group=policy.group,
        approvers=approvers_for(policy.group, settings),
        requester=requester,
        four_eyes=four_eyes,
    )
    return [proposal, request]


def authorize(
    user: str | None, pending: PendingApproval, channel: str, settings: Settings, approving: bool = True
) -> None:
    """Raise NotAuthorized unless ``user`` may decide ``pending`` from ``channel``.

    The four-eyes rule forbids approving one's own request; rejecting (cancelling) it stays allowed.
    """
    if not user:
        raise NotAuthorized("a decision needs an identified user")
    if settings.open_mode:
        # First run with no approvers: only a locally authenticated user (inbox, CLI, API token) decides.
        if channel not in LOCAL_CHANNELS:
            raise NotAuthorized(
                "no approvers are configured (OPSGATE_APPROVERS); decisions are only accepted from the "
                "local web inbox, the CLI or the API until they are"
            )
        return
    allowed = approvers_for(pending.group, settings)
    if user.lower() not in {a.lower() for a in allowed}:
        who = f"group {pending.group}" if pending.group and settings.approver_groups.get(pending.group) else "approvers"
        raise NotAuthorized(f"{user} is not one of the {who} for {pending.action}")
    if approving and pending.four_eyes and pending.requester and pending.requester.lower() == user.lower():
        raise NotAuthorized(f"four-eyes rule: {user} requested this {pending.action} and may not approve it")
