"""The one authorization function (bot.authorization.may_decide): people, not strings, on every channel."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.authorization import Allowed, Refusal, email_approvers, may_decide
from bot.config import Settings, load_settings
from bot.errors import NotAuthorized
from bot.people import Actor
from bot.thread import PendingApproval

ALICE_SLACK, ALICE_MAIL, CAROL_MAIL = "U0ALICE", "alice@example.com", "carol@example.com"
CHANNELS = ["slack", "email", "web", "api", "cli"]


def pending(requester: str | None = ALICE_SLACK, person: str | None = None, *, four_eyes: bool = True,
            group: str | None = "deployers") -> PendingApproval:
    """A production deploy waiting for approval, requested by ``requester`` (fixed as ``person``)."""
    return PendingApproval(
        approval_id="ap1", action_id="ac1", action="deploy", group=group,
        arguments={"service": "api", "version": "1.4.2", "environment": "production"},
        requester=requester, requester_person=person, four_eyes=four_eyes, requested_at=datetime.now(UTC),
    )


def settings(**env: str) -> Settings:
    return load_settings(env)


BY_EMAIL = settings(OPSGATE_APPROVERS_DEPLOYERS=f"{ALICE_MAIL},{CAROL_MAIL}")
MAPPED = settings(OPSGATE_PEOPLE=f"alice={ALICE_SLACK},{ALICE_MAIL},alice.w; carol=U0CAROL,{CAROL_MAIL}",
                  OPSGATE_APPROVERS_DEPLOYERS="alice,carol")


def refusal(answer: Allowed | Refusal) -> Refusal:
    assert isinstance(answer, Refusal), answer
    return answer


def test_not_identified() -> None:
    """No identity (or a blank one) is refused as not_identified, on every channel and in open mode."""
    for config in (BY_EMAIL, settings()):
        for actor in (None, "", "  "):
            assert refusal(may_decide(actor, pending(), "web", config, approving=True)).kind == "not_identified"


@pytest.mark.parametrize("channel", ["slack", "email", "telegram"])
def test_open_mode_channel(channel: str) -> None:
    """Without approvers only local channels decide: Slack and email get open_mode_channel naming the fix."""
    answer = refusal(may_decide(CAROL_MAIL, pending(four_eyes=False), channel, settings(), approving=True))
    assert answer.kind == "open_mode_channel" and "OPSGATE_APPROVERS" in answer.reason


@pytest.mark.parametrize("channel", ["web", "api", "cli"])
def test_open_mode_allows_local_channels(channel: str) -> None:
    """In open mode anyone identified on the inbox, API or CLI decides, and is still resolved to a person."""
    answer = may_decide("someone", pending(four_eyes=False), channel, settings(), approving=True)
    assert isinstance(answer, Allowed) and answer.person.name == "someone"


def test_not_an_approver_names_the_person_and_the_group() -> None:
    """Someone outside the group is refused as not_an_approver; the reason names them and the group."""
    answer = refusal(may_decide("U0EVE", pending(), "slack", MAPPED, approving=False))
    assert answer.kind == "not_an_approver" and answer.reason == "U0EVE is not one of the group deployers for deploy"
    assert answer.person is not None and answer.person.name == "U0EVE"
    error = answer.error()
    assert isinstance(error, NotAuthorized) and error.kind == "not_an_approver" and str(error) == answer.reason


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("decider", [ALICE_SLACK, ALICE_MAIL, "ALICE@Example.COM", "alice", "alice.w",
                                     Actor(id=ALICE_SLACK), Actor(id="U0OTHER", email=ALICE_MAIL)])
def test_four_eyes_holds_across_identities_and_channels(decider: Actor | str, channel: str) -> None:
    """Alice asked from Slack; as any of her identities, on any channel, she may not approve it."""
    answer = refusal(may_decide(decider, pending(ALICE_SLACK, "alice"), channel, MAPPED, approving=True))
    assert answer.kind == "four_eyes" and answer.reason.startswith("four-eyes rule: alice")
    assert answer.person is not None and answer.person.name == "alice"


@pytest.mark.parametrize("decider", [ALICE_SLACK, ALICE_MAIL, "alice"])
def test_the_requester_may_still_reject(decider: str) -> None:
    """Rejecting (cancelling) one's own request stays allowed under four-eyes."""
    assert isinstance(may_decide(decider, pending(ALICE_SLACK, "alice"), "email", MAPPED, approving=False), Allowed)


def test_four_eyes_by_email_alone_uses_the_slack_reported_address() -> None:
    """Approvers configured only by email: the Slack requester whose Slack email is Alice's cannot approve by email."""
    request = pending(ALICE_SLACK, person=ALICE_MAIL)  # what gate records for Actor(U0ALICE, alice@example.com)
    assert refusal(may_decide(ALICE_MAIL, request, "email", BY_EMAIL, approving=True)).kind == "four_eyes"
    slack_alice = Actor(id=ALICE_SLACK, email=ALICE_MAIL)
    assert refusal(may_decide(slack_alice, request, "slack", BY_EMAIL, approving=True)).kind == "four_eyes"
    carol = may_decide(Actor(id="U0CAROL", email=CAROL_MAIL), request, "slack", BY_EMAIL, approving=True)
    assert isinstance(carol, Allowed) and carol.person.name == CAROL_MAIL


def test_vice_versa_an_email_requester_cannot_approve_from_slack() -> None:
    """Carol asked by email; clicking Approve in Slack (Slack reports her address) is four-eyes."""
    request = pending(CAROL_MAIL, person=CAROL_MAIL)
    answer = may_decide(Actor(id="U0CAROL", email=CAROL_MAIL), request, "slack", BY_EMAIL, approving=True)
    assert refusal(answer).kind == "four_eyes"


def test_a_slack_user_without_email_is_only_their_id() -> None:
    """Without a Slack-reported email (none, or the lookup failed) a Slack id matches nobody configured by email."""
    answer = refusal(may_decide(Actor(id="U0CAROL"), pending(), "slack", BY_EMAIL, approving=True))
    assert answer.kind == "not_an_approver" and answer.reason.startswith("U0CAROL is not one of")
    assert isinstance(may_decide(Actor(id="U0CAROL"), pending(), "slack", MAPPED, approving=True), Allowed)


def test_rows_from_before_people_fall_back_to_the_requester_identity() -> None:
    """A request recorded without requester_person is matched by resolving its requester with today's mappings."""
    old = pending(ALICE_SLACK, person=None)
    assert refusal(may_decide(ALICE_MAIL, old, "email", MAPPED, approving=True)).kind == "four_eyes"


def test_four_eyes_off_lets_the_requester_approve() -> None:
    """A request recorded without four-eyes (staging, or OPSGATE_FOUR_EYES=false) may be approved by its requester."""
    assert isinstance(may_decide(ALICE_MAIL, pending(four_eyes=False), "email", MAPPED, approving=True), Allowed)


def test_email_approvers_are_who_may_approve_by_email() -> None:
    """Approval mail goes to each approving person's first address: not the requester, not Slack-only people."""
    config = settings(OPSGATE_PEOPLE=f"alice={ALICE_SLACK},{ALICE_MAIL}; dave=U0DAVE",
                      OPSGATE_APPROVERS_DEPLOYERS=f"alice,{CAROL_MAIL},CAROL@example.com,dave,U0ERIN")
    assert email_approvers(pending(ALICE_SLACK, "alice"), config) == [CAROL_MAIL]
    assert email_approvers(pending("U0ZED", "U0ZED"), config) == [ALICE_MAIL, CAROL_MAIL]
    assert email_approvers(pending(four_eyes=False), settings()) == []  # open mode: email cannot decide
