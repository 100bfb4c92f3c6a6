"""What the person typed in a mail: bounded, normalised text with quoted history, quote headers and signature cut.

Why our own pass before mail-parser-reply: the library splits a body at the quote headers it knows and returns
the first non-empty fragment, so a reply with nothing typed above an unmarked quote (Outlook's "From:/Sent:"
block, a "-----Original Message-----" line, an "On … wrote:" line followed by unquoted text) came back as the
quoted message itself, whose first line may be ``APPROVE``. Here, a quote header always ends the typed text,
unless ``>``-quoted lines follow it (then the quote is skipped and text typed under it still counts: bottom
posting). The library then removes signatures and disclaimers from what is left.

Everything is linear in the input: the body is capped, lines are capped and whitespace-collapsed, runs of blank
lines become one (the library's signature pattern is quadratic in blank runs), and only short lines are tried
against the attribution patterns.
"""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser

from channels.email.quote_headers import ATTRIBUTION, DEVICE_SIGNATURE, RULE, SEPARATOR, header_block_at

MAX_BODY_CHARS = 200_000  # of a decoded body, before anything else looks at it
MAX_LINE_CHARS = 4_000  # longer lines are cut (nobody types a decision or a request on a 1 MB line)
MAX_TYPED_CHARS = 40_000  # handed to the reply library (its signature pattern is slow): twice the core default
_ATTRIBUTION_CHARS = 300  # quote headers are short: longer lines are never tried against the patterns
_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "sv", "pl", "da", "cs", "ja", "zh", "ko"]
_ATTRIBUTION_ENDS = (":", "\uff1a", "wrote", "-")  # every attribution pattern ends so: a cheap test first
_DIGIT = re.compile(r"\d")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_PARSER = EmailReplyParser(languages=_LANGUAGES)


def bounded_lines(text: str) -> list[str]:
    """The body as trimmed lines: capped in size, whitespace runs collapsed, no two blank lines in a row."""
    lines: list[str] = []
    for raw in text[:MAX_BODY_CHARS].translate(_INVISIBLE).splitlines():
        line = " ".join(raw[:MAX_LINE_CHARS].split())
        if line or (lines and lines[-1]):
            lines.append(line)
    return lines


def _quoted(line: str) -> bool:
    return line.startswith(">")


def _ends_like_attribution(line: str) -> bool:
    return line[-5:].lower().endswith(_ATTRIBUTION_ENDS)


def _attribution_span(lines: list[str], index: int) -> int:
    """1 or 2 when an attribution line ("On … wrote:") starts here (Gmail wraps long ones), else 0."""
    line = lines[index]
    if len(line) <= _ATTRIBUTION_CHARS and _ends_like_attribution(line) and ATTRIBUTION.match(line):
        return 1
    if index + 1 >= len(lines):
        return 0
    tail = lines[index + 1]
    # A wrapped attribution: a dated first half and a short unquoted rest ("wrote:"), matching only together.
    if (_ends_like_attribution(tail) and not _quoted(tail) and len(tail) <= 40 and _DIGIT.search(line)
            and len(line) + len(tail) < _ATTRIBUTION_CHARS and ATTRIBUTION.match(f"{line} {tail}")):
        return 2
    return 0


def _next_text_line(lines: list[str], start: int) -> str | None:
    return next((line for line in lines[start:] if line), None)


def typed_lines(lines: list[str]) -> list[str]:
    """The lines the person typed: everything before the first unmarked quote, minus ``>``-quoted lines and
    the quote headers that introduce them."""
    kept: list[str] = []
    size = 0
    index = 0
    while index < len(lines) and size <= MAX_TYPED_CHARS:  # what is beyond is cut anyway
        line = lines[index]
        if _quoted(line):
            index += 1
            continue
        if SEPARATOR.match(line) or header_block_at(lines, index):
            break
        span = _attribution_span(lines, index)
        if span:
            following = _next_text_line(lines, index + span)
            if following is None or not _quoted(following):
                break  # the quote that follows is not marked: all the rest is history
            index += span
            continue
        if not (len(line) <= _ATTRIBUTION_CHARS and DEVICE_SIGNATURE.match(line)):  # "Sent from my iPhone"
            kept.append(line)
            size += len(line) + 1
        index += 1
    while kept and (not kept[-1] or RULE.match(kept[-1])):
        kept.pop()  # blank lines and the rule Outlook draws above its header block
    while kept and not kept[0]:
        kept.pop(0)
    return kept


def typed_text(body: str) -> str:
    """The new text of a mail body: quoted history, quote headers, signature and disclaimers removed."""
    text = "\n".join(typed_lines(bounded_lines(body)))[:MAX_TYPED_CHARS]
    if not text:
        return ""
    message = _PARSER.read(text)
    if not message.replies or message.replies[0].headers:
        return ""  # the library saw a quote header at the very start: nothing was typed above it
    latest = message.replies[0].body
    return "\n".join(line for line in latest.split("\n") if not _quoted(line)).strip()
