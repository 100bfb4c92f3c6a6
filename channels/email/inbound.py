"""Raw RFC 5322 bytes -> ``InboundMail``: the addresses, threading headers, noise headers and the new text only.

The body is the text/plain part (HTML converted with html2text when there is none), reduced to what the person
typed (``reply_text``), so our own quoted instructions never reach the agent or the decision parser.

``parse_mail`` never raises and its cost is linear in the input: decoded bodies, HTML and header values are
capped before anything super-linear sees them. It is still CPU work: callers on the event loop run it in a thread.
"""

from __future__ import annotations

import hashlib
import re
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import getaddresses
from itertools import islice

import html2text
from pydantic import BaseModel, ConfigDict

from bot.text import StorableModel
from channels.email.addresses import normalize
from channels.email.reply_text import MAX_BODY_CHARS, typed_text

_MSG_ID = re.compile(r"<[^<>\s]+>")
_RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To")
_MAX_HTML_CHARS = 300_000  # html2text is linear but slow: a reply's typed part is near the top anyway
_MAX_HEADER_CHARS = 2_000  # per header value kept in InboundMail.headers
_MAX_IDS_CHARS = 50_000  # References of a long conversation: the root id is the first one, so keep them all
_MAX_HEADERS = 200
# html2text escapes Markdown-looking text ("\-----Original Message-----", "1\. item"); we want the plain text back.
_MD_ESCAPE = re.compile(r"\\([\\.+\-])")


class Header(StorableModel):
    """One header line as received (name as written, value unfolded and capped)."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: str


class Oversize(BaseModel):
    """Set when the mail was bigger than the limit: only its headers were fetched and read."""

    model_config = ConfigDict(frozen=True)

    size: int
    limit: int


class InboundMail(StorableModel):
    """One received mail, typed; nothing downstream looks at raw headers. Its text is storable (no NUL)."""

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
    headers: tuple[Header, ...] = ()  # every header (capped), for the automatic-mail rules
    report_type: str | None = None  # the report-type parameter of a multipart/report
    oversize: Oversize | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((h.value for h in self.headers if h.name.lower() == wanted), None)

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


def _text(value: object, limit: int = _MAX_HEADER_CHARS) -> str:
    """A header value as one line; undecodable RFC 2047 words or 8-bit bytes never raise."""
    try:
        text = str(value)
    except Exception:  # the email package's header parser has failure modes of its own on garbage
        text = ""
    return " ".join(text[: limit * 2].split())[:limit]


def _header(msg: Message, name: str, limit: int = _MAX_HEADER_CHARS) -> str | None:
    try:
        value = msg.get(name)
    except Exception:
        return None
    return None if value is None else _text(value, limit)


def _all_headers(msg: Message) -> tuple[Header, ...]:
    """Every header as received (RFC 2047 words left encoded), for the automatic-mail rules."""
    return tuple(Header(name=_text(name, 200), value=_text(value)) for name, value
                 in islice(msg.raw_items(), _MAX_HEADERS))


def _values(msg: Message, names: tuple[str, ...]) -> list[str]:
    values: list[str] = []
    for name in names:
        try:
            values += [_text(v) for v in msg.get_all(name, [])]
        except Exception:
            continue
    return values


def _addresses(msg: Message, names: tuple[str, ...]) -> list[str]:
    found = [addr.strip().lower() for _, addr in getaddresses(_values(msg, names)) if "@" in addr]
    return list(dict.fromkeys(found))


def _return_path(msg: Message) -> str | None:
    value = _header(msg, "Return-Path")
    if value is None:
        return None
    return normalize(value) if value.strip("<> ") else ""


def _part_text(part: Message) -> str:
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else None
    except Exception:  # unknown or lying charset, broken transfer encoding: decode what we can
        content = None
    if isinstance(content, str):
        return content
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return ""
    return payload[: MAX_BODY_CHARS * 4].decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body (blockquotes become ``>`` quotes the reply parser removes)."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_links = True
    return _MD_ESCAPE.sub(r"\1", converter.handle(html[:_MAX_HTML_CHARS]))


def body_text(msg: EmailMessage) -> str:
    """The text/plain body, else the HTML body as text, else empty."""
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # a broken MIME tree: no body we can trust
        return ""
    if part is None:
        return ""
    text = _part_text(part)[:MAX_BODY_CHARS]
    return html_to_text(text) if part.get_content_type() == "text/html" else text


def strip_reply(text: str) -> str:
    """The newest part of a reply: only the lines the person typed (see ``reply_text``)."""
    return typed_text(text)


def parse_mail(raw: bytes, oversize: Oversize | None = None) -> InboundMail:
    """Parse one raw message (only its headers when ``oversize`` says the body was not fetched); never raises on
    odd input: missing or unreadable headers become empty values, a broken body becomes no text."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    own_ids = message_ids(_header(msg, "Message-ID", _MAX_IDS_CHARS))
    message_id = own_ids[0] if own_ids else f"<sha256.{hashlib.sha256(raw).hexdigest()[:32]}@opsgate.invalid>"
    senders = _addresses(msg, ("From",))
    names = [name for name, _ in getaddresses(_values(msg, ("From",)))]
    headers = _all_headers(msg)
    present = {h.name.lower() for h in headers}
    content_type = _content_type(msg)
    return InboundMail(
        message_id=message_id,
        in_reply_to=message_ids(_header(msg, "In-Reply-To", _MAX_IDS_CHARS)),
        references=message_ids(_header(msg, "References", _MAX_IDS_CHARS)),
        sender=senders[0] if senders else "",
        sender_name=names[0] if names else "",
        recipients=_addresses(msg, _RECIPIENT_HEADERS),
        subject=_header(msg, "Subject") or "",
        text="" if oversize is not None else strip_reply(body_text(msg)),
        authentication_results=_values(msg, ("Authentication-Results",)),
        auto_submitted=_header(msg, "Auto-Submitted"),
        return_path=_return_path(msg),
        precedence=_header(msg, "Precedence"),
        list_id=_header(msg, "List-Id"),
        list_headers=any(name.startswith("list-") for name in present),
        content_type=content_type,
        x_autoreply=bool(present & {"x-autoreply", "x-autorespond"}),
        headers=headers,
        report_type=_report_type(msg) if content_type == "multipart/report" else None,
        oversize=oversize,
    )


def _content_type(msg: EmailMessage) -> str:
    try:
        return msg.get_content_type()
    except Exception:
        return "text/plain"


def _report_type(msg: EmailMessage) -> str | None:
    try:
        value = msg.get_param("report-type")
    except Exception:
        return None
    return value.strip().lower() if isinstance(value, str) else None
