"""Thread events -> Slack outbox items, for threads that started in Slack. Pure: no I/O, no clock.

Every reply goes into the Slack thread of the request (``thread_ts`` = the thread's root ts). A thread started
by ``/opsgate`` has no Slack message yet, so its first item posts the root and later items wait for its ts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from bot.events import (
    ActionResult,
    ApprovalDecided,
    ApprovalEscalated,
    ApprovalReminded,
    ApprovalRequested,
    Done,
    ErrorEvent,
    Event,
    HumanInputRequested,
    ThreadCancelled,
    UserMessage,
)
from bot.store import OutboxItem
from bot.thread import Thread
from channels.slack import limits
from channels.slack.limits import fit, fit_escaped
from channels.slack.slack_blocks import Block, approval_card, decided_card, summary, when, who

CHANNEL = "slack"
# How a finished request ended, at the head of its final message (bot/thread.py ``outcome``).
OUTCOME_LABELS = {
    "executed": ":white_check_mark: *Executed*", "rejected": ":no_entry: *Rejected*",
    "expired": ":hourglass: *Expired*", "cancelled": ":leftwards_arrow_with_hook: *Cancelled*",
    "answered": ":speech_balloon: *Answered*", "failed": ":x: *Failed*",
}
ROOT_TEXT = 1000  # the request quoted in the root post of a slash-command thread


class SlackPost(BaseModel):
    """chat.postMessage. ``thread_ts`` None means "the root we posted for this thread" (slash commands)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["post"] = "post"
    channel: str
    thread_ts: str | None
    text: str
    blocks: list[Block] | None = None
    # reply: in the thread; root: a slash command's root; card: an approval card in the thread; lone_card: an
    # approval card starting its own Slack thread (SLACK_APPROVALS_CHANNEL); under_card: a reply under that card.
    role: Literal["reply", "root", "card", "lone_card", "under_card"] = "reply"
    approval_id: str | None = None  # cards: their ts is stored to update them later; under_card: which card


class SlackCardUpdate(BaseModel):
    """chat.update of an approval card once decided (posted anew if the card never made it)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["update"] = "update"
    channel: str
    thread_ts: str | None
    approval_id: str
    text: str
    blocks: list[Block]
    lone: bool = False  # a card in the approvals channel: if it is gone, the decision is posted there on its own


SlackMessage = Annotated[SlackPost | SlackCardUpdate, Field(discriminator="kind")]
MESSAGE_ADAPTER: TypeAdapter[SlackPost | SlackCardUpdate] = TypeAdapter(SlackMessage)


def slack_origin(thread: Thread) -> tuple[str, str | None] | None:
    """(channel id, root ts) when the thread started in Slack, else None."""
    origin = thread.origin
    if origin is None or origin.channel != CHANNEL or not origin.conversation:
        return None
    return origin.conversation, origin.message


def approvals_channel_messages(
    thread: Thread, new: Sequence[Event], channel: str, inbox_url: str | None, *, editable: bool = True,
) -> list[SlackPost | SlackCardUpdate]:
    """For a thread that did not start in Slack: its approval cards in the approvals channel, each starting its
    own Slack thread, with reminders and escalations under it and the card updated when the request closes."""
    out: list[SlackPost | SlackCardUpdate] = []
    for event in new:
        if isinstance(event, ApprovalRequested):
            text, blocks = approval_card(thread.id, event, editable=editable)
            origin = thread.origin.channel if thread.origin else "api"
            link = f" · <{inbox_url}/t/{thread.id}|open the thread in the inbox>" if inbox_url else ""
            blocks.insert(0, {"type": "context", "elements": [
                {"type": "mrkdwn", "text": fit(f"Requested via {origin}{link}", limits.SECTION_TEXT)}]})
            out.append(SlackPost(channel=channel, thread_ts=None, text=text, blocks=blocks, role="lone_card",
                                 approval_id=event.approval_id))
        elif isinstance(event, ApprovalDecided):
            request = thread.approval_request(event.approval_id)
            if request is not None:
                text, blocks = decided_card(request, event)
                out.append(SlackCardUpdate(channel=channel, thread_ts=None, approval_id=event.approval_id,
                                           text=text, blocks=blocks, lone=True))
        elif isinstance(event, ApprovalReminded | ApprovalEscalated):
            request = thread.approval_request(event.approval_id)
            if request is not None:
                out.append(SlackPost(channel=channel, thread_ts=None, role="under_card",
                                     approval_id=event.approval_id,
                                     text=fit(lifecycle_note(request, event), limits.TEXT)))
    return out


def messages_for(
    thread: Thread, new: Sequence[Event], *, editable: bool = True, approvals_channel: str | None = None,
    inbox_url: str | None = None,
) -> list[SlackPost | SlackCardUpdate]:
    """The Slack messages that ``new`` events of ``thread`` call for."""
    where = slack_origin(thread)
    if where is None:
        if approvals_channel:
            return approvals_channel_messages(thread, new, approvals_channel, inbox_url, editable=editable)
        return []
    channel, root = where
    out: list[SlackPost | SlackCardUpdate] = []

    def reply(prefix: str, text: str) -> None:
        # The prefix is ours (emoji, action name in backticks); the rest came from the model or a tool.
        body = fit_escaped(text, limits.TEXT - limits.length(prefix)) if text else "-"
        out.append(SlackPost(channel=channel, thread_ts=root, text=prefix + body))

    first = thread.first_message
    for event in new:
        if isinstance(event, UserMessage):
            if root is None and first is not None and event.id == first.id:
                asker = f"{who(event.user)} asked" if event.user else "Asked"
                said = fit_escaped(event.text.replace("`", "'"), ROOT_TEXT) or "-"
                out.append(SlackPost(channel=channel, thread_ts=None, role="root", text=f"{asker}: `{said}`"))
        elif isinstance(event, HumanInputRequested):
            reply(":question: ", event.message)
        elif isinstance(event, Done):
            label = OUTCOME_LABELS.get(thread.outcome or "") if event is new[-1] else None
            reply("", event.message)
            body = out[-1].text
            if label and len(body) <= limits.SECTION_TEXT:  # the outcome under the final message; text unchanged
                out[-1] = out[-1].model_copy(update={"blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": body}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Outcome: {label}"}]},
                ]})
        elif isinstance(event, ActionResult):
            name = fit_escaped(event.name.replace("`", "'"), 100)
            if event.ok:
                reply(f":white_check_mark: `{name}`: ", event.result)
            else:
                reply(f":x: `{name}` failed: ", event.result)
        elif isinstance(event, ErrorEvent) and event.public:
            reply(":warning: ", event.message)
        elif isinstance(event, ApprovalReminded | ApprovalEscalated):
            request = thread.approval_request(event.approval_id)
            if request is not None:  # built from escaped parts: posted as it is
                out.append(SlackPost(channel=channel, thread_ts=root, text=fit(lifecycle_note(request, event),
                                                                                limits.TEXT)))
        elif isinstance(event, ThreadCancelled):
            reply(f":leftwards_arrow_with_hook: *Cancelled* by {who(event.by)}: ", event.reason or "withdrawn")
        elif isinstance(event, ApprovalRequested):
            text, blocks = approval_card(thread.id, event, editable=editable)
            out.append(SlackPost(
                channel=channel, thread_ts=root, text=text, blocks=blocks, role="card",
                approval_id=event.approval_id,
            ))
        elif isinstance(event, ApprovalDecided):
            request = thread.approval_request(event.approval_id)
            if request is not None:
                text, blocks = decided_card(request, event)
                out.append(SlackCardUpdate(
                    channel=channel, thread_ts=root, approval_id=event.approval_id, text=text, blocks=blocks,
                ))
    return out


def lifecycle_note(request: ApprovalRequested, event: ApprovalReminded | ApprovalEscalated) -> str:
    """A reminder or an escalation, mentioning who may decide (Slack ids become mentions, the rest is escaped)."""
    what = fit_escaped(summary(request.name, request.arguments), 500)
    people = ", ".join(who(a) for a in event.approvers[:30]) or "the approvers"
    expiry = f" It expires {when(event.expires_at)}, then it is rejected." if event.expires_at else ""
    if isinstance(event, ApprovalEscalated):
        group = fit_escaped(event.group, 100)
        return (f":rotating_light: Nobody has decided *{what}* yet: escalated to group *{group}*. {people}, "
                f"you may approve or reject it now.{expiry}")
    return f":bell: Reminder {event.number}: *{what}* is waiting for a decision from {people}.{expiry}"


def outbound(
    thread: Thread, new: Sequence[Event], *, editable: bool = True, approvals_channel: str | None = None,
    inbox_url: str | None = None,
) -> list[OutboxItem]:
    """Outbox items (written in the same transaction as ``new``) for the Slack messages they call for."""
    return [
        OutboxItem(channel=CHANNEL, thread_id=thread.id, payload=message.model_dump(mode="json"))
        for message in messages_for(thread, new, editable=editable, approvals_channel=approvals_channel,
                                    inbox_url=inbox_url)
    ]
