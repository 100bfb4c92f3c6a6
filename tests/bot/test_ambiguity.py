"""The ambiguity rule's pure functions on hand-built threads: which message decides, aliases, the policy compared."""

from __future__ import annotations

import pytest

from agents.deploy.actions import ENVIRONMENT, Deploy, Rollback
from bot.ambiguity import ask, find_ambiguity, named_options
from bot.events import (
    ActionProposed,
    ApprovalDecided,
    ApprovalRequested,
    Event,
    HumanInputReceived,
    HumanInputRequested,
    UserMessage,
)
from bot.thread import Thread

OPTIONS = ["staging", "production"]


def thread(*events: Event) -> Thread:
    return Thread(id="t", agent="deploy", events=list(events))


def staging(service: str = "web") -> Deploy:
    return Deploy(service=service, version="2.0.1", environment="staging")


@pytest.mark.parametrize(("text", "named"), [
    ("deploy web 2.0.1 to staging, no wait, to production", ["staging", "production"]),
    ("deploy to prod... actually stage first", ["production", "staging"]),
    ("deploy web 2.0.1 to staging", ["staging"]),
    ("deploy web 2.0.1 to the production-like env", []),  # a whole token, not a part of one
    ("ship it", []),
])
def test_named_options_by_value_or_alias_in_order(text: str, named: list[str]) -> None:
    """Values and their aliases count as whole tokens; the order is the order of first mention."""
    assert named_options(text, OPTIONS, ENVIRONMENT) == named


def test_the_laxer_of_two_named_options_is_in_doubt_and_the_stricter_is_not() -> None:
    """Staging (no approval) with production also named is asked about; production is not."""
    asked = thread(UserMessage(text="deploy web 2.0.1 to staging, no wait, to production"))
    found = find_ambiguity(staging(), asked)
    assert found is not None and (found.field, found.value, found.stricter) == ("environment", "staging", "production")
    assert ask(staging(), found) == "You mentioned both staging and production: which environment should web go to?"
    assert find_ambiguity(Deploy(service="web", version="2.0.1", environment="production"), asked) is None


def test_the_policy_decides_what_is_stricter_also_for_rollbacks() -> None:
    """A rollback always needs approval, but four-eyes only in production: staging is still the laxer choice."""
    found = find_ambiguity(Rollback(service="api", environment="staging"),
                           thread(UserMessage(text="roll back api in staging or prod")))
    assert found is not None and found.stricter == "production"
    assert ask(Rollback(service="api", environment="staging"), found).endswith(
        "which environment should api be rolled back in?")


def test_an_answer_naming_one_option_settles_it_and_one_naming_none_does_not() -> None:
    """The newest message of the request that names an option decides; the question's own text never counts."""
    request = UserMessage(text="deploy web to staging, no wait, production")
    question = ActionProposed(name="request_more_information", arguments={"message": "staging or production?"})
    asked = HumanInputRequested(message="staging or production?", action_id=question.action_id)
    assert find_ambiguity(staging(), thread(request, question, asked, HumanInputReceived(text="staging"))) is None
    assert find_ambiguity(staging(), thread(request, question, asked, HumanInputReceived(text="2.0.1"))) is not None


def test_an_approvers_comment_and_an_earlier_request_are_not_the_request() -> None:
    """"staging first please" from a rejecting approver does not make "deploy api 1.4.2 to production" ambiguous;
    neither does a finished earlier request that named the other environment."""
    request = UserMessage(text="deploy api 1.4.2 to production")
    proposal = ActionProposed(name="deploy", arguments={"service": "api", "version": "1.4.2",
                                                         "environment": "production"})
    card = ApprovalRequested(action_id=proposal.action_id, name="deploy", arguments=proposal.arguments)
    rejected = ApprovalDecided(approval_id=card.approval_id, action_id=proposal.action_id, approved=False,
                               by="carol@example.com", comment="staging first please")
    assert find_ambiguity(staging("api"), thread(request, proposal, card, rejected)) is None
    earlier = UserMessage(text="deploy api 1.4.1 to production")
    assert find_ambiguity(staging("api"), thread(earlier, UserMessage(text="now api 1.4.2 to staging"))) is None
