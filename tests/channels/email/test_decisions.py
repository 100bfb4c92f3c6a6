"""Reading a decision from the first non-empty line of the stripped reply."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.email.decisions import Approve, Reject, Unclear, first_line, parse_decision
from channels.email.inbound import parse_mail
from tests.channels.email.conftest import raw_message


@pytest.mark.parametrize("text", ["APPROVE", "approve", "Approved.", "\n\n  APPROVE  \nthanks", "*APPROVE*"])
def test_approve_forms(text: str) -> None:
    """APPROVE (any case, trailing punctuation, bold markers) on the first line approves."""
    assert isinstance(parse_decision(text), Approve)


@pytest.mark.parametrize(("text", "reason"), [
    ("REJECT: wait for the freeze", "wait for the freeze"),
    ("reject - not on a Friday", "not on a Friday"),
    ("Rejected: tests are red\nmore words", "tests are red"),
])
def test_reject_forms_carry_the_reason(text: str, reason: str) -> None:
    """REJECT with a separator and a reason rejects with that reason."""
    decision = parse_decision(text)
    assert isinstance(decision, Reject) and decision.reason == reason


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty"),
    ("REJECT", "needs a reason"),
    ("REJECT:   ", "needs a reason"),
    ("Looks fine to me\nAPPROVE", "neither APPROVE nor REJECT"),
    ("I approve", "neither APPROVE nor REJECT"),
    ("APPROVE this and also that", "neither APPROVE nor REJECT"),
])
def test_anything_else_is_unclear(text: str, problem: str) -> None:
    """Only the first line counts; anything not exactly a decision is unclear, with the problem named."""
    decision = parse_decision(text)
    assert isinstance(decision, Unclear) and problem in decision.problem


def test_saved_replies_decide() -> None:
    """The Gmail reply approves; the Outlook reply rejects with its reason."""
    assert isinstance(parse_decision(parse_mail(raw_message("gmail_reply_approve")).text), Approve)
    outlook = parse_decision(parse_mail(raw_message("outlook_reply_reject")).text)
    assert isinstance(outlook, Reject) and outlook.reason == "wait until the change freeze ends on Friday"


def test_quoted_instructions_never_count() -> None:
    """A reply with nothing new above our quoted "APPROVE" line is not an approval."""
    raw = (b"From: bob@example.com\r\nMessage-ID: <q@x>\r\n\r\n\r\nOn Mon, 23 Nov 2026 at 11:02, opsgate "
           b"<opsgate@example.com> wrote:\r\n> To answer, reply with:\r\n>\r\n>   APPROVE\r\n")
    assert isinstance(parse_decision(parse_mail(raw).text), Unclear)


@pytest.mark.parametrize("text", [
    "APPROVE\n\nActually no, I do not approve",
    "APPROVE\ndon't approve yet",
    "APPROVE\nREJECT: changed my mind",
    "Approved\nI disapprove of the timing",
])
def test_approve_taken_back_by_a_later_line_is_unclear(text: str) -> None:
    """An APPROVE contradicted further down (a negated approval, a REJECT line) is no decision."""
    decision = parse_decision(text)
    assert isinstance(decision, Unclear) and "take it back" in decision.problem


def test_approve_with_friendly_words_still_approves() -> None:
    """Ordinary words under APPROVE do not count as taking it back."""
    assert isinstance(parse_decision("APPROVE\n\nLooks good, go ahead. No rush on the notes."), Approve)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.sampled_from(["I do not approve", "don't approve", "not approved", "never approve",
                                              "do NOT approve", "disapprove"]), st.text(max_size=80))
def test_a_negated_approval_anywhere_is_never_an_approval(before: str, negation: str, after: str) -> None:
    """Whatever surrounds it, a text containing a negated approval on its own line never approves."""
    text = f"{before}\n{negation}\n{after}"
    assert not isinstance(parse_decision(text), Approve)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_only_an_approve_first_line_approves(text: str) -> None:
    """An approval always comes from a first line that is APPROVE/APPROVED, nothing else."""
    if isinstance(parse_decision(text), Approve):
        assert first_line(text).strip("*_ \t").rstrip(".!").strip().lower() in {"approve", "approved"}
