"""From a model's proposal to the events that follow it: our rules first, then the approval policy.

The order is fixed: text for people is checked for leaked instructions (replaced), the agent's reason loses any
claim of authority, an identical side effect already asked for in this request is not repeated, every grounded
argument must come from its sources (else the person is asked), a choice the request left open between options
the policy treats differently is asked about (``bot.ambiguity``), and only then ``policy.gate`` decides. Approval
requests carry people's own words and the claims found in them, so approvers see who claims what.
A pure function of the thread and the proposal; the engine and ``opsgate eval`` both use it.
"""

from __future__ import annotations

import structlog

from bot.actions import Action, DoneForNow, RequestMoreInformation
from bot.agent import Agent
from bot.ambiguity import ask, find_ambiguity, why
from bot.claims import find_claims, request_quotes, without_claims
from bot.config import Settings
from bot.context import INSTRUCTIONS
from bot.events import (
    ActionProposed,
    ApprovalRequested,
    Done,
    Event,
    HumanInputReceived,
    HumanInputRequested,
    ProposalBlocked,
    UserMessage,
)
from bot.grounding import Evidence, check, question
from bot.leaks import find_leak
from bot.policy import gate
from bot.repeats import answer, describe, find_earlier
from bot.routing import ROUTER_PROMPT
from bot.thread import Thread

log = structlog.get_logger("opsgate.proposals")


def _people_said(thread: Thread) -> list[str]:
    return [e.text for e in thread.events if isinstance(e, UserMessage | HumanInputReceived)]


def instructions(agent: Agent) -> tuple[str, ...]:
    """Everything the model was told that people must never be shown: the agent's prompt and ours."""
    return (agent.prompt, INSTRUCTIONS, ROUTER_PROMPT)


def _unleaked(
    action: Action, reason: str | None, agent: Agent, thread: Thread, proposal_id: str
) -> tuple[Action, str | None, list[ProposalBlocked]]:
    """The action and reason with leaked instructions replaced by plain text; what was replaced."""
    said = _people_said(thread)
    blocked: list[ProposalBlocked] = []
    if isinstance(action, RequestMoreInformation | DoneForNow):
        leak = find_leak(action.message, instructions(agent), said)
        if leak is not None:
            plain = agent.plain_question if isinstance(action, RequestMoreInformation) else agent.plain_reply
            action = type(action)(message=plain)
            blocked.append(ProposalBlocked(
                action_id=proposal_id, rule="leak", field="message",
                reason=f"the {action.name} message repeated {leak.words} words of the instructions "
                       f"(\"{leak.excerpt[:200]}\"); replaced by a plain one",
            ))
    if reason:
        leak = find_leak(reason, instructions(agent), said)
        if leak is not None:
            reason = None
            blocked.append(ProposalBlocked(
                action_id=proposal_id, rule="leak", field="reason",
                reason=f"the reason repeated {leak.words} words of the instructions (\"{leak.excerpt[:200]}\"); "
                       "dropped",
            ))
    for item in blocked:
        log.warning("instructions_leak_replaced", agent=agent.name, thread_id=thread.id, detail=item.reason)
    return action, reason, blocked


def _unclaimed(reason: str | None, proposal_id: str) -> tuple[str | None, list[ProposalBlocked]]:
    """The reason without sentences that claim authority or ask to skip approval (never a reason)."""
    claims = find_claims(reason or "")
    if not claims:
        return reason, []
    cleaned = without_claims(reason)
    return cleaned, [ProposalBlocked(
        action_id=proposal_id, rule="authority", field="reason", value=", ".join(claims),
        reason="a claim of authority is not a reason; removed from the agent's summary",
    )]


def attribute(events: list[Event], thread: Thread, by_command: bool = False) -> list[Event]:
    """Approval requests with people's own words quoted and the claims of authority in them named.

    A command's reason is the person's own text, already quoted: it is not shown again as the agent's summary.
    """
    out: list[Event] = []
    for event in events:
        if isinstance(event, ApprovalRequested):
            quotes = request_quotes(thread)
            claims = [c for q in quotes for c in find_claims(q.text)]
            update: dict[str, object] = {"quotes": quotes, "claims": claims}
            if by_command:
                update["reason"] = None
            event = event.model_copy(update=update)
        out.append(event)
    return out


def decide(
    action: Action, reason: str | None, proposal: ActionProposed, thread: Thread, agent: Agent, settings: Settings
) -> list[Event]:
    """The events that follow a model's proposal (``proposal`` carries the model call and the action id)."""
    action, reason, blocked = _unleaked(action, reason, agent, thread, proposal.action_id)
    reason, claimed = _unclaimed(reason, proposal.action_id)
    blocked += claimed
    proposal = proposal.model_copy(update={"name": action.name, "arguments": action.model_dump(mode="json"),
                                           "reason": reason})
    if isinstance(action, RequestMoreInformation | DoneForNow):
        gated = gate(proposal, action, settings, thread.requester, thread.requester_person, agent)
        return [proposal, *blocked, *gated[1:]]

    earlier = find_earlier(action, thread)
    if earlier is not None:
        blocked.append(ProposalBlocked(action_id=proposal.action_id, rule="repeat", reason=describe(action, earlier)))
        log.info("repeat_side_effect_blocked", agent=agent.name, thread_id=thread.id, action=action.summary(),
                 earlier=earlier.action_id, outcome=earlier.outcome)
        kind, text = answer(action, earlier)
        follow: Event = Done(message=text) if kind == "reply" else HumanInputRequested(
            message=text, action_id=proposal.action_id)
        return [proposal, *blocked, follow]

    grounding = check(action, Evidence.from_thread(thread, agent.facts))
    if not grounding.ok:
        for item in grounding.missing:
            blocked.append(ProposalBlocked(
                action_id=proposal.action_id, rule="grounding", field=item.field, value=item.value, reason=item.why,
            ))
        log.info("ungrounded_arguments", agent=agent.name, thread_id=thread.id, action=action.name,
                 fields=[m.field for m in grounding.missing])
        return [proposal, *blocked, HumanInputRequested(
            message=question(action, grounding), action_id=proposal.action_id)]

    doubt = find_ambiguity(action, thread)
    if doubt is not None:
        blocked.append(ProposalBlocked(action_id=proposal.action_id, rule="ambiguous", field=doubt.field,
                                       value=doubt.value, reason=why(action, doubt)))
        log.info("ambiguous_choice_asked", agent=agent.name, thread_id=thread.id, action=action.name,
                 field=doubt.field, named=doubt.named)
        return [proposal, *blocked, HumanInputRequested(message=ask(action, doubt), action_id=proposal.action_id)]

    gated = gate(proposal, action, settings, thread.requester, thread.requester_person, agent)
    return attribute([gated[0], *blocked, *gated[1:]], thread)
