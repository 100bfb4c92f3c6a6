"""Realistic deploy-agent threads as opsgate events, cut at any length, for the context-size benchmark.

The mix: requests from two people, read-only lookups, production deploys paused for approval, one rejection,
a question to the requester and its answer, a failed execution, replies, and exactly one model error
(an invalid tool call, retried at once).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from bot.events import (
    ActionProposed,
    ActionResult,
    AgentSelected,
    ApprovalDecided,
    ApprovalRequested,
    Done,
    ErrorEvent,
    Event,
    ExecutionStarted,
    HumanInputReceived,
    HumanInputRequested,
    ModelCall,
    UserMessage,
    Via,
)
from bot.thread import Thread

REQUESTER, APPROVER = "U04REQUEST1", "U07APPROVE2"
SLACK = Via(channel="slack", conversation="C0123DEPLOY", message="1732233000.000100")
CALL = ModelCall(model="gpt-4o-mini", prompt_hash="3f2a9c1d0b7e4a55", prompt_tokens=900, completion_tokens=40)
SERVICES = ("api", "web", "billing", "search", "auth")


def _ledger(service: str, n: int) -> str:
    """What list_deployments returns: one line per ledger entry."""
    day = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    lines = []
    for i in range(n):
        at = day - timedelta(hours=7 * i)
        env = "production" if i % 2 == 0 else "staging"
        approver = APPROVER if env == "production" else "no approval needed"
        lines.append(f"{at:%Y-%m-%d %H:%M} deploy {service} 1.{8 - i // 2}.{i % 3} {env} (approved by {approver})")
    return "\n".join(lines)


def _deploy(
    service: str, version: str, env: str, approve: bool, comment: str | None, failure: str | None = None
) -> list[Event]:
    args = {"service": service, "version": version, "environment": env}
    proposal = ActionProposed(name="deploy", arguments=args, reason=f"the requester asked for {service} {version}",
                              call=CALL)
    events: list[Event] = [proposal]
    approved_by = None
    if env == "production":
        request = ApprovalRequested(action_id=proposal.action_id, name="deploy", arguments=args,
                                    reason=proposal.reason, group="deployers", approvers=[APPROVER],
                                    requester=REQUESTER, four_eyes=True)
        decision = ApprovalDecided(approval_id=request.approval_id, action_id=proposal.action_id, approved=approve,
                                   by=APPROVER, comment=comment, via=SLACK)
        events += [request, decision]
        approved_by = APPROVER
        if not approve:
            return events
    key = f"t1:{proposal.action_id}"
    events.append(ExecutionStarted(action_id=proposal.action_id, name="deploy", arguments=args,
                                   idempotency_key=key, approved_by=approved_by))
    result = failure or (f"recorded deploy of {service} {version} to {env} in the local ledger. No external "
                         "system was called: set OPSGATE_DEPLOY_WEBHOOK_URL to deploy for real.")
    events.append(ActionResult(action_id=proposal.action_id, name="deploy", ok=failure is None, result=result,
                               latency_ms=12))
    return events


def _reply(message: str) -> list[Event]:
    return [ActionProposed(name="done_for_now", arguments={"message": message}, call=CALL), Done(message=message)]


def _episodes() -> Iterator[list[Event]]:
    yield [
        UserMessage(text="<@U0OPSGATE> please deploy api 1.9.0 to production, the release notes are in #eng",
                    user=REQUESTER, via=SLACK),
        AgentSelected(agent="deploy", reason="only agent"),
        ErrorEvent(kind="invalid_output", message="deploy: environment: field required", call=CALL),
        *_deploy("api", "1.9.0", "production", True, "go, release notes look fine"),
        *_reply("Deployed api 1.9.0 to production (approved by <@U07APPROVE2>)."),
    ]
    for round_ in itertools.count():
        service = SERVICES[round_ % len(SERVICES)]
        lookup = ActionProposed(name="list_deployments", arguments={"service": service}, call=CALL)
        yield [
            UserMessage(text=f"what is running for {service} right now?", user=REQUESTER, via=SLACK),
            lookup,
            ExecutionStarted(action_id=lookup.action_id, name="list_deployments", arguments={"service": service},
                             idempotency_key=f"t1:{lookup.action_id}"),
            ActionResult(action_id=lookup.action_id, name="list_deployments", result=_ledger(service, 6),
                         latency_ms=3),
            *_reply(f"{service} runs 1.8.0 in production and 1.8.1 in staging."),
        ]
        yield [
            UserMessage(text=f"ship {service} 2.{round_}.0 to production", user=REQUESTER, via=SLACK),
            *_deploy(service, f"2.{round_}.0", "production", False, "not during the incident, wait for the all-clear"),
            ActionProposed(name="request_more_information", call=CALL, arguments={
                "message": "The deploy was rejected: not during the incident. Shall I try again after it?"}),
            HumanInputRequested(message="The deploy was rejected: not during the incident. "
                                        "Shall I try again after it?"),
            HumanInputReceived(text="yes, incident is closed now, go ahead", user=REQUESTER, via=SLACK),
            *_deploy(service, f"2.{round_}.0", "production", True, None,
                     failure="ExecutionFailed: webhook unreachable after 4 attempts (HTTP 502)"),
            *_reply(f"The deploy of {service} 2.{round_}.0 was approved but the webhook failed (HTTP 502)."),
        ]


def _stable_ids(events: list[Event]) -> list[Event]:
    """Replace random ids by seeded ones (consistently), so token counts are the same on every run."""
    rng = random.Random(6)
    mapping: dict[str, str] = {}

    def stable(value: str) -> str:
        return mapping.setdefault(value, f"{rng.getrandbits(128):032x}")

    fixed: list[Event] = []
    for event in events:
        update = {k: stable(getattr(event, k)) for k in ("id", "action_id", "approval_id")
                  if isinstance(getattr(event, k, None), str)}
        if isinstance(event, ExecutionStarted):
            update["idempotency_key"] = f"t1:{update['action_id']}"
        fixed.append(event.model_copy(update=update))
    return fixed


def thread_of(n: int) -> Thread:
    """A thread holding exactly the first ``n`` events of the scripted conversation."""
    events = list(itertools.islice(itertools.chain.from_iterable(_episodes()), n))
    return Thread(id="t1", agent="deploy", events=_stable_ids(events))
