"""Thread events -> mails to send (``OutgoingMail``), pure: the journal writes them to the outbox in the same
transaction as the events, each with its Message-ID already chosen, so a retried delivery is the same mail.

Who gets what:
- the requester of a thread that came in by email: one reply per commit that says something to them (approval
  needed, result of an approved action, a question, the final answer, a failure), threaded under their mail;
- every person who may approve a pending approval by email (bot/authorization.py ``email_approvers``: who may
  approve by email is who gets the mail), for a thread from any channel: an approval request whose Reply-To
  carries their token (added at delivery, the secret never enters the outbox);
- whoever decided by email: a short confirmation in their approval conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from bot.authorization import email_approvers
from bot.claims import SUMMARY_LABEL, claims_note, quote_heading
from bot.config import Settings
from bot.events import (
    ActionResult,
    ApprovalDecided,
    ApprovalEscalated,
    ApprovalReminded,
    ApprovalRequested,
    DecisionRefused,
    Done,
    ErrorEvent,
    Event,
    ExecutionStarted,
    HumanInputReceived,
    HumanInputRequested,
    Quote,
    ThreadCancelled,
    UserMessage,
)
from bot.people import acted
from bot.thread import Thread
from channels.email.addresses import Address, MailKind, make_message_id
from channels.email.decisions import FORMAT_HELP, UNCLEAR
from channels.email.inbound import InboundMail
from channels.email.tokens import TOKEN_TTL

_QUOTE_LIMIT = 600
_HIDDEN_ARGUMENTS = ("reason",)


class OutgoingMail(BaseModel):
    """One mail as stored in an outbox row's payload."""

    kind: MailKind
    to: str
    subject: str
    text: str
    message_id: str
    in_reply_to: str | None = None
    references: list[str] = []
    thread_id: str | None = None
    approval_id: str | None = None  # approval mails: the Reply-To token is made for (approval_id, to)


@dataclass(frozen=True)
class MailConfig:
    """What the converters need to know about us."""

    address: Address
    approvals: bool  # send approval requests by email (IMAP and SMTP configured: replies can be read)
    settings: Settings  # who may approve by email (people, approver groups, four-eyes)


# --- wording ----------------------------------------------------------------------------------------------------


def describe_action(name: str, arguments: dict[str, Any], summary: str | None = None) -> str:
    """The agent's own description of the action (``summary``), else its name and argument values."""
    if summary:
        return summary
    values = [str(v) for k, v in arguments.items() if k not in _HIDDEN_ARGUMENTS and v is not None]
    return " ".join([name, *values])


def _shown(arguments: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in arguments.items() if k not in _HIDDEN_ARGUMENTS}


def describe_request(request: ApprovalRequested, arguments: dict[str, Any] | None = None) -> str:
    """An approval request as people see it; edited ``arguments`` (not what was described) drop the summary."""
    if arguments is not None and _shown(arguments) != _shown(request.arguments):
        return describe_action(request.name, arguments)
    return describe_action(request.name, request.arguments, request.summary)


def reply_subject(subject: str) -> str:
    """``Re: <subject>``, without stacking prefixes."""
    subject = " ".join(subject.split()) or "your request"
    return subject if subject.lower().startswith(("re:", "aw:", "sv:")) else f"Re: {subject}"


def shortened(text: str, limit: int = _QUOTE_LIMIT) -> str:
    """``text`` stripped, and cut to ``limit`` characters with an ellipsis when longer (the thread keeps it whole)."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _arguments_block(arguments: dict[str, Any]) -> str:
    return "\n".join(f"  {k}: {v}" for k, v in arguments.items() if k not in _HIDDEN_ARGUMENTS)


def approval_text(thread: Thread, request: ApprovalRequested) -> str:
    """The body of an approval request: the action, its arguments, who asked and why, how to answer."""
    who = acted(request.requester, request.requester_person) if request.requester else thread.requester or "someone"
    lines = [
        f"{who} asked for an action that needs your approval.",
        "",
        f"Action: {describe_request(request)}",
        _arguments_block(request.arguments),
    ]
    lines += _who_claims_what(thread, request)
    lines += ["", "To answer, reply to this email with one of these as the first line:", "",
              "  APPROVE", "  REJECT: <your reason>", "",
              "Only the first line of your reply is read, and only from your own address. "
              f"Replies count for {TOKEN_TTL.days} days."]
    if request.four_eyes and request.requester:
        lines.append(f"Four-eyes rule: {acted(request.requester, request.requester_person)} may not approve this "
                     "request themselves, from any channel.")
    lines += ["", f"opsgate thread {thread.id}, approval {request.approval_id}"]
    return "\n".join(lines)


def _who_claims_what(thread: Thread, request: ApprovalRequested) -> list[str]:
    """People's own words quoted and attributed, then the agent's labelled summary and any claim flagged."""
    first = thread.first_message
    quotes = request.quotes or ([Quote(by=first.user, text=first.text)] if first is not None else [])
    lines: list[str] = []
    for quote in quotes:
        lines += ["", f"{quote_heading(quote.by)}:", *(f"  | {line}" for line in shortened(quote.text).splitlines())]
    lines += ["", f"{SUMMARY_LABEL}: {request.reason or 'none given'}"]
    note = claims_note(request.claims)
    if note:
        lines += ["", f"Warning: {note}"]
    return lines


def requester_lines(thread: Thread, event: Event) -> list[str]:
    """What the requester should read about one event (empty when nothing)."""
    if isinstance(event, ApprovalRequested):
        who = ", ".join(event.approvers) or "an approver"
        return [f"{describe_request(event)} needs approval; I asked {who}. "
                "I will write again when it is decided."]
    if isinstance(event, ActionResult):
        started = next((e for e in thread.events if isinstance(e, ExecutionStarted)
                        and e.action_id == event.action_id), None)
        if started is None or started.approved_by is None:
            return []  # unapproved steps feed the agent, which answers with its own words
        state = "done" if event.ok else "FAILED"
        request = next((e for e in thread.events if isinstance(e, ApprovalRequested)
                        and e.action_id == started.action_id), None)
        what = describe_request(request, started.arguments) if request else describe_action(
            started.name, started.arguments)
        return [f"{what} (approved by {started.approved_by}): "
                f"{state}.", "", event.result]
    if isinstance(event, HumanInputRequested | Done):
        return [event.message]
    if isinstance(event, ErrorEvent) and event.public:
        return [f"Sorry, I could not finish this request: {event.message}"]
    if isinstance(event, ApprovalDecided) and event.closed_by == "expiry":
        return [f"Nobody decided in time: {event.comment or 'the request expired'}."]
    if isinstance(event, ThreadCancelled):
        return [f"Cancelled by {event.by}{': ' + event.reason if event.reason else ''}. Nothing more will run; "
                "write again to start over."]
    return []


# --- threading ------------------------------------------------------------------------------------------------


def _email_messages(thread: Thread) -> list[str]:
    return [e.via.message for e in thread.events
            if isinstance(e, UserMessage | HumanInputReceived) and e.via.channel == "email" and e.via.message]


def _subject_of(thread: Thread) -> str:
    first = thread.first_message
    return first.text.strip().splitlines()[0][:150] if first and first.text.strip() else ""


def _requester_reply(thread: Thread, new: Sequence[Event], config: MailConfig) -> OutgoingMail | None:
    origin = thread.origin
    if origin is None or origin.channel != "email" or not thread.requester:
        return None
    paragraphs = [lines for event in new if (lines := requester_lines(thread, event))]
    if not paragraphs:
        return None
    if thread.outcome is not None:
        paragraphs.append([f"Outcome: {thread.outcome}."])
    received = _email_messages(thread)
    parent = received[-1] if received else origin.message
    root = origin.conversation or origin.message
    references = list(dict.fromkeys(r for r in (root, parent) if r))
    return OutgoingMail(
        kind="reply", to=thread.requester, subject=reply_subject(_subject_of(thread)),
        text="\n\n".join("\n".join(p) for p in paragraphs), thread_id=thread.id,
        message_id=make_message_id(thread.id, "reply", config.address.domain),
        in_reply_to=parent, references=references,
    )


def _approval_requests(thread: Thread, request: ApprovalRequested, config: MailConfig) -> list[OutgoingMail]:
    pending = thread.pending
    if pending is None or pending.approval_id != request.approval_id:
        return []  # decided in the same commit (nothing to ask any more)
    mails = []
    for approver in email_approvers(pending, config.settings):
        mails.append(OutgoingMail(
            kind="approval", to=approver, thread_id=thread.id, approval_id=request.approval_id,
            subject=f"[opsgate] Approval needed: {describe_request(request)}",
            text=approval_text(thread, request),
            message_id=make_message_id(thread.id, "approval", config.address.domain),
        ))
    return mails


def _lifecycle_mails(
    thread: Thread, event: ApprovalReminded | ApprovalEscalated, config: MailConfig
) -> list[OutgoingMail]:
    """A reminder (to every email approver) or an escalation (to the escalation group's): an approval mail again,
    with its own Reply-To token made at delivery, so the same token rules apply."""
    pending = thread.pending
    request = thread.approval_request(event.approval_id)
    if pending is None or pending.approval_id != event.approval_id or request is None:
        return []
    recipients = email_approvers(pending, config.settings)
    if isinstance(event, ApprovalEscalated):
        group = {p.name for p in config.settings.people.members(config.settings.approver_groups.get(event.group, []))}
        recipients = [a for a in recipients if config.settings.people.person_of(a).name in group]
        head = (f"Nobody has decided this yet, so it was escalated to group {event.group}: you may decide it now.")
        label = "Escalated"
    else:
        head = f"Reminder {event.number}: this request is still waiting for a decision."
        label = f"Reminder {event.number}"
    if event.expires_at is not None:
        head += f" It expires at {event.expires_at:%Y-%m-%d %H:%M} UTC; then it is rejected."
    return [OutgoingMail(
        kind="approval", to=approver, thread_id=thread.id, approval_id=event.approval_id,
        subject=f"[opsgate] {label}: Approval needed: {describe_request(request)}",
        text=f"{head}\n\n{approval_text(thread, request)}",
        message_id=make_message_id(thread.id, "approval", config.address.domain),
    ) for approver in recipients]


def _confirmation(thread: Thread, decided: ApprovalDecided, config: MailConfig) -> OutgoingMail | None:
    if decided.via.channel != "email" or decided.closed_by != "decision":
        return None  # a withdrawal is answered in the requester's own reply
    request = thread.approval_request(decided.approval_id)
    what = describe_request(request) if request else "the action"
    verdict = "Approved: it runs now." if decided.approved else f"Rejected: {decided.comment or 'no reason'}."
    parent = decided.via.message
    return OutgoingMail(
        kind="notice", to=decided.by, thread_id=thread.id,
        subject=reply_subject(f"[opsgate] Approval needed: {what}"),
        text=f"Recorded your decision on {what}.\n\n{verdict}",
        message_id=make_message_id(thread.id, "notice", config.address.domain),
        in_reply_to=parent, references=[r for r in (decided.via.conversation, parent) if r],
    )


def _refusal(thread: Thread, refused: DecisionRefused, config: MailConfig) -> OutgoingMail | None:
    if refused.via.channel != "email" or not refused.by or "@" not in refused.by:
        return None
    request = thread.approval_request(refused.approval_id) if refused.approval_id else None
    what = describe_request(request) if request else "an opsgate request"
    text = f"Your decision on {what} was not accepted: {refused.reason}.\n\nNothing was executed."
    if refused.reason.startswith(UNCLEAR):
        text += f"\n\n{FORMAT_HELP}"
    parent = refused.via.message
    return OutgoingMail(
        kind="notice", to=refused.by, thread_id=thread.id,
        subject=reply_subject(f"[opsgate] Approval needed: {what}" if request else "opsgate"),
        text=text, message_id=make_message_id(thread.id, "notice", config.address.domain),
        in_reply_to=parent, references=[r for r in (refused.via.conversation, parent) if r],
    )


def mails_for(thread: Thread, new: Sequence[Event], config: MailConfig) -> list[OutgoingMail]:
    """Every mail caused by appending ``new`` to ``thread`` (``thread`` already contains them)."""
    mails: list[OutgoingMail] = []
    reply = _requester_reply(thread, new, config)
    if reply is not None:
        mails.append(reply)
    for event in new:
        if isinstance(event, ApprovalRequested) and config.approvals:
            mails.extend(_approval_requests(thread, event, config))
        elif isinstance(event, ApprovalReminded | ApprovalEscalated) and config.approvals:
            mails.extend(_lifecycle_mails(thread, event, config))
        elif isinstance(event, ApprovalDecided):
            confirmation = _confirmation(thread, event, config)
            if confirmation is not None:
                mails.append(confirmation)
        elif isinstance(event, DecisionRefused):
            refusal = _refusal(thread, event, config)
            if refusal is not None:
                mails.append(refusal)
    return mails


def answer(mail: InboundMail, text: str, config: MailConfig, thread_id: str | None = None) -> OutgoingMail:
    """A direct answer to one inbound mail (refused decision, unclear reply), threaded under it."""
    return OutgoingMail(
        kind="notice", to=mail.sender, subject=reply_subject(mail.subject), text=text, thread_id=thread_id,
        message_id=make_message_id(thread_id or "none", "notice", config.address.domain),
        in_reply_to=mail.message_id, references=[*mail.references[-8:], mail.message_id],
    )
