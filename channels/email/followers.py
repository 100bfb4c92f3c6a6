"""Threads started by triggers (alerts, hooks, schedules) followed by mail: OPSGATE_TRIGGER_EMAIL.

Nobody mailed such a thread, so there is no requester to answer; the configured addresses get what a requester
would read (the alert or message that started it, the agent's questions and replies, approvals asked for and
their results, the outcome), all threaded under one root mail. A reply to any of these mails continues the thread
like any mail answering ours (channels/email/intake.py): the answer to a question, or a follow-up. Approval
requests still go to the email approvers with their own token mails, as for every thread.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.events import Event, UserMessage
from bot.thread import Thread
from bot.triggers import started_by_trigger
from channels.email.addresses import make_message_id, thread_root_id
from channels.email.outbound import MailConfig, OutgoingMail, reply_subject, requester_lines, shortened

_QUOTE_LIMIT = 4000  # an alert's text in a mail; the whole of it stays in the thread


def _lines(thread: Thread, event: Event) -> list[str]:
    if isinstance(event, UserMessage):
        text = shortened(event.text, _QUOTE_LIMIT)
        return [f"{event.user or 'someone'} wrote:", "", *(f"> {line}" for line in text.splitlines())]
    return requester_lines(thread, event)


def follower_mails(thread: Thread, new: Sequence[Event], config: MailConfig) -> list[OutgoingMail]:
    """The mails for OPSGATE_TRIGGER_EMAIL about ``new`` events of a thread a trigger started (else none)."""
    followers = config.settings.trigger_email
    first = thread.first_message
    if not followers or first is None or not started_by_trigger(thread):
        return []
    domain = config.address.domain
    root = thread_root_id(thread.id, domain)
    title = " ".join(first.text.split())[:150] or "a triggered thread"
    opening = any(e.id == first.id for e in new)
    mails: list[OutgoingMail] = []
    for address in followers:
        # A follower's own reply is not mailed back to them; the other followers read it.
        paragraphs = [lines for event in new if not (isinstance(event, UserMessage) and event.user == address)
                      and (lines := _lines(thread, event))]
        if not paragraphs:
            continue
        if thread.outcome is not None:
            paragraphs.append([f"Outcome: {thread.outcome}."])
        mails.append(OutgoingMail(
            kind="reply", to=address, thread_id=thread.id, text="\n\n".join("\n".join(p) for p in paragraphs),
            subject=f"[opsgate] {title}" if opening else reply_subject(f"[opsgate] {title}"),
            message_id=root if opening else make_message_id(thread.id, "reply", domain),
            in_reply_to=None if opening else root, references=[] if opening else [root],
        ))
    return mails
