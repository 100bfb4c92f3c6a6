"""The people directory (bot.people): explicit mappings, resolution of identities and actors, config errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.errors import ConfigError
from bot.events import (
    EVENT_ADAPTER,
    ApprovalDecided,
    ApprovalRequested,
    DecisionRefused,
    ExecutionStarted,
    UserMessage,
)
from bot.people import Actor, People, Person, same_person

DIRECTORY = People.parse("alice=U0ALICE,Alice@Example.com; bob = bob@example.com , W0BOB,bobby")


def test_mapped_identities_resolve_to_one_person() -> None:
    """Every identity of a mapped person, and the name itself, resolves to that person (emails any case)."""
    for identity in ("alice", "U0ALICE", "alice@example.com", "ALICE@example.COM"):
        assert DIRECTORY.resolve(identity).name == "alice"
    assert DIRECTORY.resolve("bobby").name == "bob"
    assert DIRECTORY.resolve("W0BOB").identities == ("bob", "bob@example.com", "w0bob", "bobby")


def test_an_unmapped_identity_is_a_person_of_its_own() -> None:
    """An identity nobody mapped stands for itself, compared case-insensitively, and is not mapped."""
    carol = DIRECTORY.resolve("Carol@Example.com")
    assert carol == Person(name="carol@example.com", identities=("carol@example.com",))
    assert not carol.mapped and DIRECTORY.resolve("alice").mapped
    assert same_person(carol, DIRECTORY.resolve("carol@example.com"))
    assert not same_person(carol, DIRECTORY.resolve("alice"))


def test_an_actor_with_a_vouched_email_is_the_person_owning_it() -> None:
    """A Slack id nobody mapped, whose Slack-reported email is mapped, is that person, also known by the id."""
    person = DIRECTORY.person_of(Actor(id="U0NEW", email="alice@example.com"))
    assert person.name == "alice" and person.has("U0NEW")
    assert same_person(person, DIRECTORY.resolve("alice@example.com"))


def test_an_actor_with_an_unmapped_email_is_that_email() -> None:
    """Approvers configured by email alone: the Slack user reporting that email is the email's person."""
    person = People().person_of(Actor(id="U0DAVE", email="Dave@Example.com"))
    assert person.name == "dave@example.com" and person.has("u0dave")
    assert same_person(person, People().resolve("dave@example.com"))
    assert same_person(person, People().resolve("U0DAVE"))


def test_an_actor_without_email_is_only_its_id() -> None:
    """Without a vouched-for email only an explicit mapping links a Slack id to a person."""
    assert DIRECTORY.person_of(Actor(id="U0ERIN")).name == "U0ERIN"
    assert DIRECTORY.person_of(Actor(id="U0ALICE")).name == "alice"
    assert not same_person(DIRECTORY.person_of(Actor(id="U0ERIN")), DIRECTORY.resolve("alice"))


def test_an_explicit_mapping_of_the_id_beats_the_reported_email() -> None:
    """A mapped Slack id stays its person whatever email Slack reports for it."""
    assert DIRECTORY.person_of(Actor(id="U0ALICE", email="bob@example.com")).name == "alice"


def test_members_of_an_approver_list_are_people() -> None:
    """An approver list naming one person twice (by name and email) has them once; membership compares people."""
    members = DIRECTORY.members(["alice", "ALICE@example.com", "U0ALICE", "carol@example.com"])
    assert [p.name for p in members] == ["alice", "carol@example.com"]
    assert DIRECTORY.is_among(DIRECTORY.person_of(Actor(id="U0ALICE")), ["alice@example.com"])
    assert DIRECTORY.is_among(DIRECTORY.person_of(Actor(id="U9", email="carol@example.com")), ["carol@example.com"])
    assert not DIRECTORY.is_among(DIRECTORY.person_of(Actor(id="U9")), ["carol@example.com"])


def test_emails_and_labels() -> None:
    """A person's email addresses keep their configured order; the label shows the identity acted under."""
    person = People.parse("eve=eve@b.example,U0EVE,eve@a.example").resolve("eve")
    assert person.emails == ["eve@b.example", "eve@a.example"]
    assert person.label("U0EVE") == "eve (U0EVE)" and person.label("eve") == "eve" and person.label() == "eve"


@pytest.mark.parametrize(("raw", "message"), [
    ("alice", r"OPSGATE_PEOPLE: 'alice' must look like name=identity"),
    ("Alice=alice@example.com", r"OPSGATE_PEOPLE: person name 'Alice' must be a user name"),
    ("alice=", r"OPSGATE_PEOPLE: alice lists no identities"),
    ("alice=not valid", r"OPSGATE_PEOPLE: not valid \(for alice\) is not a Slack user id"),
    ("alice=a@example.com; bob=A@example.com", r"a@example.com is listed for both alice and bob"),
    ("alice=U0A; bob=alice", r"alice is listed for both alice and bob"),
    ("alice=U0A; alice=U0B", r"OPSGATE_PEOPLE: alice is listed twice"),
])
def test_config_errors_name_the_variable(raw: str, message: str) -> None:
    """Each mapping mistake raises ConfigError naming OPSGATE_PEOPLE and what is wrong."""
    with pytest.raises(ConfigError, match=message):
        People.parse(raw)


def test_empty_mapping_is_an_empty_directory() -> None:
    """No OPSGATE_PEOPLE (or only separators) is valid: every identity is its own person."""
    assert People.parse(None).people == () and People.parse(" ; ;").people == ()


def test_events_stored_before_people_still_load() -> None:
    """Rows written before people were recorded (no person fields) load, with those fields empty."""
    old = [
        '{"type": "user_message", "id": "e1", "at": "2026-01-01T00:00:00Z", "text": "hi", "user": "U0ALICE"}',
        '{"type": "approval_requested", "id": "e2", "at": "2026-01-01T00:00:00Z", "action_id": "a", "name": "deploy",'
        ' "arguments": {}, "requester": "U0ALICE", "four_eyes": true}',
        '{"type": "approval_decided", "id": "e3", "at": "2026-01-01T00:00:00Z", "approval_id": "p", "action_id": "a",'
        ' "approved": true, "by": "bob@example.com"}',
        '{"type": "decision_refused", "id": "e4", "at": "2026-01-01T00:00:00Z", "by": "U0EVE", "reason": "no"}',
        '{"type": "execution_started", "id": "e5", "at": "2026-01-01T00:00:00Z", "action_id": "a", "name": "deploy",'
        ' "arguments": {}, "idempotency_key": "t:a", "approved_by": "bob@example.com"}',
    ]
    events = [EVENT_ADAPTER.validate_json(raw) for raw in old]
    assert isinstance(events[0], UserMessage) and events[0].person is None
    assert isinstance(events[1], ApprovalRequested) and events[1].requester_person is None
    assert isinstance(events[2], ApprovalDecided) and events[2].by_person is None
    assert isinstance(events[3], DecisionRefused) and events[3].by_person is None
    assert isinstance(events[4], ExecutionStarted) and events[4].approved_by_person is None


def test_a_person_of_their_own_is_shared_and_cannot_change() -> None:
    """Unmapped identities are built once and shared (a decision resolves the same few several times), which is
    only safe while a Person is frozen."""
    people = People.parse("")
    first, again = people.resolve("U0AAA"), people.resolve(" U0AAA ")
    assert first == again and first.name == "U0AAA" and not first.mapped
    assert people.resolve("Bob@Example.com").name == "bob@example.com"
    with pytest.raises(ValidationError):
        first.name = "someone else"  # type: ignore[misc]
