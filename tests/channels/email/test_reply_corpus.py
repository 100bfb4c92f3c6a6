"""Approval replies from many clients and languages: the decision comes only from what the approver typed.

Every style in ``replies/`` is sent as a real MIME message, once as plain text and once HTML-only, with nothing
typed, APPROVE, REJECT: reason, negated approvals, and (where the quote is marked) the answer below the quote;
``parse_mail`` (what the watcher runs) and ``parse_decision`` (what intake runs) must read each one right.
"""

from __future__ import annotations

import html
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from channels.email.decisions import Approve, Reject, Unclear, parse_decision
from channels.email.inbound import parse_mail

REPLIES = Path(__file__).parent / "replies"
# The approval request being quoted. It starts with APPROVE on purpose: a quote read as typed text approves.
ORIGINAL = [
    "APPROVE",
    "REJECT: <your reason>",
    "",
    "alice@example.com asked for an action that needs your approval.",
    "",
    "Action: deploy api 1.4.2 to production",
    "",
    "Reply with one of these as the first line of your email.",
]
REASON = "wait until the change freeze ends"
NEGATIONS = ["I do not approve", "don't approve", "Not approved.", "APPROVE? no", "Do NOT approve this"]


def _styles() -> list[str]:
    return sorted(path.stem for path in REPLIES.glob("*.reply"))


def _template(style: str, part: str) -> str:
    """The text/plain or text/html body template of a style file."""
    text = (REPLIES / f"{style}.reply").read_text(encoding="utf-8")
    sections = dict(
        (chunk.split("\n", 1)[0].strip(), chunk.split("\n", 1)[1]) for chunk in text.split("== ")[1:]
    )
    return sections[part]


def _render(template: str, html_body: bool, typed: str = "", below: str = "") -> str:
    def block(text: str) -> str:
        if not html_body:
            return text
        return "".join(f"<div>{html.escape(line) or '<br>'}</div>" for line in text.splitlines())

    original = block("\n".join(ORIGINAL)) if html_body else "\n".join(ORIGINAL)
    quoted = "\n".join(f"> {line}".rstrip() for line in ORIGINAL)
    return (template.replace("{typed}", block(typed)).replace("{below}", block(below))
            .replace("{quoted}", quoted).replace("{original}", original))


def _mail(body: str, html_body: bool) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Carol Ops <carol@corp.example.org>"
    msg["To"] = "opsgate+token@example.com"
    msg["Subject"] = "Re: [opsgate] Approval needed: deploy api 1.4.2 to production"
    msg["Message-ID"] = "<reply-1@corp.example.org>"
    msg["In-Reply-To"] = "<opsgate.3f2a9c1e.a.8c1f0e2d@example.com>"
    msg.set_content(body, subtype="html" if html_body else "plain", charset="utf-8")
    return msg.as_bytes(policy=SMTP)


def _decide(style: str, part: str, typed: str = "", below: str = "") -> Approve | Reject | Unclear:
    html_body = part == "text/html"
    mail = parse_mail(_mail(_render(_template(style, part), html_body, typed, below), html_body))
    assert mail.content_type == part
    assert "alice@example.com asked" not in mail.text, f"quoted history leaked into the typed text: {mail.text!r}"
    return parse_decision(mail.text)


STYLES = _styles()
PARTS = ["text/plain", "text/html"]


def test_the_corpus_covers_twenty_styles_and_the_languages() -> None:
    """At least 20 styles, with quote headers in en, de, fr, es, it, pt, nl, sv, pl, ja and zh."""
    assert len(STYLES) >= 20
    languages = {style.rsplit("_", 1)[-1] for style in STYLES} | {"zh" for s in STYLES if s.endswith("zh_tw")}
    assert {"en", "de", "fr", "es", "it", "pt", "nl", "sv", "pl", "ja", "zh"} <= languages


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("style", STYLES)
def test_nothing_typed_is_no_decision(style: str, part: str) -> None:
    """A reply with nothing typed above the quote (whose first line is APPROVE) has no text and no decision."""
    decision = _decide(style, part)
    assert isinstance(decision, Unclear) and "empty" in decision.problem


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("style", STYLES)
def test_approve_typed_above_the_quote_approves(style: str, part: str) -> None:
    """APPROVE typed above the quote approves."""
    assert isinstance(_decide(style, part, typed="APPROVE"), Approve)


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("style", STYLES)
def test_reject_typed_above_the_quote_rejects_with_the_reason(style: str, part: str) -> None:
    """REJECT: reason typed above the quote rejects, with exactly that reason."""
    decision = _decide(style, part, typed=f"REJECT: {REASON}\n\nThanks")
    assert isinstance(decision, Reject) and decision.reason == REASON


@pytest.mark.parametrize("negation", NEGATIONS)
@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("style", STYLES)
def test_a_negated_approval_is_never_an_approval(style: str, part: str, negation: str) -> None:
    """'I do not approve', 'don't approve', 'not approved', 'APPROVE? no' are no decision."""
    assert isinstance(_decide(style, part, typed=negation), Unclear)


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("style", [s for s in STYLES if "{below}" in _template(s, "text/plain")])
def test_an_answer_below_the_quote_is_read(style: str, part: str) -> None:
    """Bottom-posting: APPROVE or REJECT typed under the marked quote decides."""
    assert isinstance(_decide(style, part, below="APPROVE"), Approve)
    decision = _decide(style, part, below=f"REJECT: {REASON}")
    assert isinstance(decision, Reject) and decision.reason == REASON


@pytest.mark.parametrize("part", PARTS)
def test_approve_taken_back_below_is_no_decision(part: str) -> None:
    """APPROVE on top and "I do not approve" under the quote contradict each other: no decision."""
    decision = _decide("gmail_en", part, typed="APPROVE", below="Sorry, I do not approve after all.")
    assert isinstance(decision, Unclear) and "take it back" in decision.problem
