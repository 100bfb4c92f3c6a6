"""Slack user -> email through users.info on the fake Slack Web API: what is trusted, cached and bounded."""

from __future__ import annotations

import time
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from structlog.testing import capture_logs

from bot.config import load_settings
from bot.people import Actor
from channels.slack.slack_client import web_client
from channels.slack.users import SlackUsers
from tests.support.fake_slack import BOT_TOKEN, DEFAULT_SCOPES, TEAM_ID, FakeSlack


def client(slack: FakeSlack) -> AsyncWebClient:
    """The client SlackChannel gives the lookup: the bot token, no retries."""
    settings = load_settings({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": "xapp-1",
                              "SLACK_API_URL": slack.api_url})
    return web_client(settings, retries=False)


def users(slack: FakeSlack, team: str | None = TEAM_ID, **options: Any) -> SlackUsers:
    return SlackUsers(client(slack), lambda: team, **options)


async def test_a_member_with_an_email_is_an_actor_with_it(slack: FakeSlack) -> None:
    """users.info's profile.email (lower-cased) comes with the signed Slack id."""
    slack.add_user("U0CAROL", email="Carol@Example.com")
    assert await users(slack).actor("U0CAROL") == Actor(id="U0CAROL", email="carol@example.com")
    [call] = slack.calls_to("users.info")
    assert call.args["user"] == "U0CAROL"


async def test_untrusted_or_missing_emails_give_the_id_alone(slack: FakeSlack) -> None:
    """No email, a deactivated account, a bot, an unconfirmed address or an external team: the id only."""
    slack.add_user("U0NOMAIL")
    slack.add_user("U0GONE", email="gone@example.com", deleted=True)
    slack.add_user("U0ROBOT", email="robot@example.com", is_bot=True)
    slack.add_user("U0UNCONF", email="new@example.com", is_email_confirmed=False)
    slack.add_user("U0EXTERN", email="alice@example.com", team_id="T0OTHERORG")
    directory = users(slack)
    for user_id in ("U0NOMAIL", "U0GONE", "U0ROBOT", "U0UNCONF", "U0EXTERN", "U0UNKNOWN"):
        assert await directory.actor(user_id) == Actor(id=user_id)


async def test_without_users_read_email_scope_there_is_no_email(slack: FakeSlack) -> None:
    """A token without users:read.email gets no profile.email, like Slack: nobody is matched by address."""
    scoped = FakeSlack(scopes=DEFAULT_SCOPES - {"users:read.email"})
    with scoped:
        scoped.add_user("U0CAROL", email="carol@example.com")
        assert await users(scoped).actor("U0CAROL") == Actor(id="U0CAROL")
        assert len(scoped.calls_to("users.info")) == 1


async def test_missing_scope_and_unknown_users_are_errors_meaning_no_email(slack: FakeSlack) -> None:
    """Without users:read Slack answers missing_scope (logged with the fix); an unknown id is user_not_found."""
    with FakeSlack(scopes=DEFAULT_SCOPES - {"users:read", "users:read.email"}) as scoped, capture_logs() as logs:
        scoped.add_user("U0CAROL", email="carol@example.com")
        assert await users(scoped).actor("U0CAROL") == Actor(id="U0CAROL")
        assert await users(slack).actor("U0NOBODY") == Actor(id="U0NOBODY")
    failures = [(e["user"], e["error"]) for e in logs if e["event"] == "slack_user_lookup_failed"]
    assert failures == [("U0CAROL", "missing_scope"), ("U0NOBODY", "user_not_found")]
    assert "users:read.email" in next(e["hint"] for e in logs if e.get("error") == "missing_scope")


async def test_answers_are_cached_and_failures_retried_after_a_short_while(slack: FakeSlack) -> None:
    """One users.info per user per TTL; a failure is asked again after the (short) failure TTL."""
    now = [1000.0]
    slack.add_user("U0CAROL", email="carol@example.com")
    directory = users(slack, ttl=600, failure_ttl=30, clock=lambda: now[0])
    for _ in range(3):
        assert (await directory.actor("U0CAROL")).email == "carol@example.com"
    assert len(slack.calls_to("users.info")) == 1
    now[0] += 601
    await directory.actor("U0CAROL")
    assert len(slack.calls_to("users.info")) == 2
    slack.fail_next("users.info", status=500, error="internal_error")
    assert await directory.actor("U0DAVE") == Actor(id="U0DAVE")
    slack.add_user("U0DAVE", email="dave@example.com")
    assert await directory.actor("U0DAVE") == Actor(id="U0DAVE")  # the failure is remembered for a while
    now[0] += 31
    assert await directory.actor("U0DAVE") == Actor(id="U0DAVE", email="dave@example.com")


async def test_before_our_team_is_known_no_email_is_trusted(slack: FakeSlack) -> None:
    """Until auth.test told us our workspace, an address cannot be checked: no email, asked again soon."""
    now = [0.0]
    slack.add_user("U0CAROL", email="carol@example.com")
    team: list[str | None] = [None]
    directory = SlackUsers(client(slack), lambda: team[0], failure_ttl=30, clock=lambda: now[0])
    assert await directory.actor("U0CAROL") == Actor(id="U0CAROL")
    team[0] = TEAM_ID
    now[0] += 31
    assert (await directory.actor("U0CAROL")).email == "carol@example.com"


async def test_a_slow_slack_is_cut_off_at_the_timeout(slack: FakeSlack) -> None:
    """users.info answering after 2 s does not hold the caller past the 0.3 s bound: the id alone, in time."""
    slack.add_user("U0CAROL", email="carol@example.com")
    slack.delay("users.info", 2.0)
    started = time.perf_counter()
    assert await users(slack, timeout=0.3).actor("U0CAROL") == Actor(id="U0CAROL")
    assert time.perf_counter() - started < 1.5  # generous: the bound is what keeps Slack's 3 s ack
