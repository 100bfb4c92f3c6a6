"""Running one eval case: the thread so far, a real model step, the same rules and policy as production.

The model's answer goes through ``bot.model_step`` exactly as in the engine (the rules, the policy and the second
look at a question), so a case shows both what the model did (``model_passed``, invented values, leaks, repeats it
proposed) and what a person would have seen (``passed``, and whether anything invented, leaked or repeated got
past our rules: target zero).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from bot.actions import DoneForNow, RequestMoreInformation
from bot.agent import Agent, Registry
from bot.config import Settings
from bot.errors import ModelRefused, ModelUnavailable
from bot.evals.cases import REQUESTER, Case, Expect
from bot.events import (
    ActionProposed,
    ActionResult,
    AgentSelected,
    ApprovalDecided,
    ApprovalRequested,
    Done,
    Event,
    ExecutionStarted,
    HumanInputReceived,
    HumanInputRequested,
    ModelCall,
    ProposalBlocked,
    UserMessage,
)
from bot.grounding import Evidence, check, normalize
from bot.leaks import find_leak
from bot.llm import ChatModel
from bot.model_step import SecondLook, model_step
from bot.parsing import Invalid
from bot.policy import gate
from bot.proposals import instructions
from bot.repeats import find_earlier
from bot.routing import choose_agent
from bot.thread import Thread

OutcomeKind = Literal["action", "question", "reply", "route", "invalid", "error"]


class Outcome(BaseModel):
    """What happened next, as a person would see it."""

    kind: OutcomeKind
    action: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    policy: Literal["approval", "run"] | None = None
    text: str | None = None  # question, reply, route reason, or the error

    def describe(self) -> str:
        """One line for the report: ``deploy service=api … -> approval`` or ``question: …``."""
        if self.kind == "action":
            args = " ".join(f"{k}={v}" for k, v in self.arguments.items())
            return f"{self.action} {args} -> {self.policy}".replace("  ", " ")
        return f"{self.kind}: {self.text or ''}".strip()


class CaseRun(BaseModel):
    """One run of one case."""

    id: str
    group: str
    run: int = 1
    passed: bool
    model_passed: bool  # the model's own proposal met the expectation, with no rule having to step in
    expected: str
    got: str
    model_got: str
    diff: list[str] = Field(default_factory=list)
    latency_ms: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    guards: list[str] = Field(default_factory=list)  # rules that fired: grounding, repeat, leak, authority
    invented_by_model: list[str] = Field(default_factory=list)  # field=value the model made up
    invented_reaching: list[str] = Field(default_factory=list)  # ... that reached a card or a tool (target: none)
    leak_by_model: bool = False
    leak_reaching: bool = False
    repeat_by_model: bool = False
    repeat_reaching: bool = False
    model_calls: int = 1  # two when the model's question got a second look (rule 1)
    second_look: SecondLook | None = None  # used: its question was needless and the forced action followed
    second_look_got: str | None = None  # what the model proposed when it could not ask


def build_thread(case: Case, agent: str | None) -> Thread:
    """The case's thread so far as events, owned by ``agent`` (None: not routed yet)."""
    events: list[Event] = []
    for step in case.thread:
        who = step.by or REQUESTER
        if step.user is not None:
            events.append(UserMessage(text=step.user, user=who))
            if len(events) == 1 and agent is not None:
                events.append(AgentSelected(agent=agent))
        elif step.answer is not None:
            events.append(HumanInputReceived(text=step.answer, user=who))
        elif step.asked is not None:
            ask = ActionProposed(name="request_more_information", arguments={"message": step.asked})
            events += [ask, HumanInputRequested(message=step.asked, action_id=ask.action_id)]
        elif step.reply is not None:
            done = ActionProposed(name="done_for_now", arguments={"message": step.reply})
            events += [done, Done(message=step.reply)]
        elif step.ran is not None:
            ran = ActionProposed(name=step.ran.action, arguments=step.ran.arguments)
            events.append(ran)
            if step.ran.approved_by:
                request = ApprovalRequested(action_id=ran.action_id, name=ran.name, arguments=ran.arguments)
                events += [request, ApprovalDecided(approval_id=request.approval_id, action_id=ran.action_id,
                                                    approved=True, by=step.ran.approved_by)]
            events += [
                ExecutionStarted(action_id=ran.action_id, name=ran.name, arguments=ran.arguments,
                                 idempotency_key=f"eval:{ran.action_id}", approved_by=step.ran.approved_by),
                ActionResult(action_id=ran.action_id, name=ran.name, ok=step.ran.ok, result=step.ran.result),
            ]
        elif step.rejected is not None:
            rejected = ActionProposed(name=step.rejected.action, arguments=step.rejected.arguments)
            request = ApprovalRequested(action_id=rejected.action_id, name=rejected.name,
                                        arguments=rejected.arguments)
            events += [rejected, request, ApprovalDecided(
                approval_id=request.approval_id, action_id=rejected.action_id, approved=False,
                by=step.rejected.by, comment=step.rejected.comment)]
    return Thread(id=f"eval-{case.id}", agent=agent, events=events)


def outcome_of(events: list[Event]) -> Outcome:
    """The person-visible outcome of the events that followed a proposal."""
    for event in events:
        if isinstance(event, ApprovalRequested):
            return Outcome(kind="action", action=event.name, arguments=event.arguments, policy="approval")
    for event in events:
        if isinstance(event, HumanInputRequested):
            return Outcome(kind="question", text=event.message)
        if isinstance(event, Done):
            return Outcome(kind="reply", text=event.message)
    # The last proposal: a needless question is followed by the action proposed in its place.
    proposal = next((e for e in reversed(events) if isinstance(e, ActionProposed)), None)
    if proposal is None:
        return Outcome(kind="invalid", text="no proposal")
    return Outcome(kind="action", action=proposal.name, arguments=proposal.arguments, policy="run")


def _value_ok(rule: Any, value: Any) -> bool:
    if isinstance(rule, dict) and rule.get("any"):
        return value is not None
    if isinstance(rule, dict) and "one_of" in rule:
        return any(_value_ok(option, value) for option in rule["one_of"])
    return value is not None and normalize(str(rule)) == normalize(str(value))


def judge(expect: Expect, outcome: Outcome) -> list[str]:
    """The differences between what was expected and what happened (empty: passed)."""
    talk = expect.kind == "talk" and outcome.kind in ("question", "reply")
    if outcome.kind != expect.kind and not talk:
        article = "an" if expect.kind == "action" else "a"
        return [f"expected {article} {expect.kind}, got {outcome.describe()}"]
    diff: list[str] = []
    if expect.kind == "action":
        if outcome.action != expect.action:
            return [f"expected {expect.action}, got {outcome.action}"]
        for name, rule in expect.arguments.items():
            if not _value_ok(rule, outcome.arguments.get(name)):
                diff.append(f"{name}: expected {rule}, got {outcome.arguments.get(name)}")
        if expect.outcome and outcome.policy != expect.outcome:
            diff.append(f"expected it to {'need approval' if expect.outcome == 'approval' else 'run'}, "
                        f"got {outcome.policy}")
    elif expect.kind == "route":
        if outcome.text != expect.agent:
            diff.append(f"expected agent {expect.agent}, got {outcome.text}")
    else:
        text = (outcome.text or "").lower()
        diff += [f"does not mention {word!r}" for word in expect.mentions if word.lower() not in text]
    return diff


def _routing_registry(case: Case, registry: Registry) -> Registry:
    decoys = [Agent(name=n, description=d, prompt_path=Path("/nonexistent")) for n, d in case.agents.items()]
    return Registry([*registry, *decoys], default=registry.default)


async def _route(case: Case, registry: Registry, model: ChatModel) -> CaseRun:
    thread = build_thread(case, agent=None)
    selected = await choose_agent(thread, _routing_registry(case, registry), model)
    outcome = Outcome(kind="route", text=selected.agent)
    diff = judge(case.expect, outcome)
    call = selected.call or ModelCall(model=model.name, prompt_hash="router")
    return CaseRun(id=case.id, group=case.group, passed=not diff, model_passed=not diff,
                   expected=f"route: {case.expect.agent}", got=f"route: {selected.agent}",
                   model_got=f"route: {selected.agent}", diff=diff, latency_ms=call.latency_ms,
                   prompt_tokens=call.prompt_tokens, completion_tokens=call.completion_tokens)


def expected_text(expect: Expect) -> str:
    """One line saying what a case expects."""
    if expect.kind == "action":
        args = " ".join(f"{k}={v}" for k, v in expect.arguments.items())
        return f"{expect.action} {args}{' -> ' + expect.outcome if expect.outcome else ''}"
    if expect.kind == "route":
        return f"route: {expect.agent}"
    return f"{expect.kind}{' about ' + ', '.join(expect.mentions) if expect.mentions else ''}"


async def run_case(case: Case, agent: Agent, registry: Registry, model: ChatModel, settings: Settings) -> CaseRun:
    """One case through ``model_step`` (one model call, two for a second look): what the report counts."""
    if case.expect.kind == "route":
        return await _route(case, registry, model)
    thread = build_thread(case, agent.name)
    base = CaseRun(id=case.id, group=case.group, passed=False, model_passed=False,
                   expected=expected_text(case.expect), got="", model_got="")
    try:
        step = await model_step(thread, agent, model, settings)
    except (ModelUnavailable, ModelRefused) as exc:
        return base.model_copy(update={"got": f"error: {exc}", "model_got": "error", "diff": [str(exc)]})
    base = base.model_copy(update={
        "latency_ms": sum(c.latency_ms for c in step.calls), "prompt_tokens": sum(c.prompt_tokens for c in step.calls),
        "completion_tokens": sum(c.completion_tokens for c in step.calls), "model_calls": len(step.calls),
        "second_look": step.second_look, "second_look_got": step.forced,
    })
    parsed = step.parsed
    if isinstance(parsed, Invalid):
        got = f"invalid: {parsed.message}"
        return base.model_copy(update={"got": got, "model_got": got, "diff": [parsed.message]})
    action, reason = parsed.action, parsed.reason  # the model's own answer
    proposal = ActionProposed(name=action.name, arguments=action.model_dump(mode="json"), reason=reason)
    raw = outcome_of(gate(proposal, action, settings, thread.requester))
    events = step.events
    final = outcome_of(events)
    reached = step.action or action  # what the events carry: the forced action when the second look was used
    evidence = Evidence.from_thread(thread, agent.facts)
    said = [e.text for e in thread.events if isinstance(e, UserMessage | HumanInputReceived)]
    model_text = [t for t in (reason, action.message if isinstance(action, RequestMoreInformation | DoneForNow)
                              else None) if t]
    final_text = [t for t in (final.text, next((e.reason for e in events if isinstance(e, ApprovalRequested)),
                                               None)) if t]
    cleared = final.kind == "action"
    diff = judge(case.expect, final)
    guards = sorted({str(e.rule) for e in events if isinstance(e, ProposalBlocked)})
    invented = [f"{m.field}={m.value}" for m in check(action, evidence).missing]
    return base.model_copy(update={
        "passed": not diff, "model_passed": not judge(case.expect, raw) and not guards,
        "got": final.describe(), "model_got": raw.describe(), "diff": diff, "guards": guards,
        "invented_by_model": invented,
        "invented_reaching": [f"{m.field}={m.value}" for m in check(reached, evidence).missing] if cleared else [],
        "leak_by_model": any(find_leak(t, instructions(agent), said) for t in model_text),
        "leak_reaching": any(find_leak(t, instructions(agent), said) for t in final_text),
        "repeat_by_model": find_earlier(action, thread) is not None,
        "repeat_reaching": cleared and find_earlier(reached, thread) is not None,
    })
