"""Raw RFC 5322 bytes -> ``InboundMail``: the addresses, threading headers, noise headers and the new text only.

The body is the text/plain part (HTML converted with html2text when there is none), reduced to what the person
typed (``reply_text``), so our own quoted instructions never reach the agent or the decision parser.

``parse_mail`` never raises and its cost is linear in the input: decoded bodies, HTML and header values are
capped before anything super-linear sees them. It is still CPU work: callers on the event loop run it in a thread.
"""

from __future__ import annotations

import hashlib
import re
from email.message import EmailMessage
from email.utils import getaddresses

from pydantic import BaseModel, ConfigDict

from bot.text import StorableModel
from channels.email.addresses import normalize
from channels.email.mime import MAX_HEADER_SECTION, body_text, decode_words, html_to_text, raw_headers, read_message
from channels.email.reply_text import typed_text

__all__ = ["Header", "InboundMail", "Oversize", "body_text", "html_to_text", "message_ids", "parse_mail",
           "strip_reply"]

_MSG_ID = re.compile(r"<[^<>\s]+>")
_RECIPIENT_HEADERS = ("to", "cc", "delivered-to", "x-original-to")
_MAX_HEADER_CHARS = 2_000  # per header value kept in InboundMail.headers
_MAX_ADDRESS_CHARS = 16_000  # of an address header handed to getaddresses
_MAX_IDS_CHARS = 50_000  # References of a long conversation: the root id is the first one, so keep them all
_MAX_HEADERS = 200


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


class _Headers:
    """The top-level headers of one message, looked up case-insensitively, values unfolded and capped."""

    def __init__(self, msg: EmailMessage) -> None:
        self.items = raw_headers(msg)

    def all(self, *names: str, limit: int = _MAX_HEADER_CHARS) -> list[str]:
        """Every value of the headers ``names`` (lower case), in order, each unfolded and capped."""
        wanted = set(names)
        return [" ".join(value[: limit * 2].split())[:limit] for name, value in self.items
                if name.lower() in wanted]

    def first(self, name: str, limit: int = _MAX_HEADER_CHARS) -> str | None:
        """The first value of header ``name``, or None."""
        found = self.all(name.lower(), limit=limit)
        return found[0] if found else None

    def addresses(self, *names: str) -> list[tuple[str, str]]:
        """(display name, address lower case) pairs of address headers that hold an ``@`` address."""
        pairs = getaddresses(self.all(*names, limit=_MAX_ADDRESS_CHARS))
        return [(decode_words(name), addr.strip().lower()) for name, addr in pairs if "@" in addr]

    def kept(self) -> tuple[Header, ...]:
        """The headers as kept on InboundMail (at most ``_MAX_HEADERS``, values capped)."""
        return tuple(Header(name=name[:200], value=" ".join(value[: _MAX_HEADER_CHARS * 2].split())[
            :_MAX_HEADER_CHARS]) for name, value in self.items[:_MAX_HEADERS])


def _return_path(headers: _Headers) -> str | None:
    value = headers.first("return-path")
    if value is None:
        return None
    return normalize(value) if value.strip("<> ") else ""


def strip_reply(text: str) -> str:
    """The newest part of a reply: only the lines the person typed (see ``reply_text``)."""
    return typed_text(text)


def parse_mail(raw: bytes, oversize: Oversize | None = None) -> InboundMail:
    """Parse one raw message (only its headers when ``oversize`` says the body was not fetched); never raises on
    odd input and takes time linear in it: unreadable headers become empty values, a broken body no text."""
    msg = read_message(raw)
    headers = _Headers(msg)
    own_ids = message_ids(headers.first("message-id", _MAX_IDS_CHARS))
    message_id = own_ids[0] if own_ids else f"<sha256.{hashlib.sha256(raw).hexdigest()[:32]}@opsgate.invalid>"
    senders = headers.addresses("from")
    present = {name.lower() for name, _ in headers.items}
    content_type = _content_type(msg)
    return InboundMail(
        message_id=message_id,
        in_reply_to=message_ids(headers.first("in-reply-to", _MAX_IDS_CHARS)),
        references=message_ids(headers.first("references", _MAX_IDS_CHARS)),
        sender=senders[0][1] if senders else "",
        sender_name=senders[0][0] if senders else "",
        recipients=list(dict.fromkeys(addr for _, addr in headers.addresses(*_RECIPIENT_HEADERS))),
        subject=" ".join(decode_words(headers.first("subject") or "").split()),
        text="" if oversize is not None else strip_reply(body_text(msg)),
        # Never cut: a prefix of our server's header could hide its dmarc=fail. The header section is already
        # bounded (mime.MAX_HEADER_SECTION) and the parser is linear, so the whole value is judged.
        authentication_results=headers.all("authentication-results", limit=MAX_HEADER_SECTION),
        auto_submitted=headers.first("auto-submitted"),
        return_path=_return_path(headers),
        precedence=headers.first("precedence"),
        list_id=headers.first("list-id"),
        list_headers=any(name.startswith("list-") for name in present),
        content_type=content_type,
        x_autoreply=bool(present & {"x-autoreply", "x-autorespond"}),
        headers=headers.kept(),
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
