"""Automatic mail recognised beyond RFC 3834, and mail written by people never taken for it.

``automatic/`` holds vacation replies, Exchange rule and system mail, complaint (ARF) reports, delivery and read
reports, bounces, no-reply and notification senders, loop and bulk markers, and auto-reply subjects with a second
signal; each file is named after the reason it must be ignored for. ``human/`` holds replies and requests written by
people, with the vendor headers ordinary mail carries (Exchange, Gmail, Apple Mail, Amazon SES/WorkMail) and with
"out of office" in their subject or text.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.email.addresses import Address
from channels.email.inbound import parse_mail
from channels.email.noise import IgnoreReason, ignore_reason
from tests.channels.email.replies import gmail_reply

HERE = Path(__file__).parent
OWN = Address("opsgate", None, "example.com")
AUTOMATIC = sorted((HERE / "automatic").glob("*.eml"))
HUMAN = sorted((HERE / "human").glob("*.eml"))


def _raw(path: Path) -> bytes:
    return path.read_text(encoding="utf-8").replace("\n", "\r\n").encode()


@pytest.mark.parametrize("path", AUTOMATIC, ids=[p.stem for p in AUTOMATIC])
def test_automatic_mail_is_ignored_for_its_named_reason(path: Path) -> None:
    """Each automatic mail is ignored, for exactly the reason its file is named after."""
    expected = IgnoreReason(path.stem.split("__")[0])
    assert ignore_reason(parse_mail(_raw(path)), OWN) == expected


@pytest.mark.parametrize("path", HUMAN, ids=[p.stem for p in HUMAN])
def test_mail_written_by_a_person_is_never_automatic(path: Path) -> None:
    """Replies and requests from people pass, vendor headers and "out of office" wording notwithstanding."""
    assert ignore_reason(parse_mail(_raw(path)), OWN) is None


def test_the_corpus_covers_every_kind_listed() -> None:
    """Vacation replies, ARF, delivery and read reports, loop alerts, no-reply senders and bounces are all there."""
    reasons = {IgnoreReason(p.stem.split("__")[0]) for p in AUTOMATIC}
    assert reasons >= {
        IgnoreReason.AUTO_SUBMITTED, IgnoreReason.AUTO_REPLY_HEADER, IgnoreReason.APPLE_VACATION,
        IgnoreReason.EXCHANGE_INBOX_RULE, IgnoreReason.EXCHANGE_GENERATED, IgnoreReason.RESPONDER_MAILER,
        IgnoreReason.COMPLAINT_REPORT, IgnoreReason.DELIVERY_REPORT, IgnoreReason.READ_RECEIPT,
        IgnoreReason.FAILED_RECIPIENTS, IgnoreReason.NULL_RETURN_PATH, IgnoreReason.MAILER_DAEMON,
        IgnoreReason.NO_REPLY_SENDER, IgnoreReason.X_LOOP, IgnoreReason.BULK_PRECEDENCE,
        IgnoreReason.MAILING_LIST, IgnoreReason.AUTO_REPLY_SUBJECT,
    }
    assert len(HUMAN) >= 10


@pytest.mark.parametrize("subject", ["Automatic reply: deploy api", "Out of Office: deploy api", "Autosvar: x",
                                     "Réponse automatique : x", "自动回复: x", "Abwesenheitsnotiz: x"])
def test_an_auto_reply_subject_alone_is_not_enough(subject: str) -> None:
    """A person can write any subject: without a second signal an auto-reply subject is not automatic."""
    raw = (f"From: someone@example.org\r\nTo: opsgate@example.com\r\nSubject: {subject}\r\n"
           "Message-ID: <s@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n").encode()
    assert ignore_reason(parse_mail(raw), OWN) is None
    hinted = raw.replace(b"Message-ID:", b"X-Auto-Response-Suppress: All\r\nMessage-ID:")
    assert ignore_reason(parse_mail(hinted), OWN) == IgnoreReason.AUTO_REPLY_SUBJECT


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["Re: ", "RE: ", "AW: ", "Fwd: ", ""]), st.text(max_size=60))
def test_a_persons_reply_with_any_text_is_not_automatic(text: str, prefix: str, topic: str) -> None:
    """A Gmail-style reply from a person, whatever its text and subject, is never ignored (human replies never
    carry the automatic-mail headers, and a subject alone never decides)."""
    original = EmailMessage()
    original["From"] = "opsgate <opsgate@example.com>"
    original["Subject"] = f"{prefix}{' '.join(topic.split())}" or "hello"
    original["Message-ID"] = "<opsgate.3f2a9c1e8b7d4e6fa1b2c3d4e5f60718.a.8c1f0e2d3b4a5968@example.com>"
    original["Date"] = "Mon, 23 Nov 2026 10:02:00 +0000"
    original.set_content("APPROVE or REJECT: <reason>")
    raw = gmail_reply(original, "bob@example.com", text or "ok", to="opsgate+tok@example.com")
    assert ignore_reason(parse_mail(raw), OWN) is None
