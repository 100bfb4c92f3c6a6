"""Approval tokens: bound to one approval and one approver, unguessable, survive lower-casing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.events import new_id
from channels.email.tokens import TOKEN_TTL, expired, make_token, new_secret, read_token

APPROVAL = "3f2a9c1e8b7d4e6fa1b2c3d4e5f60718"  # an approval id as they were made before ids got short


@pytest.mark.parametrize("approval", [APPROVAL, new_id()], ids=["32-hex id", "short id"])
def test_token_round_trip(approval: str) -> None:
    """A token made for (approval, approver) verifies for that approver, whatever the case of the address; for
    today's short ids and the 32-hex ids of approvals requested before."""
    secret = new_secret()
    claim = read_token(make_token(secret, approval, "bob@example.com").upper())
    assert claim is not None and claim.approval_id == approval
    assert claim.valid_for(secret, "Bob@Example.com")


def test_token_does_not_transfer() -> None:
    """Another approver, another secret or a tampered mac do not verify."""
    secret = new_secret()
    token = make_token(secret, APPROVAL, "bob@example.com")
    claim = read_token(token)
    assert claim is not None
    assert not claim.valid_for(secret, "mallory@example.com")
    assert not claim.valid_for(new_secret(), "bob@example.com")
    tampered = read_token(token[:-1] + ("a" if token[-1] != "a" else "b"))
    assert tampered is not None and not tampered.valid_for(secret, "bob@example.com")


def test_token_for_another_approval_does_not_verify() -> None:
    """The mac covers the approval id: swapping the id breaks it."""
    secret = new_secret()
    token = make_token(secret, APPROVAL, "bob@example.com")
    swapped = read_token("0" * 32 + token[32:])
    assert swapped is not None and not swapped.valid_for(secret, "bob@example.com")


def test_agent_names_and_junk_are_not_tokens() -> None:
    """Plus-tags that name agents are not mistaken for tokens."""
    assert read_token("deploy") is None
    assert read_token(f"{APPROVAL}-short") is None
    assert read_token("") is None


def test_token_fits_in_an_address_local_part() -> None:
    """``opsgate+<token>`` stays within the 64 characters RFC 5321 allows for a local part."""
    assert len("opsgate+" + make_token(new_secret(), APPROVAL, "bob@example.com")) <= 64


def test_tokens_expire() -> None:
    """A token is good for TOKEN_TTL after the approval was requested, not after."""
    asked = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert not expired(asked, asked + TOKEN_TTL)
    assert expired(asked, asked + TOKEN_TTL + timedelta(seconds=1))
