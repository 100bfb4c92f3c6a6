"""``OutgoingMail`` -> an RFC 5322 ``EmailMessage`` with our loop-protection headers (RFC 3834)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr, formatdate

from channels.email.outbound import OutgoingMail

SENDER_NAME = "opsgate"


def compose(mail: OutgoingMail, sender: str, reply_to: str | None = None) -> EmailMessage:
    """Build the message; ``reply_to`` is the token address of an approval request."""
    msg = EmailMessage()
    msg["From"] = formataddr((SENDER_NAME, sender))
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = mail.message_id
    if reply_to:
        msg["Reply-To"] = formataddr((SENDER_NAME, reply_to))
    if mail.in_reply_to:
        msg["In-Reply-To"] = mail.in_reply_to
    if mail.references:
        msg["References"] = " ".join(mail.references)
    # Our replies answer a person; approval requests and notices are generated. Either way: never auto-answer.
    msg["Auto-Submitted"] = "auto-replied" if mail.kind == "reply" else "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(mail.text)
    return msg
