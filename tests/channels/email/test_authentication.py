"""Trusting Authentication-Results: only our MTA's header, dmarc=pass or aligned dkim=pass for the From domain."""

from __future__ import annotations

import pytest

from channels.email.authentication import aligned, check_authentication, is_trusted, trusted_ids
from channels.email.inbound import parse_mail
from tests.channels.email.conftest import raw_message

MTA = "mx.example.com"


def _mail(sender: str, *results: str) -> bytes:
    headers = "".join(f"Authentication-Results: {r}\r\n" for r in results)
    return f"{headers}From: {sender}\r\nMessage-ID: <a@b>\r\n\r\nAPPROVE\r\n".encode()


def test_gmail_reply_with_dmarc_pass_is_authenticated() -> None:
    """dmarc=pass for the From domain from our authserv-id passes."""
    verdict = check_authentication(parse_mail(raw_message("gmail_reply_approve")), MTA)
    assert verdict.passed and "dmarc=pass" in verdict.reason


def test_forged_from_with_dmarc_fail_is_refused_despite_a_lower_fake_pass() -> None:
    """Only the topmost header of our MTA counts; a forger's extra "dmarc=pass" header below it does not."""
    verdict = check_authentication(parse_mail(raw_message("forged_dmarc_fail")), MTA)
    assert not verdict.passed and "dmarc=fail" in verdict.reason


def test_another_authserv_id_is_not_trusted() -> None:
    """A header written by someone else's server (or the sender) is ignored."""
    raw = _mail("bob@example.com", "mx.attacker.example; dmarc=pass header.from=example.com")
    verdict = check_authentication(parse_mail(raw), MTA)
    assert not verdict.passed and "no Authentication-Results from mx.example.com" in verdict.reason


def test_authserv_id_is_case_insensitive() -> None:
    """Host names compare without case."""
    raw = _mail("bob@example.com", "MX.Example.COM; dmarc=pass header.from=example.com")
    assert check_authentication(parse_mail(raw), MTA).passed


@pytest.mark.parametrize(("result", "passed"), [
    ("dkim=pass header.d=example.com", True),
    ("dkim=pass header.i=@mail.example.com", True),
    ("dkim=pass header.d=other.example.net", False),
    ("dkim=fail header.d=example.com", False),
    ("dmarc=none header.from=example.com; dkim=pass header.d=example.com", True),
    ("dmarc=fail header.from=example.com; dkim=pass header.d=example.com", False),
    ("dmarc=pass header.from=evil.example.net", False),
    ("spf=pass smtp.mailfrom=example.com", False),
    ("none", False),
])
def test_dkim_alignment_and_dmarc_outcomes(result: str, passed: bool) -> None:
    """Without a DMARC pass, an aligned DKIM pass will do; an explicit dmarc=fail never passes."""
    verdict = check_authentication(parse_mail(_mail("bob@example.com", f"{MTA}; {result}")), MTA)
    assert verdict.passed is passed, verdict.reason


def test_unparseable_header_is_skipped() -> None:
    """A malformed header counts as absent, not as a pass."""
    raw = _mail("bob@example.com", "mx.example.com; dmarc=", f"{MTA}; dmarc=pass header.from=example.com")
    assert check_authentication(parse_mail(raw), MTA).passed


def test_alignment_is_relaxed() -> None:
    """Same domain or a subdomain either way; nothing else."""
    assert aligned("example.com", "example.com")
    assert aligned("mail.example.com", "example.com") and aligned("example.com", "eu.example.com")
    assert not aligned("badexample.com", "example.com") and not aligned("", "example.com")


def test_several_trusted_ids_and_provider_wildcards() -> None:
    """A comma-separated list, and ``*.domain`` for providers whose MX hosts each sign with their own name."""
    patterns = trusted_ids(" mx.example.com , *.messagingengine.com ")
    assert patterns == ["mx.example.com", "*.messagingengine.com"]
    assert is_trusted("MX6.messagingengine.com", patterns) and is_trusted("mx.example.com", patterns)
    assert not is_trusted("messagingengine.com.evil.example", patterns)
    assert not is_trusted("evilmx.example.com", patterns) and not is_trusted("messagingengine.com", patterns)
    raw = _mail("bob@example.com", "mx3.messagingengine.com; dmarc=pass header.from=example.com")
    assert check_authentication(parse_mail(raw), "mx.example.com,*.messagingengine.com").passed
