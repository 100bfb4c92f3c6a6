"""Realistic replies to mails opsgate sent, built the way Gmail and Outlook build them (for the tests)."""

from __future__ import annotations

import secrets
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, parseaddr

AUTHSERV = "mx.example.com"


def auth_results(sender: str, dmarc: str = "pass", authserv: str = AUTHSERV) -> str:
    """An Authentication-Results value as our MTA would write it for ``sender``'s domain."""
    domain = sender.rpartition("@")[2]
    dkim = "pass" if dmarc == "pass" else "fail"
    return (f"{authserv}; dkim={dkim} header.d={domain} header.s=s1; spf=pass smtp.mailfrom={domain}; "
            f"dmarc={dmarc} (p=reject dis=none) header.from={domain}")


def _quoted(original: EmailMessage) -> str:
    body = original.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    return "\n".join(f"> {line}".rstrip() for line in text.splitlines())


def gmail_reply(
    original: EmailMessage, sender: str, text: str, *, name: str = "", dmarc: str | None = "pass",
    to: str | None = None, extra_headers: dict[str, str] | None = None,
) -> bytes:
    """A Gmail-style reply to ``original``: "Re:" subject, In-Reply-To, References, the original quoted below an
    "On ... wrote:" line, a text and an HTML part; addressed to its Reply-To (else From) unless ``to`` is given."""
    reply = EmailMessage()
    if dmarc is not None:
        reply["Authentication-Results"] = auth_results(sender, dmarc)
    reply["Return-Path"] = f"<{sender}>"
    reply["From"] = formataddr((name, sender)) if name else sender
    reply["To"] = to or str(original["Reply-To"] or original["From"])
    subject = str(original["Subject"])
    reply["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    reply["Date"] = formatdate(usegmt=True)
    reply["Message-ID"] = f"<CA{secrets.token_hex(12)}@mail.gmail.com>"
    parent = str(original["Message-ID"])
    reply["In-Reply-To"] = parent
    reply["References"] = " ".join(filter(None, [str(original["References"] or ""), parent]))
    for key, value in (extra_headers or {}).items():
        reply[key] = value
    who = parseaddr(str(original["From"]))
    attribution = f"On {original['Date']}, {formataddr(who)} wrote:"
    reply.set_content(f"{text}\n\n{attribution}\n\n{_quoted(original)}\n")
    html_text = "".join(f"<div>{line or '<br>'}</div>" for line in text.splitlines())
    reply.add_alternative(
        f'<div dir="ltr">{html_text}</div><br><div class="gmail_quote"><div class="gmail_attr">{attribution}'
        f'</div><blockquote class="gmail_quote">{_quoted(original)}</blockquote></div>', subtype="html")
    return reply.as_bytes(policy=SMTP)


def new_mail(
    sender: str, subject: str, text: str, *, to: str = "opsgate@example.com", dmarc: str | None = "pass",
    extra_headers: dict[str, str] | None = None, message_id: str | None = None,
) -> bytes:
    """A fresh mail from a person to the agent address."""
    msg = EmailMessage()
    if dmarc is not None:
        msg["Authentication-Results"] = auth_results(sender, dmarc)
    msg["Return-Path"] = f"<{sender}>"
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id or f"<{secrets.token_hex(10)}@{sender.rpartition('@')[2]}>"
    for key, value in (extra_headers or {}).items():
        msg[key] = value
    msg.set_content(text)
    return msg.as_bytes(policy=SMTP)
