"""Pure parts of credentials: the token format, lifetimes, and who a request may act as."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config import load_settings
from bot.credentials import DurationError, digest, looks_like_token, new_token, parse_duration
from bot.errors import ConfigError, NotAuthorized
from bot.principals import PersonalCaller, SharedCaller, acting_user, same_person

SETTINGS = load_settings({"OPSGATE_PEOPLE": "alice=alice@example.com,UALICE01"})


def test_tokens_have_a_prefix_a_checksum_and_256_random_bits() -> None:
    """Each token is ogp_ + 49 base62 characters whose checksum holds; one changed character breaks it."""
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in list(tokens)[:20]:
        assert token.startswith("ogp_") and len(token) == 53 and token[4:].isalnum()
        assert looks_like_token(token)
        flipped = token[:10] + ("a" if token[10] != "a" else "b") + token[11:]
        assert not looks_like_token(flipped)
    assert not looks_like_token("ogp_short") and not looks_like_token("ghp_" + "a" * 49)
    assert digest("x") == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"


@pytest.mark.parametrize(("text", "expected"), [
    ("90m", timedelta(minutes=90)), ("12h", timedelta(hours=12)), ("30d", timedelta(days=30)),
    ("2w", timedelta(weeks=2)), (" 7d ", timedelta(days=7)), ("never", None), ("NEVER", None),
])
def test_durations(text: str, expected: timedelta | None) -> None:
    """Minutes, hours, days, weeks, or never."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "problem"), [
    ("", "use a number and a unit"), ("30", "use a number and a unit"), ("1y", "use a number and a unit"),
    ("-5d", "use a number and a unit"), ("1.5h", "use a number and a unit"), ("0m", "longer than zero"),
    ("3651d", "longer than 3650 days"),
])
def test_bad_durations_say_what_is_accepted(text: str, problem: str) -> None:
    """Anything else is a DurationError naming the accepted forms."""
    with pytest.raises(DurationError, match=problem):
        parse_duration(text)


ALICE = PersonalCaller(person="alice@example.com", token_id="tok_1")


def test_a_personal_token_acts_as_its_person_or_another_identity_of_them() -> None:
    """No user, the same identity in other case, or a mapped identity of the same person are all fine."""
    assert acting_user(ALICE, None, SETTINGS, deciding=True) == "alice@example.com"
    assert acting_user(ALICE, "  ", SETTINGS, deciding=False) == "alice@example.com"
    assert acting_user(ALICE, "Alice@Example.com", SETTINGS, deciding=True) == "Alice@Example.com"
    assert acting_user(ALICE, "UALICE01", SETTINGS, deciding=True) == "UALICE01"
    assert same_person("alice", "UALICE01", SETTINGS)
    assert not same_person("alice", "bob@example.com", SETTINGS)


@pytest.mark.parametrize("deciding", [True, False])
def test_a_personal_token_cannot_name_someone_else(deciding: bool) -> None:
    """Naming another person is refused, deciding or not."""
    with pytest.raises(NotAuthorized, match="belongs to alice@example.com; it cannot act as bob@example.com"):
        acting_user(ALICE, "bob@example.com", SETTINGS, deciding=deciding)


def test_the_shared_token_acts_as_api_and_never_decides() -> None:
    """Without the relay opt-in: requests are by ``api``; naming a user or deciding is refused."""
    shared = SharedCaller(relay=False)
    assert acting_user(shared, None, SETTINGS, deciding=False) == "api"
    assert acting_user(shared, "api", SETTINGS, deciding=False) == "api"
    with pytest.raises(NotAuthorized, match="cannot act as bob"):
        acting_user(shared, "bob", SETTINGS, deciding=False)
    for user in (None, "alice@example.com"):
        with pytest.raises(NotAuthorized, match="decisions need a personal token"):
            acting_user(shared, user, SETTINGS, deciding=True)


def test_a_trusted_relay_asserts_anyone() -> None:
    """With OPSGATE_API_TRUSTED_RELAY the shared token acts as whoever it names (default ``api``)."""
    relay = SharedCaller(relay=True)
    assert acting_user(relay, "bob@example.com", SETTINGS, deciding=True) == "bob@example.com"
    assert acting_user(relay, None, SETTINGS, deciding=True) == "api"


def test_public_url_must_be_an_absolute_http_url() -> None:
    """OPSGATE_PUBLIC_URL (the base of sign-in links) is checked at start-up; a trailing slash is dropped."""
    assert load_settings({"OPSGATE_PUBLIC_URL": "https://ops.example.com/"}).public_url == "https://ops.example.com"
    assert load_settings({"OPSGATE_PUBLIC_URL": "http://10.0.0.5:8080/inbox"}).public_url == "http://10.0.0.5:8080/inbox"
    for bad in ("ops.example.com", "ftp://ops.example.com", "https://ops.example.com/?next=x", "javascript:x"):
        with pytest.raises(ConfigError, match="OPSGATE_PUBLIC_URL"):
            load_settings({"OPSGATE_PUBLIC_URL": bad})
