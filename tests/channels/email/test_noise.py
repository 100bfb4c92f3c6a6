"""RFC 3834 loop protection: which mails are ignored, and why."""

from __future__ import annotations

import pytest

from channels.email.addresses import Address
from channels.email.inbound import parse_mail
from channels.email.noise import IgnoreReason, ignore_reason
from tests.channels.email.conftest import raw_message

OWN = Address("opsgate", None, "example.com")


@pytest.mark.parametrize(("name", "reason"), [
    ("bounce", IgnoreReason.AUTO_SUBMITTED),
    ("out_of_office", IgnoreReason.AUTO_SUBMITTED),
    ("list_mail", IgnoreReason.BULK_PRECEDENCE),
])
def test_saved_noise_is_ignored(name: str, reason: IgnoreReason) -> None:
    """Bounces, out-of-office replies and list mail are never answered."""
    assert ignore_reason(parse_mail(raw_message(name)), OWN) == reason


@pytest.mark.parametrize("name", ["new_request", "gmail_reply_approve", "outlook_reply_reject", "html_only"])
def test_mail_written_by_people_passes(name: str) -> None:
    """Requests and replies from people are not noise."""
    assert ignore_reason(parse_mail(raw_message(name)), OWN) is None


def _mail(headers: str, content_type: str = "text/plain") -> bytes:
    return (f"From: Someone <someone@example.org>\r\nTo: opsgate@example.com\r\nMessage-ID: <x@y>\r\n{headers}"
            f"Content-Type: {content_type}\r\n\r\nhello\r\n").encode()


@pytest.mark.parametrize(("headers", "content_type", "reason"), [
    ("Auto-Submitted: auto-replied\r\n", "text/plain", IgnoreReason.AUTO_SUBMITTED),
    ("Auto-Submitted: auto-notified; owner-email=x@y\r\n", "text/plain", IgnoreReason.AUTO_SUBMITTED),
    ("X-Autoreply: yes\r\n", "text/plain", IgnoreReason.AUTO_REPLY_HEADER),
    ("Return-Path: <>\r\n", "text/plain", IgnoreReason.NULL_RETURN_PATH),
    ("Return-Path: <MAILER-DAEMON@mx.example.org>\r\n", "text/plain", IgnoreReason.MAILER_DAEMON),
    ("", "multipart/report; report-type=delivery-status; boundary=b", IgnoreReason.DELIVERY_REPORT),
    ("Precedence: Bulk\r\n", "text/plain", IgnoreReason.BULK_PRECEDENCE),
    ("Precedence: junk\r\n", "text/plain", IgnoreReason.BULK_PRECEDENCE),
    ("List-Id: <ops.lists.example.org>\r\n", "text/plain", IgnoreReason.MAILING_LIST),
    ("List-Unsubscribe: <mailto:leave@lists.example.org>\r\n", "text/plain", IgnoreReason.MAILING_LIST),
])
def test_each_rule(headers: str, content_type: str, reason: IgnoreReason) -> None:
    """Each RFC 3834 signal alone is enough to ignore a mail."""
    assert ignore_reason(parse_mail(_mail(headers, content_type)), OWN) == reason


def test_auto_submitted_no_is_a_person() -> None:
    """``Auto-Submitted: no`` explicitly marks a human message."""
    assert ignore_reason(parse_mail(_mail("Auto-Submitted: no\r\nPrecedence: first-class\r\n")), OWN) is None


def test_our_own_address_with_or_without_tag_is_ignored() -> None:
    """Mail from our own address (a copy of what we sent, a loop) is ignored."""
    for sender in ("opsgate@example.com", "OpsGate+deploy@Example.com"):
        raw = f"From: {sender}\r\nMessage-ID: <a@b>\r\n\r\nhi\r\n".encode()
        assert ignore_reason(parse_mail(raw), OWN) == IgnoreReason.OWN_ADDRESS


def test_mail_without_a_sender_is_ignored() -> None:
    """There is nobody to answer or to attribute the request to."""
    assert ignore_reason(parse_mail(b"Subject: x\r\n\r\nhi\r\n"), OWN) == IgnoreReason.NO_SENDER
