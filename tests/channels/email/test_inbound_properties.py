"""Inbound parsing never raises and takes bounded time, whatever arrives (Hypothesis), and meets the size targets.

Hostile shapes: runs of blank lines, huge lines, nested and broken MIME, bad charset names, invalid base64 and
quoted-printable, 8-bit bytes in headers, RFC 2047 garbage, NUL bytes. The time bounds are generous on purpose
(a loaded CI machine), and far below the minute a 20,000-blank-line mail used to take.
"""

from __future__ import annotations

import base64
import os
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email.inbound import InboundMail, parse_mail
from channels.email.reply_text import MAX_LINE_CHARS, bounded_lines, typed_text

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BOUND = 2.0  # seconds, per message: generous; real cost is milliseconds

_CHARSETS = st.sampled_from(["utf-8", "iso-8859-1", "x-unknown-42", "utf-7", "zlib", "hex", "", "\"", "utf-16",
                             "shift_jis", "gb2312", "us-ascii; format=flowed", "base64", "rot13"])
_ENCODINGS = st.sampled_from(["base64", "quoted-printable", "8bit", "7bit", "binary", "x-uuencode", "bogus"])
_HEADER_NAMES = st.sampled_from(["Subject", "From", "To", "Cc", "Message-ID", "In-Reply-To", "References",
                                 "Return-Path", "Auto-Submitted", "Content-Type", "X-Mailer", "List-Id",
                                 "Authentication-Results", "X-Autoreply", "Precedence"])
_GARBAGE = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda s, c: f"=?{c}?{s}?=".encode(errors="surrogateescape"), st.text(max_size=40),
              st.sampled_from(["utf-8?b", "utf-8?q", "x-bad?b", "?", "utf-8?z"])),
    st.builds(lambda n: b"=?utf-8?q?a?= " * n, st.integers(0, 2_000)),
    st.builds(lambda n: b"\xff\xfe\x00" * n, st.integers(0, 200)),
)


@st.composite
def header_lines(draw: st.DrawFn) -> bytes:
    """A few header fields with garbage values, folded or not."""
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        value = draw(_GARBAGE).replace(b"\r", b"").replace(b"\n", b"\r\n ")
        lines.append(draw(_HEADER_NAMES).encode() + b": " + value + b"\r\n")
    return b"".join(lines)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A body: blank-line runs, long lines, quote markers, bad base64/QP, text in many scripts."""
    pieces = draw(st.lists(st.one_of(
        st.builds(lambda n: b"\r\n" * n, st.integers(0, 30_000)),
        st.builds(lambda n: b"x" * n, st.integers(0, 300_000)),
        st.builds(lambda n: b"> " * n + b"APPROVE\r\n", st.integers(0, 50)),
        st.just(b"On Mon, 1 Jan 2024 at 10:00, Bob <bob@x> wrote:\r\n> APPROVE\r\n"),
        st.just(b"-----Original Message-----\r\nFrom: a\r\nSent: b\r\n\r\nAPPROVE\r\n"),
        st.just(b"=ZZ=\r\n=\r\n"), st.just(b"!!!not base64***\r\n"),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(max_size=500),
    ), max_size=6))
    return b"".join(pieces)


@st.composite
def messages(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A message or MIME part: a single part with an odd charset and encoding, or a (broken) multipart."""
    headers = draw(header_lines())
    if depth < 3 and draw(st.booleans()):
        boundary = draw(st.sampled_from(["b1", "b2", "", "x" * 80, "a b"]))
        parts = [draw(messages(depth + 1)) for _ in range(draw(st.integers(0, 4)))]
        closed = draw(st.booleans())
        subtype = draw(st.sampled_from(["mixed", "alternative", "report; report-type=delivery-status", "related"]))
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + part for part in parts)
        body += (b"--" + boundary.encode() + b"--\r\n") if closed else b""
        return (headers + f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode() + body)
    content_type = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream", "message/rfc822"]))
    return (headers + f"Content-Type: {content_type}; charset={draw(_CHARSETS)}\r\n"
            f"Content-Transfer-Encoding: {draw(_ENCODINGS)}\r\n\r\n".encode() + draw(bodies()))


def _timed_parse(raw: bytes) -> tuple[InboundMail, float]:
    started = time.perf_counter()
    mail = parse_mail(raw)
    return mail, time.perf_counter() - started


@PROPERTY
@given(messages())
def test_any_message_parses_without_raising_in_bounded_time(raw: bytes) -> None:
    """Whatever the bytes, parse_mail returns a mail, storable (no NUL), with no quoted line in its text."""
    mail, seconds = _timed_parse(raw)
    assert seconds < BOUND
    assert "\x00" not in mail.text + mail.subject + mail.sender_name
    assert not any(line.startswith(">") for line in mail.text.splitlines())
    assert mail.message_id.startswith("<") and mail.message_id.endswith(">")


@PROPERTY
@given(st.binary(max_size=5_000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    """Not even a message: still a result, never an exception."""
    assert isinstance(parse_mail(raw), InboundMail)


@PROPERTY
@given(st.text(max_size=3_000), st.integers(0, 5_000), st.integers(0, 200_000))
def test_reply_text_is_bounded_and_normalised(text: str, blanks: int, long_line: int) -> None:
    """Lines are capped and trimmed, never two blank lines in a row, and the typed text has no quote marks."""
    body = text + "\n" * blanks + "y" * long_line + "\n" + text
    lines = bounded_lines(body)
    assert all(len(line) <= MAX_LINE_CHARS and line == line.strip() for line in lines)
    assert not any(a == b == "" for a, b in zip(lines, lines[1:], strict=False))
    started = time.perf_counter()
    typed = typed_text(body)
    assert time.perf_counter() - started < BOUND
    assert not any(line.startswith(">") for line in typed.splitlines())


def _plain(body: bytes, encoding: str = "8bit") -> bytes:
    return (b"From: Alice <alice@example.com>\r\nTo: opsgate@example.com\r\nSubject: hostile\r\n"
            b"Message-ID: <hostile@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n\r\n" + body)


def test_twenty_thousand_blank_lines_take_well_under_a_second() -> None:
    """The mail that froze opsgate for a minute: 20,000 blank lines (the text around them is kept)."""
    mail, seconds = _timed_parse(_plain(b"deploy api\r\n" + b"\r\n" * 20_000 + b"to staging\r\n"))
    assert seconds < 1.0, f"{seconds:.2f}s"
    assert mail.text == "deploy api\n\nto staging"


def test_a_one_megabyte_line_takes_well_under_a_second() -> None:
    """A single 1 MB line is cut to the line cap, quickly."""
    mail, seconds = _timed_parse(_plain(b"deploy " + b"x" * 1_000_000 + b"\r\n"))
    assert seconds < 1.0, f"{seconds:.2f}s"
    assert mail.text.startswith("deploy xxx") and len(mail.text) <= MAX_LINE_CHARS


def test_a_four_megabyte_base64_body_takes_well_under_a_second() -> None:
    """A 4 MB base64 body is decoded and trimmed, quickly."""
    payload = base64.encodebytes(b"deploy api to staging\n" + os.urandom(2_900_000))
    assert len(payload) > 3_900_000
    mail, seconds = _timed_parse(_plain(payload.replace(b"\n", b"\r\n"), "base64"))
    assert seconds < 1.0, f"{seconds:.2f}s"
    assert mail.text.startswith("deploy api to staging")


def test_a_nul_subject_is_storable() -> None:
    """A Subject that decodes to U+0000 comes out with U+FFFD instead (PostgreSQL refuses NUL)."""
    raw = _plain(b"hello\r\n").replace(b"Subject: hostile", b"Subject: =?utf-8?b?AA==?= deploy")
    assert parse_mail(raw).subject == "\ufffd deploy"


def test_an_html_body_of_thirty_thousand_newlines_takes_well_under_a_second() -> None:
    """Found by the property above: html2text is quadratic in whitespace runs (this took 45 s); runs are collapsed
    before it sees them."""
    raw = _plain(b"> " * 35 + b"APPROVE\r\n" + b"\r\n" * 30_000).replace(b"text/plain", b"text/html")
    mail, seconds = _timed_parse(raw)
    assert seconds < 1.0, f"{seconds:.2f}s"
    assert mail.text == ""
