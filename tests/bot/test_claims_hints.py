"""The quick look before the claims pattern (bot/claims.py ``_HINTS``) never hides a claim: on any text, finding
and removing claims give what the whole pattern alone gives."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.claims import _CLAIMS, _HINTS, find_claims, without_claims

# One phrase per alternative of _CLAIMS (lower case).
_PHRASES = ["i am the approver", "as an on-call", "i'm one of the release managers", "i got clearance",
           "i have the sign-off", "already approved", "preapproved", "it has been signed off", "was approved",
           "ok'd by", "okayed by", "approved by", "signed off by", "my boss said", "security agreed",
           "cto ok'd", "skip the review", "no need for four-eyes", "don't wait for approval",
           "without any approvals", "no signoff", "just do it", "trust me", "vp approved"]
# Those phrases, every word of the pattern, some near misses and plain words, to build texts from.
_PATTERN_WORDS = sorted(set(re.findall(r"[a-z']{2,}", _CLAIMS.pattern)))
_WORDS = [*_PHRASES, *_PATTERN_WORDS, "deploy", "api", "1.2.3", "production", "please", "now", "token", "ok'd",
          "okayed", "pre-approved", "sign-off", "on-call", "four-eyes", "i", "a", "an", "the", "my", "ſecurity",
          "K", "İ"]
_SPACE = st.sampled_from([" ", "  ", "\n", "\t", ". ", "; ", "! ", ", ", " - "])


def _case(word: str, how: int) -> str:
    return (word, word.upper(), word.title(), word.swapcase())[how]


_TEXTS = st.lists(st.tuples(st.sampled_from(_WORDS), st.integers(0, 3), _SPACE), max_size=14).map(
    lambda parts: "".join(_case(w, how) + space for w, how, space in parts))


def _whole_pattern(text: str) -> list[str]:
    return [" ".join(m.group(0).split()) for m in _CLAIMS.finditer(text)]


@settings(max_examples=1500, deadline=None)
@given(_TEXTS)
def test_finding_claims_is_the_whole_pattern(text: str) -> None:
    assert find_claims(text) == _whole_pattern(text)


@settings(max_examples=600, deadline=None)
@given(_TEXTS)
def test_removing_claims_is_the_whole_pattern(text: str) -> None:
    sentences = [s.strip() for s in re.findall(r"[^.!?;\n]+[.!?;]*", text) if s.strip()]
    expected = " ".join(s for s in sentences if not _CLAIMS.search(s)).strip() or None
    assert without_claims(text) == expected


def test_each_alternative_of_the_pattern_holds_a_hint() -> None:
    """One example phrase per alternative of _CLAIMS, in lower case: each matches, and each holds a hint."""
    for phrase in _PHRASES:
        assert _CLAIMS.search(phrase), phrase
        assert _HINTS.search(phrase), phrase
