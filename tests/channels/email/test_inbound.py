"""Parsing raw messages into InboundMail: headers, threading ids, and only the new text of a reply."""

from __future__ import annotations

from channels.email.inbound import parse_mail, strip_reply
from tests.channels.email.conftest import raw_message


def test_gmail_reply_keeps_only_the_new_text_and_threading_headers() -> None:
    """A Gmail reply yields its own lines; the quoted approval request (with its APPROVE line) is gone."""
    mail = parse_mail(raw_message("gmail_reply_approve"))
    assert mail.text == "APPROVE\n\nLooks good, go ahead."
    assert mail.sender == "bob@example.com" and mail.sender_name == "Bob Approver"
    assert mail.message_id == "<CAJx9QkWq1Zr7n0v2Fh3=Gk_m2p@mail.gmail.com>"
    assert mail.in_reply_to == ["<opsgate.3f2a9c1e8b7d4e6fa1b2c3d4e5f60718.a.8c1f0e2d3b4a5968@example.com>"]
    assert mail.references == mail.in_reply_to
    assert mail.subject == "Re: [opsgate] Approval needed: deploy api 1.4.2 to production"
    assert mail.recipients == ["opsgate+token@example.com"]
    assert len(mail.authentication_results) == 1 and "dmarc=pass" in mail.authentication_results[0]


def test_outlook_reply_drops_signature_and_the_original_below_the_separator() -> None:
    """Outlook's "From:/Sent:/To:/Subject:" block and the "Kind regards" signature are not part of the text."""
    mail = parse_mail(raw_message("outlook_reply_reject"))
    assert mail.text == "REJECT: wait until the change freeze ends on Friday"
    assert mail.sender == "carol@corp.example.org"


def test_html_only_mail_is_converted_to_text() -> None:
    """Without a text/plain part the HTML body is converted (html2text) and the signature stripped."""
    mail = parse_mail(raw_message("html_only"))
    assert mail.content_type == "text/html"
    assert "please deploy api version 1.4.2 to production" in mail.text
    assert "<" not in mail.text and "Backend" not in mail.text


def test_new_request_reads_recipients_and_strips_the_dash_dash_signature() -> None:
    """To and Cc are recipients; the "-- " signature is removed."""
    mail = parse_mail(raw_message("new_request"))
    assert mail.recipients == ["opsgate@example.com", "ops@example.com"]
    assert mail.text.endswith("it fixes the login timeout.")
    assert "Backend team" not in mail.text
    assert mail.thread_candidates == [] and mail.root_id == mail.message_id


def test_noise_headers_are_read() -> None:
    """Return-Path <>, Auto-Submitted, multipart/report, Precedence and List-Id are captured."""
    bounce = parse_mail(raw_message("bounce"))
    assert bounce.return_path == "" and bounce.auto_submitted == "auto-replied"
    assert bounce.content_type == "multipart/report" and bounce.sender == "mailer-daemon@mx.example.com"
    listed = parse_mail(raw_message("list_mail"))
    assert listed.precedence == "list" and listed.list_id and listed.list_headers


def test_missing_message_id_gets_a_stable_synthetic_one() -> None:
    """The same bytes always give the same id (so a replay is still recognised)."""
    raw = b"From: a@example.com\r\nTo: opsgate@example.com\r\nSubject: hi\r\n\r\ndeploy please\r\n"
    first, second = parse_mail(raw), parse_mail(raw)
    assert first.message_id == second.message_id and first.message_id.startswith("<sha256.")
    assert first.text == "deploy please"


def test_thread_candidates_put_in_reply_to_first_then_references_newest_first() -> None:
    """In-Reply-To, then References from the newest, without repeats."""
    raw = (b"From: a@example.com\r\nMessage-ID: <m4@x>\r\nIn-Reply-To: <m3@x>\r\n"
           b"References: <m1@x> <m2@x>\r\n <m3@x>\r\n\r\nok\r\n")
    mail = parse_mail(raw)
    assert mail.thread_candidates == ["<m3@x>", "<m2@x>", "<m1@x>"]
    assert mail.root_id == "<m1@x>"


def test_unknown_charset_and_garbage_never_raise() -> None:
    """A lying charset is decoded leniently; a message without headers still parses."""
    raw = b"From: a@example.com\r\nContent-Type: text/plain; charset=x-unknown-42\r\n\r\nREJECT: bad \xff bytes\r\n"
    assert parse_mail(raw).text.startswith("REJECT: bad")
    empty = parse_mail(b"\r\n\r\n")
    assert empty.sender == "" and empty.text == ""


def test_bottom_posted_reply_drops_the_quote_above_it() -> None:
    """A reply typed under the quoted text keeps only the person's own lines."""
    text = "> Action: deploy api\n> APPROVE\n> REJECT: <your reason>\n\nREJECT: not today\n"
    assert strip_reply(text) == "REJECT: not today"
