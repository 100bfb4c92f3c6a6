"""One model step, the same in production and in ``opsgate eval``: call the model, parse, our rules, the policy.

The engine appends the events; ``opsgate eval`` judges them. Both go through ``model_step``, so evals measure
exactly what production does, including the second look below.

**A question must be needed (second look).** A small model asks for values it was given ("roll out web v3.1.0 to
prod" -> "Please provide the version and environment"). When its answer on the first step after a person's message
is a question, it is asked once more with the same messages and only the agent's own actions as tools (no question,
no reply). If that forced proposal uses something the person said and clears every rule (leak, claims, repeat,
grounding, ambiguity: ``decide`` does not turn it into a question or a reply), the question was needless: it is
recorded as blocked (``needless_question``) and the forced proposal, with its own model call, follows. Otherwise
the model's question goes out unchanged and the second call's cost is kept on it (``ActionProposed.second_look``).
A second call that fails keeps the question too: it is a check, never a reason to stall a thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import structlog

from bot.actions import Action, RequestMoreInformation
from bot.agent import Agent
from bot.config import Settings
from bot.context import build_messages
from bot.errors import ModelRefused, ModelUnavailable
from bot.events import (
    ActionProposed,
    Done,
    ErrorEvent,
    Event,
    HumanInputRequested,
    ModelCall,
    ProposalBlocked,
)
from bot.grounding import Evidence, tokens
from bot.llm import ChatModel, ModelOptions, ModelReply
from bot.parsing import Invalid, Parsed, parse_reply
from bot.proposals import decide
from bot.thread import MAX_CONSECUTIVE_ERRORS, Thread

log = structlog.get_logger("opsgate.model_step")

SecondLook = Literal["used", "kept", "failed"]


@dataclass(frozen=True)
class ModelStep:
    """What one step produced: the events to append, the model's own answer, and every model call it made."""

    events: list[Event]
    parsed: Parsed | Invalid  # the model's own (first) answer
    action: Action | None  # the action the events carry: the forced one when the second look was used
    calls: list[ModelCall] = field(default_factory=list)
    second_look: SecondLook | None = None  # None: no second call was made
    forced: str | None = None  # what the second call proposed (one line), used or not


def _call(reply: ModelReply, agent: Agent, options: ModelOptions) -> ModelCall:
    return ModelCall(
        model=reply.model, prompt_hash=agent.prompt_hash, prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens, latency_ms=reply.latency_ms,
        temperature=options.temperature, timeout_s=options.timeout,
    )


def _proposal(parsed: Parsed, call: ModelCall) -> ActionProposed:
    action = parsed.action
    return ActionProposed(name=action.name, arguments=action.model_dump(mode="json"), reason=parsed.reason, call=call)


def _invalid(parsed: Invalid, call: ModelCall, thread: Thread) -> list[Event]:
    """The error the model sees next step; after MAX_CONSECUTIVE_ERRORS in a row, a person is asked."""
    events: list[Event] = [ErrorEvent(kind="invalid_output", message=parsed.message, call=call)]
    if thread.consecutive_errors + 1 >= MAX_CONSECUTIVE_ERRORS:
        events.append(HumanInputRequested(
            message=f"I could not produce a valid next step {MAX_CONSECUTIVE_ERRORS} times in a row "
                    f"(last problem: {parsed.message}). Could you rephrase or give more detail?",
        ))
    return events


def worth_a_second_look(action: Action, thread: Thread, agent: Agent) -> bool:
    """Rule 1 applies: the model asked, on the first step after a person spoke, and the agent has actions."""
    return (agent.second_look and isinstance(action, RequestMoreInformation) and thread.heard_from_person_last
            and bool(agent.action_schemas))


def _uses_their_words(action: Action, thread: Thread, agent: Agent) -> bool:
    """Whether the action sets a value people said: one with none (a bare listing) shows no sign of understanding
    the request, so it cannot show that the question was needless."""
    said = Evidence.from_thread(thread, agent.facts).said
    values = [str(v) for v in action.model_dump(exclude_none=True).values()]
    return any(tokens(v) and tokens(v) <= said for v in values)


def _clears(events: list[Event]) -> bool:
    """Whether ``decide`` let the proposal through to a card or a run (no question, no reply instead)."""
    return not any(isinstance(e, HumanInputRequested | Done) for e in events)


async def model_step(thread: Thread, agent: Agent, model: ChatModel, settings: Settings) -> ModelStep:
    """Ask the model for the thread's next step and apply our rules and the policy to its answer.

    Raises ModelUnavailable (retry later) or ModelRefused (a configuration problem) from the first call only.
    """
    options = agent.model_options(settings)
    messages = build_messages(agent.prompt, thread, agent.facts)
    reply = await model.complete(messages, agent.schemas, options)
    call = _call(reply, agent, options)
    if reply.extra_tool_calls:
        log.warning("extra_tool_calls_ignored", thread_id=thread.id, ignored=reply.extra_tool_calls)
    parsed = parse_reply(reply, agent)
    if isinstance(parsed, Invalid):
        return ModelStep(_invalid(parsed, call, thread), parsed, None, [call])
    proposal = _proposal(parsed, call)
    if worth_a_second_look(parsed.action, thread, agent):
        return await _second_look(messages, parsed, proposal, thread, agent, model, settings, options)
    return ModelStep(decide(parsed.action, parsed.reason, proposal, thread, agent, settings), parsed,
                     parsed.action, [call])


async def _second_look(
    messages: list[dict[str, str]], parsed: Parsed, proposal: ActionProposed, thread: Thread, agent: Agent,
    model: ChatModel, settings: Settings, options: ModelOptions,
) -> ModelStep:
    """The model's question, or (when it was needless) the action it proposes with only actions to choose from."""
    question = parsed.action
    assert isinstance(question, RequestMoreInformation)
    first = proposal.call
    assert first is not None
    try:
        reply = await model.complete(messages, agent.action_schemas, options)
    except (ModelUnavailable, ModelRefused) as exc:
        log.warning("second_look_failed", agent=agent.name, thread_id=thread.id, error=str(exc))
        return ModelStep(decide(question, parsed.reason, proposal, thread, agent, settings), parsed, question,
                         [first], "failed")
    second = _call(reply, agent, options)
    forced = parse_reply(reply, agent)
    outcome = forced.message if isinstance(forced, Invalid) else forced.action.summary()
    if isinstance(forced, Parsed) and type(forced.action) in agent.tools \
            and _uses_their_words(forced.action, thread, agent):
        events = decide(forced.action, forced.reason, _proposal(forced, second), thread, agent, settings)
        if _clears(events):
            blocked = ProposalBlocked(
                action_id=proposal.action_id, rule="needless_question", field="message", value=question.message,
                reason=f"asked again with only its actions to choose from, the model proposed {outcome}, which "
                       "every rule let through: the question was not needed",
            )
            log.info("needless_question_replaced", agent=agent.name, thread_id=thread.id,
                     question=question.message, action=outcome, latency_ms=second.latency_ms)
            return ModelStep([proposal, blocked, *events], parsed, forced.action, [first, second], "used", outcome)
    log.info("question_kept", agent=agent.name, thread_id=thread.id, question=question.message, forced=outcome,
             latency_ms=second.latency_ms)
    kept = proposal.model_copy(update={"second_look": second})
    return ModelStep(decide(question, parsed.reason, kept, thread, agent, settings), parsed, question,
                     [first, second], "kept", outcome)
