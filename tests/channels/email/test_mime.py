"""Bounded, lenient MIME reading: what is cut before parsing, and how odd header bytes and words are decoded."""

from __future__ import annotations

from channels.email.inbound import parse_mail
from channels.email.mime import (
    MAX_HEADER_SECTION,
    MAX_MIME_DELIMITERS,
    bounded,
    decode_words,
    html_to_text,
    read_message,
)


def test_a_small_message_is_left_alone() -> None:
    """Ordinary mail passes through ``bounded`` unchanged."""
    raw = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n--b--\r\n"
    assert bounded(raw) == raw


def test_a_multipart_message_is_cut_after_the_delimiter_cap() -> None:
    """Thousands of MIME parts are cut to the first few hundred; the first text part is still the body."""
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n for n in range(5_000))
    raw = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    cut = bounded(raw)
    assert cut.count(b"\r\n--b") + cut.startswith(b"--b") <= MAX_MIME_DELIMITERS
    assert len(read_message(raw).get_payload()) <= MAX_MIME_DELIMITERS
    assert parse_mail(raw).text == "part 0"


def test_a_plain_body_with_many_dash_lines_is_not_cut() -> None:
    """Only multipart messages are cut at delimiters: a plain body full of "--" lines is kept."""
    body = b"--flag value\r\n" * 1_000
    raw = b"From: a@example.org\r\nContent-Type: text/plain\r\n\r\n" + body
    assert bounded(raw) == raw


def test_an_endless_header_section_is_capped_at_a_line_end() -> None:
    """A header section with no end is cut to whole lines under the cap, and still parses."""
    raw = b"From: a@example.org\r\n" + b"X-Filler: " + b"y" * 70 + b"\r\n" * 1 + b"X-More: z\r\n" * 40_000
    cut = bounded(raw)
    assert len(cut) <= MAX_HEADER_SECTION and cut.endswith(b"\n")
    assert parse_mail(raw).sender == "a@example.org"


def test_eight_bit_headers_are_read_as_utf8() -> None:
    """Raw UTF-8 in headers (RFC 6532) is decoded; undecodable bytes become U+FFFD, never an error."""
    raw = "From: José <jose@example.org>\r\nSubject: Grüße \xff\r\n\r\nhi\r\n".encode("latin-1", "replace")
    mail = parse_mail("From: José <jose@example.org>\r\nSubject: Grüße\r\n\r\nhi\r\n".encode())
    assert mail.sender_name == "José" and mail.subject == "Grüße"
    assert parse_mail(raw).sender == "jose@example.org"


def test_encoded_words_decode_leniently() -> None:
    """RFC 2047: spacing kept, unknown charsets and broken words never raise."""
    assert decode_words("Hello =?utf-8?q?w=C3=B6rld?= again") == "Hello wörld again"
    assert decode_words("=?x-unknown?q?abc?= z") == "abc z"
    assert decode_words("=?utf-8?b?!!!?=") == ""
    assert decode_words("plain") == "plain"


def test_html_conversion_drops_styles_and_keeps_literal_dashes() -> None:
    """<style> blocks are gone and html2text's Markdown escapes are undone."""
    text = html_to_text("<style>p{color:red}</style><p>-----Original Message-----</p><p>1. one</p>")
    assert "color" not in text and "-----Original Message-----" in text and "1. one" in text
