"""Reading a raw message leniently and in bounded time: header values, RFC 2047 words, the text body.

Why not ``policy.default``: its structured header parser is super-linear on hostile input (a Content-Type of two
thousand parameters took a second, twenty thousand took seventeen; a Subject of many encoded words exhausted
memory), and it runs for the headers of every MIME part while the message is being parsed. We parse with
``compat32``, which keeps header values as strings, and decode only what we use, from capped values. Before
parsing, the header section is capped and a multipart message is cut after a bounded number of MIME delimiter
lines, so the parser's work is proportional to a bounded input.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message

import html2text

MAX_HEADER_SECTION = 256 * 1024  # bytes of the top-level header section that are parsed
MAX_MIME_DELIMITERS = 256  # "--boundary" lines of a multipart message that are parsed (parts, roughly)
MAX_DECODED_BODY = 800_000  # bytes of a decoded text part turned into text
MAX_HTML_CHARS = 64_000  # html2text is linear but slow (~0.5 s for 150 kB): what people type is near the top
MAX_ENCODED_CHARS = 4_000  # of a header value handed to the RFC 2047 decoder (it is quadratic in words)

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_DELIMITER = re.compile(rb"^--", re.MULTILINE)
# html2text escapes Markdown-looking text ("\-----Original Message-----", "1\. item"); we want the plain text back.
_MD_ESCAPE = re.compile(r"\\([\\.+\-])")
_WHITESPACE_RUN = re.compile(r"[ \t\r\n\f\v]{2,}")


def bounded(raw: bytes) -> bytes:
    """``raw`` with its header section capped and, if multipart, cut after ``MAX_MIME_DELIMITERS`` delimiters."""
    match = _BLANK_LINE.search(raw, 0, MAX_HEADER_SECTION + 4)
    if match is None:  # no body, or a header section too big to parse whole: keep its complete lines
        head = raw[:MAX_HEADER_SECTION]
        return head[: head.rfind(b"\n") + 1] if len(raw) > MAX_HEADER_SECTION else raw
    head, body = raw[: match.end()], raw[match.end():]
    if b"multipart" not in head.lower():
        return raw
    for count, delimiter in enumerate(_DELIMITER.finditer(body), start=1):
        if count > MAX_MIME_DELIMITERS:
            return head + body[: delimiter.start()]
    return raw


def read_message(raw: bytes) -> EmailMessage:
    """The message tree of a (bounded) raw message; never raises."""
    msg = message_from_bytes(bounded(raw), _class=EmailMessage, policy=policy.compat32)
    assert isinstance(msg, EmailMessage)
    return msg


def raw_headers(msg: Message) -> list[tuple[str, str]]:
    """Every top-level header as (name, value): unfolded, 8-bit bytes read as UTF-8, RFC 2047 words left as is."""
    found: list[tuple[str, str]] = []
    for name, value in msg.raw_items():
        found.append((_readable(str(name)), _readable(value if isinstance(value, str) else str(value))))
    return found


def _readable(value: str) -> str:
    # The bytes parser keeps 8-bit header bytes as surrogate escapes; most are UTF-8 (RFC 6532).
    if not value.isascii():
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded, leniently (unknown charsets and bad encodings never raise)."""
    value = value[:MAX_ENCODED_CHARS]
    if "=?" not in value:
        return value
    try:
        parts = decode_header(value)
        return str(make_header(parts))
    except Exception:  # a malformed word or an unknown charset: decode piece by piece, leniently
        pass
    try:
        parts = decode_header(value)
    except Exception:
        return value
    decoded: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            decoded.append(chunk)
            continue
        try:
            decoded.append(chunk.decode(charset or "ascii", "replace"))
        except LookupError:
            decoded.append(chunk.decode("utf-8", "replace"))
    return "".join(decoded)


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding
        return ""
    if not isinstance(payload, bytes):
        return ""
    payload = payload[:MAX_DECODED_BODY]
    try:
        charset = part.get_content_charset() or "utf-8"
        return payload.decode(charset, "replace")
    except (LookupError, ValueError, TypeError):  # unknown, lying or non-text charset names
        return payload.decode("utf-8", "replace")


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body (blockquotes become ``>`` quotes the reply parser removes)."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_links = True
    html = _WHITESPACE_RUN.sub(_one_space, _without_styles(html[: MAX_HTML_CHARS * 4]))[:MAX_HTML_CHARS]
    return _MD_ESCAPE.sub(r"\1", converter.handle(html))


def _one_space(run: re.Match[str]) -> str:
    # html2text is quadratic in runs of whitespace (8,000 newlines took 1.6 s); HTML renders a run as one space.
    return "\n" if "\n" in run.group() else " "


def _without_styles(html: str) -> str:
    """The HTML without its <style> blocks (Outlook puts tens of kB of CSS before the text); linear."""
    lower = html.lower()
    kept: list[str] = []
    position = 0
    while (start := lower.find("<style", position)) >= 0:
        kept.append(html[position:start])
        end = lower.find("</style>", start)
        if end < 0:
            return "".join(kept)
        position = end + len("</style>")
    kept.append(html[position:])
    return "".join(kept)


def body_text(msg: EmailMessage) -> str:
    """The text/plain body, else the HTML body as text, else empty."""
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # a broken MIME tree: no body we can trust
        return ""
    if part is None:
        return ""
    text = _part_text(part)
    return html_to_text(text) if part.get_content_type() == "text/html" else text
