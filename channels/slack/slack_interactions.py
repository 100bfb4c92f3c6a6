"""Approve / Reject / Edit clicks and the reject and edit modals -> ``service.decide``.

Who decides is the signed payload's ``user.id`` (with the email Slack reports for it, channels/slack/users.py),
never anything in a button value or private_metadata (those only say which approval). ``service.decide`` is
the authority (bot/authorization.py: approvers, four-eyes; first decision wins) and records refused decisions
in the thread; the pre-check before a modal opens asks ``bot.approvals.check``, the same rules, to spare a
refused person from typing a reason for nothing, and records its refusals the same way. Every refusal is
also logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog

from bot.approvals import check
from bot.errors import (
    AlreadyDecided,
    Conflict,
    InvalidArguments,
    NotAuthorized,
    NotWaiting,
    Signal,
    ThreadNotFound,
)
from bot.events import Via
from bot.people import Actor
from bot.service import Service
from bot.thread import PendingApproval
from channels.slack.slack_blocks import (
    EDIT_INPUT,
    REASON_BLOCK,
    REASON_INPUT,
    Block,
    edit_block_id,
    edit_fields,
    edit_modal,
    reject_modal,
    who,
)
from channels.slack.slack_payloads import BlockActions, CardRef, ViewSubmission
from channels.slack.users import ActorLookup, id_only

log = structlog.get_logger("opsgate.slack")
audit = structlog.get_logger("opsgate.audit")

CHANNEL = "slack"
MAX_METADATA = 3000  # Slack's limit for a modal's private_metadata


@dataclass(frozen=True)
class Answer:
    """The reply to a click: a private note, a modal to open, or nothing (the card update says it all)."""

    ephemeral: str | None = None
    view: Block | None = None


def refusal(exc: Signal) -> str:
    """What the person is told when their decision does not count."""
    if isinstance(exc, AlreadyDecided):
        return f"Already {'approved' if exc.approved else 'rejected'} by {who(exc.by)}."
    if isinstance(exc, NotAuthorized):
        return f":no_entry: You can't decide this one: {exc}. Nothing was changed."
    if isinstance(exc, NotWaiting):
        return "This approval is no longer pending."
    if isinstance(exc, ThreadNotFound):
        return "opsgate no longer knows the thread of this approval."
    if isinstance(exc, Conflict):
        return "The thread is busy; try again in a moment."
    return str(exc)


def _refused(exc: Signal, ref: CardRef, user: str, attempt: str) -> None:
    event = "approval_refused" if isinstance(exc, NotAuthorized) else "approval_not_applied"
    (audit.warning if isinstance(exc, NotAuthorized) else log.info)(
        event, channel=CHANNEL, thread_id=ref.thread_id, approval_id=ref.approval_id, user=user,
        attempt=attempt, reason=str(exc),
    )


async def _precheck_refused(service: Service, exc: Signal, ref: CardRef, user: Actor, attempt: str) -> Answer:
    """A modal that will not open: audit it like a refused decision, and tell the person why."""
    _refused(exc, ref, user.id, attempt)
    if isinstance(exc, NotAuthorized | AlreadyDecided):
        await service.record_refusal(ref.thread_id, ref.approval_id, user, str(exc), _via(ref))
    return Answer(ephemeral=refusal(exc))


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


async def approve(click: BlockActions, service: Service, actor_of: ActorLookup = id_only) -> Answer:
    """Approve button: decide as the signed ``user.id``; the card update comes through the outbox."""
    ref, user = _ref(click), click.user.id
    try:
        actor = await actor_of(user)
        await service.decide(ref.thread_id, ref.approval_id, approved=True, user=actor, via=_via(ref))
    except Signal as exc:
        _refused(exc, ref, user, "approve")
        return Answer(ephemeral=refusal(exc))
    log.info("slack_approved", thread_id=ref.thread_id, approval_id=ref.approval_id, user=user)
    return Answer()


async def open_reject(click: BlockActions, service: Service, actor_of: ActorLookup = id_only) -> Answer:
    """Reject button: ask for the reason in a modal (only people who may reject get one)."""
    ref, user = _ref(click), await actor_of(click.user.id)
    try:
        pending = await precheck(service, ref, user, approving=False)
    except Signal as exc:
        return await _precheck_refused(service, exc, ref, user, "reject")
    return Answer(view=reject_modal(ref, pending.action, pending.arguments))


async def open_edit(click: BlockActions, service: Service, actor_of: ActorLookup = id_only) -> Answer:
    """Edit button: a modal with the arguments; submitting approves the edited action."""
    ref, user = _ref(click), await actor_of(click.user.id)
    try:
        pending = await precheck(service, ref, user, approving=True)
        thread = await service.get_thread(ref.thread_id)
        agent = service.registry.get(thread.agent or service.registry.default)
    except Signal as exc:
        return await _precheck_refused(service, exc, ref, user, "edit")
    action = agent.action(pending.action)
    required = set(action.model_json_schema().get("required", [])) if action else set()
    ref = ref.model_copy(update={"fields": edit_fields(pending.arguments, required)})
    if len(ref.to_value()) > MAX_METADATA:
        return Answer(ephemeral="This action has too many arguments to edit in Slack: approve or reject it here, "
                                "or edit it in the opsgate web inbox.")
    return Answer(view=edit_modal(ref, pending.action, pending.arguments))


async def submit_reject(
    submission: ViewSubmission, service: Service, actor_of: ActorLookup = id_only
) -> dict[str, str] | None:
    """Reject modal submitted: the reason is required and goes back to the model. Returns input errors."""
    ref, user = CardRef.parse(submission.view.private_metadata), submission.user.id
    reason = submission.value(REASON_BLOCK, REASON_INPUT)
    if reason is None:
        return {REASON_BLOCK: "Please say why, so the agent can propose something better."}
    try:
        await service.decide(
            ref.thread_id, ref.approval_id, approved=False, user=await actor_of(user), via=_via(ref),
            comment=reason,
        )
    except Signal as exc:
        _refused(exc, ref, user, "reject")
        return {REASON_BLOCK: refusal(exc)}
    log.info("slack_rejected", thread_id=ref.thread_id, approval_id=ref.approval_id, user=user)
    return None


def _edited_arguments(submission: ViewSubmission, ref: CardRef) -> tuple[dict[str, Any], dict[str, str]]:
    arguments: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in ref.fields:
        block = edit_block_id(field.name)
        raw = submission.value(block, EDIT_INPUT)
        if raw is None:
            if field.required:
                errors[block] = f"{field.name} is required"
            continue
        if field.json_value:
            try:
                arguments[field.name] = json.loads(raw)
            except ValueError:
                errors[block] = f"{field.name} must be a JSON value such as 3, true or [\"a\"]"
                continue
        else:
            arguments[field.name] = raw
    return arguments, errors


def argument_errors(message: str, ref: CardRef) -> dict[str, str]:
    """Place ``field: problem; other: problem`` under each field's input (the first one when unknown)."""
    names = {f.name for f in ref.fields}
    errors: dict[str, str] = {}
    fallback = edit_block_id(ref.fields[0].name) if ref.fields else REASON_BLOCK
    for part in message.split("; "):
        name = part.split(":", 1)[0].split(".", 1)[0].strip()
        block = edit_block_id(name) if name in names else fallback
        errors[block] = f"{errors[block]}; {part}" if block in errors else part
    return errors


async def submit_edit(
    submission: ViewSubmission, service: Service, actor_of: ActorLookup = id_only
) -> dict[str, str] | None:
    """Edit modal submitted: approve with the edited arguments, validated against the action's schema."""
    ref, user = CardRef.parse(submission.view.private_metadata), submission.user.id
    arguments, errors = _edited_arguments(submission, ref)
    if errors:
        return errors
    try:
        await service.decide(
            ref.thread_id, ref.approval_id, approved=True, user=await actor_of(user), via=_via(ref),
            arguments=arguments,
        )
    except InvalidArguments as exc:
        return argument_errors(str(exc), ref)
    except Signal as exc:
        _refused(exc, ref, user, "edit")
        block = edit_block_id(ref.fields[0].name) if ref.fields else REASON_BLOCK
        return {block: refusal(exc)}
    log.info("slack_approved_edited", thread_id=ref.thread_id, approval_id=ref.approval_id, user=user)
    return None
