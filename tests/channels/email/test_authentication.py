"""Trusting Authentication-Results: only the topmost header from a trusted authserv-id, failing closed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.text import storable
from channels.email.auth_results import AuthResultsError, parse_authentication_results
from channels.email.authentication import check_authentication, is_trusted, topmost_trusted, trusted_ids
from channels.email.inbound import InboundMail, parse_mail
from tests.channels.email.conftest import raw_message

MTA = "mx.example.com"


def _mail(sender: str, *results: str) -> bytes:
    headers = "".join(f"Authentication-Results: {r}\r\n" for r in results)
    return f"{headers}From: {sender}\r\nMessage-ID: <a@b>\r\n\r\nAPPROVE\r\n".encode()


def _check(sender: str, *results: str, trusted: str = MTA) -> tuple[bool, str]:
    verdict = check_authentication(parse_mail(_mail(sender, *results)), trusted)
    return verdict.passed, verdict.reason


def test_gmail_reply_with_dmarc_pass_is_authenticated() -> None:
    """dmarc=pass for the From domain from our authserv-id passes, and the verdict carries the header it read."""
    verdict = check_authentication(parse_mail(raw_message("gmail_reply_approve")), MTA)
    assert verdict.passed and "dmarc=pass for example.com" in verdict.reason
    assert verdict.header is not None and verdict.header.startswith("mx.example.com; dkim=pass (2048-bit key;")


def test_forged_from_with_dmarc_fail_is_refused_despite_a_lower_fake_pass() -> None:
    """Only the topmost header of our MTA counts; a forger's extra "dmarc=pass" header below it does not."""
    verdict = check_authentication(parse_mail(raw_message("forged_dmarc_fail")), MTA)
    assert not verdict.passed and "dmarc=fail for example.com" in verdict.reason


def test_another_authserv_id_is_not_trusted() -> None:
    """A header written by someone else's server (or the sender) is ignored; with no trusted one, refused."""
    passed, reason = _check("bob@example.com", "mx.attacker.example; dmarc=pass header.from=example.com")
    assert not passed and reason == "no Authentication-Results header from mx.example.com"


def test_no_authentication_results_at_all_is_refused() -> None:
    """A mail without any Authentication-Results header is refused."""
    assert _check("bob@example.com") == (False, "no Authentication-Results header from mx.example.com")


def test_authserv_id_is_case_insensitive() -> None:
    """Host names compare without case."""
    assert _check("bob@example.com", "MX.Example.COM; dmarc=pass header.from=example.com")[0]


@pytest.mark.parametrize(("result", "passed"), [
    ("dkim=pass header.d=example.com", True),
    ("dkim=pass header.i=@mail.example.com", True),
    ("dkim=pass header.i=bob@example.com", True),
    ("dkim=pass header.d=other.example.net", False),
    ("dkim=fail header.d=example.com", False),
    ("dkim=pass", False),  # no signing domain: nothing to align
    ("dkim=pass header.d=example.com header.d=evil.example.net", False),  # ambiguous signer
    ("dkim=pass header.d=evil.example.net; dkim=pass header.d=example.com", True),  # any aligned pass counts
    ("dmarc=none header.from=example.com; dkim=pass header.d=example.com", True),
    ("dmarc=temperror header.from=example.com; dkim=pass header.d=example.com", True),
    ("dmarc=permerror header.from=example.com; dkim=pass header.d=example.com", True),
    ("dmarc=fail header.from=example.com; dkim=pass header.d=example.com", False),
    ("dkim=pass header.d=example.com; dmarc=fail header.from=example.com", False),
    ("dmarc=pass header.from=example.com; dmarc=fail header.from=example.com", False),  # fail anywhere
    ("dmarc=bestguesspass header.from=example.com; dkim=pass header.d=example.com", False),  # not inconclusive
    ("dmarc=pass header.from=evil.example.net", False),
    ("dmarc=pass header.from=example.com; dmarc=pass header.from=evil.example.net", False),  # two From domains
    ("dmarc=pass header.from=mail.example.com", False),  # DMARC names the exact From domain
    ("dmarc=pass", False),  # for which domain?
    ("dmarc=pass; dkim=pass header.d=example.com", False),
    ("dmarc=pass header.from=EXAMPLE.com.", True),
    ("dmarc=pass header.from=bob@example.com", True),
    ("spf=pass smtp.mailfrom=example.com", False),  # SPF alone never authenticates the From header
    ("none", False),
])
def test_dkim_alignment_and_dmarc_outcomes(result: str, passed: bool) -> None:
    """Without a DMARC pass, an aligned DKIM pass will do; an explicit dmarc=fail never passes."""
    verdict_passed, reason = _check("bob@example.com", f"{MTA}; {result}")
    assert verdict_passed is passed, reason


@pytest.mark.parametrize(("result", "expected"), [
    ("dmarc=fail header.from=example.com", "dmarc=fail for example.com in the topmost Authentication-Results "
     "header from mx.example.com"),
    ("dmarc=pass header.from=evil.example.net", "dmarc=pass is for header.from=evil.example.net, not for the From "
     "domain example.com"),
    ("dmarc=pass", "dmarc=pass without header.from is neither a pass for the From domain nor inconclusive"),
    ("dmarc=none header.from=example.com; dkim=pass header.d=co.uk", "dmarc=none; dkim=pass only by co.uk, not "
     "aligned with example.com"),
    ("spf=pass smtp.mailfrom=example.com", "no dmarc result and no dkim=pass for example.com"),
])
def test_refusal_reasons_say_which_header_and_what_it_said(result: str, expected: str) -> None:
    """The reason names the result, the domains and the header it was read from."""
    passed, reason = _check("bob@example.com", f"{MTA}; {result}")
    assert not passed and expected in reason and "from mx.example.com" in reason


def test_unparseable_trusted_header_is_refused_never_skipped() -> None:
    """A malformed topmost header from our server refuses the mail; the well-formed pass below it is not read."""
    passed, reason = _check("bob@example.com", "mx.example.com; dmarc=",
                            f"{MTA}; dmarc=pass header.from=example.com")
    assert not passed
    assert reason == ("the topmost Authentication-Results header from mx.example.com cannot be read (expected a "
                      "result for method 'dmarc' at the end); headers below it are not consulted")


def test_unknown_header_version_is_refused() -> None:
    """RFC 8601 version 1 is the only one there is; a header with another version is not acted on."""
    passed, reason = _check("bob@example.com", f"{MTA} 2; dmarc=pass header.from=example.com",
                            f"{MTA}; dmarc=pass header.from=example.com")
    assert not passed and "has version 2" in reason
    assert _check("bob@example.com", f"{MTA} 1; dmarc=pass header.from=example.com")[0]


def test_sender_without_a_domain_is_refused() -> None:
    """No readable From domain, nothing to authenticate."""
    assert _check("", f"{MTA}; dmarc=pass header.from=example.com") == (
        False, "the message has no readable From address")


def test_empty_setting_trusts_nobody() -> None:
    """A setting of only commas and spaces refuses everything instead of trusting any header."""
    assert _check("bob@example.com", f"{MTA}; dmarc=pass header.from=example.com", trusted=" , ") == (
        False, "no trusted authserv-id is configured")


def test_topmost_trusted_skips_foreign_headers() -> None:
    """Headers of other servers are passed over; the first claim of a trusted id wins, readable or not."""
    values = ["relay.example.org; dmarc=none", "mx.example.com; dmarc=",
              "mx.example.com; dmarc=pass header.from=example.com"]
    assert topmost_trusted(values, [MTA]) == ("mx.example.com", "mx.example.com; dmarc=")
    assert topmost_trusted(values[:1], [MTA]) is None


def test_unattributable_header_above_the_trusted_one_refuses() -> None:
    """A header above ours whose authserv-id cannot be read may be our own server's: refuse, never look lower."""
    raw = "(unclosed mx.example.com; dmarc=pass"
    mail = parse_mail(_mail("bob@example.com", raw, f"{MTA}; dmarc=pass header.from=example.com"))
    verdict = check_authentication(mail, MTA)
    assert not verdict.passed and "no readable authserv-id" in verdict.reason and verdict.header == raw


def test_long_header_is_shortened_in_the_verdict() -> None:
    """The raw header kept for the log is bounded."""
    raw = f"{MTA}; dmarc=fail header.from=example.com" + " (x)" * 5000
    verdict = check_authentication(parse_mail(_mail("bob@example.com", raw)), MTA)
    assert not verdict.passed and verdict.header is not None
    assert len(verdict.header) < 4100 and verdict.header.endswith("more characters)")


def test_several_trusted_ids_and_provider_wildcards() -> None:
    """A comma-separated list, and ``*.domain`` for providers whose MX hosts each sign with their own name."""
    patterns = trusted_ids(" mx.example.com , *.messagingengine.com ")
    assert patterns == ["mx.example.com", "*.messagingengine.com"]
    assert is_trusted("MX6.messagingengine.com", patterns) and is_trusted("mx.example.com", patterns)
    assert not is_trusted("messagingengine.com.evil.example", patterns)
    assert not is_trusted("evilmx.example.com", patterns) and not is_trusted("messagingengine.com", patterns)
    assert not is_trusted("mx.exampl\u212a.com", ["mx.examplk.com"])  # the Kelvin sign lower-cases to "k"
    assert _check("bob@example.com", "mx3.messagingengine.com; dmarc=pass header.from=example.com",
                  trusted="mx.example.com,*.messagingengine.com")[0]


_HEADER_TEXT = st.one_of(st.text(max_size=80), st.lists(st.sampled_from([
    "mx.example.com", ";", " ", "(", ")", '"', "\\", "=", ".", "dmarc", "dkim", "pass", "fail", "none", "header",
    "from", "d", "i", "example.com", "@", "co.uk", "1", "2"]), max_size=30).map("".join))


@settings(database=None, deadline=None, max_examples=300)
@given(_HEADER_TEXT)
def test_an_unreadable_trusted_header_never_lets_a_lower_pass_through(tail: str) -> None:
    """Whatever our server's topmost header says, if it cannot be parsed the verdict is a refusal."""
    top = storable(f"{MTA}; {tail}")  # InboundMail keeps storable text (NUL -> U+FFFD), as parse_mail makes it
    try:
        parse_authentication_results(top)
    except AuthResultsError:
        forged = f"{MTA}; dkim=pass header.d=example.com; dmarc=pass header.from=example.com"
        mail = InboundMail(message_id="<a@b>", sender="bob@example.com", authentication_results=[top, forged])
        verdict = check_authentication(mail, MTA)
        assert not verdict.passed and "cannot be read" in verdict.reason and verdict.header == top


@settings(database=None, deadline=None, max_examples=300)
@given(st.lists(_HEADER_TEXT, max_size=4), st.sampled_from([
    "bob@example.com", "", "x@", "a@co.uk", "b@b\u00fccher.de",
]))
def test_the_verdict_never_raises(headers: list[str], sender: str) -> None:
    """Any header values and any sender give a verdict with a reason, never an exception."""
    mail = InboundMail(message_id="<a@b>", sender=sender, authentication_results=headers)
    verdict = check_authentication(mail, f"{MTA},*.example.net")
    assert verdict.reason
