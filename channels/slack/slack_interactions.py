"""Approve / Reject / Edit clicks and the reject and edit modals -> ``service.decide``.

Who decides is the signed payload's ``user.id`` (with the email Slack reports for it, channels/slack/users.py),
never anything in a button value or private_metadata (those only say which approval). ``service.decide`` is
the authority (bot/authorization.py: approvers, four-eyes; first decision wins) and records refused decisions
in the thread; the pre-check before a modal opens asks ``bot.approvals.check``, the same rules, to spare a
refused person from typing a reason for nothing, and records its refusals the same way. Every refusal is
also logged.

Replays (``replay.py``): each handler takes the ``refs`` naming the signed request and records them with
whatever the request causes (the decision, the refusal) or, when it causes nothing durable, on their own before
answering. A request whose ref is already known is a replay: ``Answer(replayed=True)``, nothing decided,
nothing posted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from bot.approvals import check
from bot.errors import (
    AlreadyDecided,
    Conflict,
    DuplicateRef,
    InvalidArguments,
    NotAuthorized,
    NotRequester,
    NotWaiting,
    Signal,
    ThreadNotFound,
)
from bot.events import Via
from bot.people import Actor
from bot.service import Service
from bot.store import Ref
from bot.thread import PendingApproval
from channels.slack import limits
from channels.slack.limits import fit_escaped
from channels.slack.replay import claim
from channels.slack.slack_blocks import (
    EDIT_INPUT,
    REASON_BLOCK,
    REASON_INPUT,
    Block,
    EditPlan,
    edit_block_id,
    edit_modal,
    edit_plan,
    reject_modal,
    show_value,
    who,
)
from channels.slack.slack_payloads import BlockActions, CardRef, ViewSubmission
from channels.slack.users import ActorLookup, id_only

log = structlog.get_logger("opsgate.slack")
audit = structlog.get_logger("opsgate.audit")

CHANNEL = "slack"
ERROR_TEXT = 1000  # an input error under a modal field


@dataclass(frozen=True)
class Answer:
    """The reply to a click: a private note, a modal to open, or nothing (the card update says it all)."""

    ephemeral: str | None = None
    view: Block | None = None
    replayed: bool = False


REPLAYED = Answer(replayed=True)


def refusal(exc: Signal) -> str:
    """What the person is told when their decision does not count (escaped: it may quote identities)."""
    if isinstance(exc, AlreadyDecided) and exc.closed_by == "expiry":
        return ":hourglass: Too late: this request expired before it was decided, so it was rejected."
    if isinstance(exc, AlreadyDecided) and exc.closed_by == "withdrawal":
        return "The requester withdrew this request."
    if isinstance(exc, AlreadyDecided):
        return f"Already {'approved' if exc.approved else 'rejected'} by {who(exc.by)}."
    if isinstance(exc, NotAuthorized):
        return f":no_entry: You can't decide this one: {fit_escaped(str(exc), 2000)}. Nothing was changed."
    if isinstance(exc, NotRequester):
        return f":no_entry: {fit_escaped(str(exc), 2000)}. Nothing was changed."
    if isinstance(exc, NotWaiting):
        return "This approval is no longer pending."
    if isinstance(exc, ThreadNotFound):
        return "opsgate no longer knows the thread of this approval."
    if isinstance(exc, Conflict):
        return "The thread is busy; try again in a moment."
    return fit_escaped(str(exc), limits.TEXT)


def _refused(exc: Signal, ref: CardRef, user: str, attempt: str) -> None:
    event = "approval_refused" if isinstance(exc, NotAuthorized) else "approval_not_applied"
    (audit.warning if isinstance(exc, NotAuthorized) else log.info)(
        event, channel=CHANNEL, thread_id=ref.thread_id, approval_id=ref.approval_id, user=user,
        attempt=attempt, reason=str(exc),
    )


async def _not_applied(
    service: Service, exc: Signal, ref: CardRef, user: str, attempt: str, refs: Sequence[Ref], *, recorded: bool,
) -> Answer:
    """A click that decides nothing: log it, keep the request's refs, and tell the person why (once)."""
    _refused(exc, ref, user, attempt)
    if not recorded and not await claim(service.store, refs):
        return REPLAYED
    return Answer(ephemeral=refusal(exc))


async def _precheck_refused(
    service: Service, exc: Signal, ref: CardRef, user: Actor, attempt: str, refs: Sequence[Ref],
) -> Answer:
    """A modal that will not open: audit it like a refused decision, and tell the person why."""
    recorded = isinstance(exc, NotAuthorized | AlreadyDecided)
    if recorded:
        try:
            await service.record_refusal(ref.thread_id, ref.approval_id, user, str(exc), _via(ref), refs=refs)
        except DuplicateRef:
            return REPLAYED
    return await _not_applied(service, exc, ref, user.id, attempt, refs, recorded=recorded)


def _ref(click: BlockActions) -> CardRef:
    ref = CardRef.parse(click.action.value)
    return ref.model_copy(update={
        "channel": click.channel_id, "message_ts": click.message_ts, "thread_ts": click.thread_ts,
    })


def _via(ref: CardRef) -> Via:
    return Via(channel=CHANNEL, conversation=ref.channel, message=ref.message_ts)


async def precheck(service: Service, ref: CardRef, user: Actor, *, approving: bool) -> PendingApproval:
    """Raise the signal ``service.decide`` would raise for this person, without writing anything."""
    thread = await service.get_thread(ref.thread_id)
    pending, _ = check(thread, ref.approval_id, user, CHANNEL, service.settings, approving=approving)
    return pending


async def approve(
    click: BlockActions, service: Service, actor_of: ActorLookup = id_only, refs: Sequence[Ref] = (),
) -> Answer:
    """Approve button: decide as the signed ``user.id``; the card update comes through the outbox."""
    ref, user = _ref(click), click.user.id
    try:
        actor = await actor_of(user)
        await service.decide(ref.thread_id, ref.approval_id, approved=True, user=actor, via=_via(ref), refs=refs)
    except DuplicateRef:
        return REPLAYED
    except Signal as exc:
        recorded = isinstance(exc, NotAuthorized | AlreadyDecided)  # decide kept the refusal, with the refs
        return await _not_applied(service, exc, ref, user, "approve", refs, recorded=recorded)
    log.info("slack_approved", thread_id=ref.thread_id, approval_id=ref.approval_id, user=user)
    return Answer()


async def withdraw(
    click: BlockActions, service: Service, actor_of: ActorLookup = id_only, refs: Sequence[Ref] = (),
) -> Answer:
    """Withdraw button: the requester takes the request back (checked now, as the signed ``user.id``)."""
    ref, user = _ref(click), click.user.id
    try:
        actor = await actor_of(user)
        await service.cancel(ref.thread_id, user=actor, via=_via(ref), refs=refs)
    except DuplicateRef:
        return REPLAYED
    except Signal as exc:
        return await _not_applied(service, exc, ref, user, "withdraw", refs, recorded=False)
    log.info("slack_withdrawn", thread_id=ref.thread_id, approval_id=ref.approval_id, user=user)
    return Answer()


async def open_reject(
    click: BlockActions, service: Service, actor_of: ActorLookup = id_only, refs: Sequence[Ref] = (),
) -> Answer:
    """Reject button: ask for the reason in a modal (only people who may reject get one)."""
    ref, user = _ref(click), await actor_of(click.user.id)
    try:
        pending = await precheck(service, ref, user, approving=False)
    except Signal as exc:
        return await _precheck_refused(service, exc, ref, user, "reject", refs)
    if not await claim(service.store, refs):
        return REPLAYED
    return Answer(view=reject_modal(ref, pending.action, pending.arguments))


async def _plan(service: Service, ref: CardRef) -> tuple[dict[str, Any], EditPlan]:
    """The approval's arguments and what the edit modal offers of them (ThreadNotFound/NotWaiting if gone)."""
    thread = await service.get_thread(ref.thread_id)
    request = thread.approval_request(ref.approval_id)
    if request is None:
        raise NotWaiting(f"thread {ref.thread_id} has no approval {ref.approval_id}")
    agent = service.registry.get(thread.agent or service.registry.default)
    action = agent.action(request.name)
    required = set(action.model_json_schema().get("required", [])) if action else set()
    return request.arguments, edit_plan(request.arguments, required)


async def open_edit(
    click: BlockActions, service: Service, actor_of: ActorLookup = id_only, refs: Sequence[Ref] = (),
) -> Answer:
    """Edit button: a modal with the arguments; submitting approves the edited action."""
    ref, user = _ref(click), await actor_of(click.user.id)
    try:
        pending = await precheck(service, ref, user, approving=True)
        arguments, plan = await _plan(service, ref)
    except Signal as exc:
        return await _precheck_refused(service, exc, ref, user, "edit", refs)
    if not await claim(service.store, refs):
        return REPLAYED
    if not plan.fields:
        return Answer(ephemeral="None of these arguments can be edited in Slack (too long): approve or reject "
                                "it here, or edit it in the opsgate web inbox.")
    return Answer(view=edit_modal(ref, pending.action, arguments, plan))


async def submit_reject(
    submission: ViewSubmission, service: Service, actor_of: ActorLookup = id_only, refs: Sequence[Ref] = (),
) -> dict[str, str] | None:
    """Reject modal submitted: the reason is required and goes back to the model. Returns input errors."""
    ref, user = CardRef.parse(submission.view.private_metadata), submission.user.id
    reason = submission.value(REASON_BLOCK, REASON_INPUT)
    if reason is None:
        return {REASON_BLOCK: "Please say why, so the agent can propose something better."}
    try:
        await service.decide(
            ref.thread_id, ref.approval_id, approved=False, user=await actor_of(user), via=_via(ref), comment=reason,
            refs=refs,
        )
    except DuplicateRef:
        return None  # a replay: the first submission decided; close the modal, change nothing
    except Signal as exc:
        _refused(exc, ref, user, "reject")
        return {REASON_BLOCK: limits.fit(refusal(exc), ERROR_TEXT)}
    log.info("slack_rejected", thread_id=ref.thread_id, approval_id=ref.approval_id, user=user)
    return None


def edited_arguments(
    submission: ViewSubmission, original: dict[str, Any], plan: EditPlan,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The original arguments with the offered ones replaced by what was typed (an emptied optional one removed).

    An input left as it was keeps the original value exactly (inputs are read stripped, values need not be).
    """
    arguments = dict(original)
    errors: dict[str, str] = {}
    for index, field in enumerate(plan.fields):
        block = edit_block_id(index)
        raw = submission.value(block, EDIT_INPUT)
        label = fit_escaped(field.name, 100)
        before = original.get(field.name)
        if (raw or "") == ("" if before is None else show_value(before).strip()):
            continue
        if raw is None:
            if field.required:
                errors[block] = f"{label} is required"
            arguments.pop(field.name, None)
            continue
        if field.json_value:
            try:
                arguments[field.name] = json.loads(raw)
            except ValueError:
                errors[block] = f"{label} must be a JSON value such as 3, true or [\"a\"]"
                continue
        else:
            arguments[field.name] = raw
    return arguments, errors


def argument_errors(message: str, plan: EditPlan) -> dict[str, str]:
    """Place ``field: problem; other: problem`` under each field's input (the first one when unknown)."""
    blocks = {f.name: edit_block_id(i) for i, f in enumerate(plan.fields)}
    errors: dict[str, str] = {}
    fallback = edit_block_id(0) if plan.fields else REASON_BLOCK
    for part in message.split("; "):
        name = part.split(":", 1)[0].split(".", 1)[0].strip()
        block = blocks.get(name, fallback)
        errors[block] = f"{errors[block]}; {part}" if block in errors else part
    return {block: limits.fit(text, ERROR_TEXT) for block, text in errors.items()}


async def submit_edit(
    submission: ViewSubmission, service: Service, actor_of: ActorLookup = id_only, refs: Sequence[Ref] = (),
) -> dict[str, str] | None:
    """Edit modal submitted: approve with the edited arguments, validated against the action's schema."""
    ref, user = CardRef.parse(submission.view.private_metadata), submission.user.id
    fallback = edit_block_id(0)
    try:
        original, plan = await _plan(service, ref)
    except Signal as exc:
        _refused(exc, ref, user, "edit")
        return {fallback: limits.fit(refusal(exc), ERROR_TEXT)}
    arguments, errors = edited_arguments(submission, original, plan)
    if errors:
        return errors
    try:
        await service.decide(
            ref.thread_id, ref.approval_id, approved=True, user=await actor_of(user), via=_via(ref),
            arguments=arguments, refs=refs,
        )
    except DuplicateRef:
        return None
    except InvalidArguments as exc:
        return argument_errors(str(exc), plan)
    except Signal as exc:
        _refused(exc, ref, user, "edit")
        return {fallback: limits.fit(refusal(exc), ERROR_TEXT)}
    log.info("slack_approved_edited", thread_id=ref.thread_id, approval_id=ref.approval_id, user=user)
    return None
