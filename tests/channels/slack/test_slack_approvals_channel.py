"""SLACK_APPROVALS_CHANNEL: an API-started thread's approval card in the approvals channel, decided there through
the fake Slack Web API exactly like an in-thread card."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.config import Settings, load_settings
from bot.events import ApprovalDecided, Via
from bot.runtime import Runtime
from bot.thread import Thread
from bot.wiring import build_registry
from channels.slack import SlackChannel
from channels.slack import slack_interactions as interactions
from channels.slack.slack_blocks import APPROVE, WITHDRAW
from channels.slack.slack_payloads import BlockActions
from storage import SqlStore
from tests.channels.slack.slack_requests import click
from tests.support.fake_slack import FakeSlack

APPROVALS = "C0APPROVE"


@pytest.fixture
def approvals_settings(slack_settings: Settings) -> Settings:
    """The Slack settings plus an approvals channel and a public URL for the inbox link."""
    env = {field.alias: str(value) for name, value in slack_settings.model_dump().items()
           if (field := Settings.model_fields[name]).alias and value is not None and isinstance(value, str)}
    return load_settings({**env, "OPSGATE_APPROVERS": "UCAROL01,UDAVE001", "SLACK_APPROVALS_CHANNEL": APPROVALS,
                          "OPSGATE_PUBLIC_URL": "https://opsgate.example.com"})


@pytest.fixture
async def runtime(approvals_settings: Settings, store: SqlStore) -> AsyncIterator[Runtime]:
    """A runtime with the Slack channel and no model; no loops run (the test delivers the outbox itself)."""
    channel = SlackChannel(approvals_settings)
    built = Runtime(settings=approvals_settings, store=store, registry=build_registry(approvals_settings),
                    channels=[channel], model=None)
    yield built
    await channel.aclose()
    await built.http.aclose()


async def flush(runtime: Runtime) -> None:
    """Deliver every pending Slack outbox row (as the dispatcher would)."""
    channel = runtime.channels[0]
    for row in await runtime.store.claim_outbox("slack", 100, 60):
        await channel.deliver(row)
        await runtime.store.outbox_sent(row.id)


async def api_request(runtime: Runtime) -> Thread:
    thread = await runtime.service.start_thread("!deploy service=api version=1.4.2 environment=production",
                                                user="bob@example.com", via=Via(channel="api"))
    waiting = await runtime.engine.advance(thread.id)
    assert waiting is not None and waiting.pending is not None
    await flush(runtime)
    return waiting


def press(slack: FakeSlack, action_id: str, user: str) -> BlockActions:
    """Click a button of the card posted in the approvals channel, as Slack would send it."""
    [card] = [c for c in slack.calls_to("chat.postMessage") if c.args["channel"] == APPROVALS]
    ts = next(ts for (channel, ts) in slack.messages if channel == APPROVALS)
    buttons = [e for b in card.args["blocks"] if b["type"] == "actions" for e in b["elements"]]
    value = next(b["value"] for b in buttons if b["action_id"] == action_id)
    return BlockActions.model_validate(click(action_id, value, user=user, channel=APPROVALS, message_ts=ts,
                                             thread_ts=None))


async def test_an_api_thread_is_approved_from_the_approvals_channel(runtime: Runtime, slack: FakeSlack) -> None:
    """The card lands in the approvals channel with a link to the inbox; Carol's click there approves it and the
    card is updated in place."""
    thread = await api_request(runtime)
    [card] = slack.calls_to("chat.postMessage")
    assert card.args["channel"] == APPROVALS and not card.args.get("thread_ts")
    assert f"https://opsgate.example.com/t/{thread.id}" in str(card.args["blocks"])
    assert await interactions.approve(press(slack, APPROVE, "UCAROL01"), runtime.service) == interactions.Answer()
    after = await runtime.service.get_thread(thread.id)
    [decision] = [e for e in after.events if isinstance(e, ApprovalDecided)]
    assert (decision.by, decision.via.channel, decision.via.conversation) == ("UCAROL01", "slack", APPROVALS)
    await flush(runtime)
    [update] = slack.calls_to("chat.update")
    assert update.args["channel"] == APPROVALS and "Approved" in update.args["text"]


async def test_withdraw_on_the_approvals_card_is_checked_on_click(runtime: Runtime, slack: FakeSlack) -> None:
    """Only the requester may withdraw: Carol's Withdraw click is refused privately and nothing changes."""
    thread = await api_request(runtime)
    answer = await interactions.withdraw(press(slack, WITHDRAW, "UCAROL01"), runtime.service)
    assert answer.ephemeral is not None and "only the requester" in answer.ephemeral
    assert (await runtime.service.get_thread(thread.id)).pending is not None
