"""Raw RFC 5322 bytes -> ``InboundMail``: the addresses, threading headers, noise headers and the new text only.

The body is the text/plain part (HTML converted with html2text when there is none), with quoted history and
signatures removed by mail-parser-reply, so our own quoted instructions never reach the agent or the decision parser.
"""

from __future__ import annotations

import hashlib
import re
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import getaddresses

import html2text
from mailparser_reply import EmailReplyParser
from pydantic import BaseModel, ConfigDict

from channels.email.addresses import normalize

_MSG_ID = re.compile(r"<[^<>\s]+>")
_RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To")
_REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl"]


class InboundMail(BaseModel):
    """One received mail, typed; nothing downstream looks at raw headers."""

    model_config = ConfigDict(frozen=True)

    message_id: str  # with angle brackets; a stable synthetic one when the header is missing
    in_reply_to: list[str] = []
    references: list[str] = []
    sender: str  # the From address, lower case ("" when unreadable)
    sender_name: str = ""
    recipients: list[str] = []  # To, Cc, Delivered-To, X-Original-To, lower case
    subject: str = ""
    text: str = ""  # the new text: quoted history and signature removed
    authentication_results: list[str] = []  # header values, topmost (newest) first
    # RFC 3834 / noise signals
    auto_submitted: str | None = None
    return_path: str | None = None  # None: no header; "": the null sender <>
    precedence: str | None = None
    list_id: str | None = None
    list_headers: bool = False  # any List-* header
    content_type: str = "text/plain"
    x_autoreply: bool = False  # X-Autoreply / X-Autorespond (vacation programs that skip Auto-Submitted)

    @property
    def thread_candidates(self) -> list[str]:
        """Message-IDs that may identify the thread: In-Reply-To, then References newest first."""
        seen: list[str] = []
        for mid in [*self.in_reply_to, *reversed(self.references)]:
            if mid not in seen:
                seen.append(mid)
        return seen

    @property
    def root_id(self) -> str:
        """The conversation's first Message-ID (References starts with it), else this message's own."""
        return self.references[0] if self.references else (self.in_reply_to[0] if self.in_reply_to else
                                                           self.message_id)


def message_ids(value: str | None) -> list[str]:
    """Every ``<id>`` in a header value, in order."""
    return _MSG_ID.findall(value or "")


def _header(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    return None if value is None else " ".join(str(value).split())


def _addresses(msg: Message, names: tuple[str, ...]) -> list[str]:
    values = [str(v) for name in names for v in msg.get_all(name, [])]
    found = [addr.strip().lower() for _, addr in getaddresses(values) if "@" in addr]
    return list(dict.fromkeys(found))


def _return_path(msg: Message) -> str | None:
    value = _header(msg, "Return-Path")
    if value is None:
        return None
    return normalize(value) if value.strip("<> ") else ""


def _part_text(part: Message) -> str:
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else None
    except (LookupError, UnicodeError):  # unknown or lying charset: decode what we can
        content = None
    if isinstance(content, str):
        return content
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body (blockquotes become ``>`` quotes the reply parser removes)."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    return converter.handle(html)


def body_text(msg: EmailMessage) -> str:
    """The text/plain body, else the HTML body as text, else empty."""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = _part_text(part)
    return html_to_text(text) if part.get_content_type() == "text/html" else text


def strip_reply(text: str) -> str:
    """The newest part of a reply: quoted history, the "On … wrote:" line and the signature removed."""
    text = text.replace("\r\n", "\n")
    message = EmailReplyParser(languages=_REPLY_LANGUAGES).read(text)
    latest = message.replies[0].body if message.replies else text
    # A reply typed under the quote (bottom-posting) leaves ">" lines in the first fragment: drop them.
    lines = [line for line in latest.split("\n") if not line.lstrip().startswith(">")]
    return "\n".join(lines).strip()


def _raw_values(msg: Message, name: str) -> list[str]:
    """A header's values as received, only unfolded: no RFC 2047 decoding, which would let an encoded word the
    sender smuggled into a value (a HELO name, a MAIL FROM) turn into ``; dkim=pass ...`` text."""
    values = [value for key, value in msg.raw_items() if key.lower() == name.lower()]
    # 8-bit bytes arrive as surrogate escapes: read them as UTF-8 (RFC 6532), anything else as U+FFFD
    return [" ".join(v.encode("utf-8", "surrogateescape").decode("utf-8", "replace").split()) for v in values]


def parse_mail(raw: bytes) -> InboundMail:
    """Parse one raw message; never raises on odd input (missing headers become empty values)."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    own_ids = message_ids(_header(msg, "Message-ID"))
    message_id = own_ids[0] if own_ids else f"<sha256.{hashlib.sha256(raw).hexdigest()[:32]}@opsgate.invalid>"
    senders = _addresses(msg, ("From",))
    names = [name for name, _ in getaddresses([str(v) for v in msg.get_all("From", [])])]
    auto_reply = any(msg.get(h) is not None for h in ("X-Autoreply", "X-Autorespond"))
    return InboundMail(
        message_id=message_id,
        in_reply_to=message_ids(_header(msg, "In-Reply-To")),
        references=message_ids(_header(msg, "References")),
        sender=senders[0] if senders else "",
        sender_name=names[0] if names else "",
        recipients=_addresses(msg, _RECIPIENT_HEADERS),
        subject=_header(msg, "Subject") or "",
        text=strip_reply(body_text(msg)),
        authentication_results=_raw_values(msg, "Authentication-Results"),
        auto_submitted=_header(msg, "Auto-Submitted"),
        return_path=_return_path(msg),
        precedence=_header(msg, "Precedence"),
        list_id=_header(msg, "List-Id"),
        list_headers=any(key.lower().startswith("list-") for key in msg.keys()),
        content_type=msg.get_content_type(),
        x_autoreply=auto_reply,
    )
