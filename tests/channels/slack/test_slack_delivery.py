"""Delivering outbox rows to a real (fake) Slack Web API over HTTP: refs, retries, permanent failures."""

from __future__ import annotations

import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from bot.config import Settings
from bot.errors import DeliveryFailed, DeliveryRetry
from bot.store import OutboxRow, Ref
from channels.slack.slack_client import web_client
from channels.slack.slack_delivery import CARD_REF, ROOT_REF, THREAD_REF, SlackDelivery
from channels.slack.slack_outbound import SlackCardUpdate, SlackPost
from storage import SqlStore
from tests.support.fake_slack import BOT_TOKEN, FakeSlack
from tests.support.servers import free_port

CHANNEL = "C0OPS0001"
ROOT = "1732270000.000100"
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "card"}}]
_ids = iter(range(1, 10_000))


def row(message: SlackPost | SlackCardUpdate, attempts: int = 0, thread_id: str = "th1") -> OutboxRow:
    return OutboxRow(id=next(_ids), channel="slack", thread_id=thread_id, payload=message.model_dump(mode="json"),
                     attempts=attempts)


def card(approval_id: str = "ap1") -> SlackPost:
    return SlackPost(channel=CHANNEL, thread_ts=ROOT, text="Approval needed", blocks=BLOCKS, role="card",
                     approval_id=approval_id)


def update(approval_id: str = "ap1") -> SlackCardUpdate:
    return SlackCardUpdate(channel=CHANNEL, thread_ts=ROOT, approval_id=approval_id, text="Approved",
                           blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "approved"}}])


@pytest.fixture
def delivery(slack_settings: Settings, store: SqlStore) -> SlackDelivery:
    return SlackDelivery(web_client(slack_settings), store)


async def test_reply_goes_into_the_thread_with_the_bot_token(delivery: SlackDelivery, slack: FakeSlack) -> None:
    """chat.postMessage with channel, thread_ts and text, authenticated with the bot token."""
    await delivery.deliver(row(SlackPost(channel=CHANNEL, thread_ts=ROOT, text="hello")))
    [call] = slack.calls_to("chat.postMessage")
    assert call.args["channel"] == CHANNEL and call.args["thread_ts"] == ROOT and call.args["text"] == "hello"
    assert call.headers["authorization"] == f"Bearer {BOT_TOKEN}"


async def test_card_ts_is_stored_and_a_card_is_never_posted_twice(
    delivery: SlackDelivery, slack: FakeSlack, store: SqlStore
) -> None:
    """The card's ts is kept under slack-card/<approval id>; re-delivering the same row posts nothing."""
    item = row(card())
    await delivery.deliver(item)
    ref = await store.get_ref(CARD_REF, "ap1")
    [call] = slack.calls_to("chat.postMessage")
    assert call.args["blocks"] == BLOCKS
    assert ref is not None and ref.thread_id == "th1"
    assert ref.data is not None and ref.data["channel"] == CHANNEL
    assert slack.message(CHANNEL, ref.data["ts"])["thread_ts"] == ROOT
    await delivery.deliver(item)  # e.g. the process died after posting, before marking the row sent
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_update_waits_for_the_card_then_edits_it(delivery: SlackDelivery, slack: FakeSlack) -> None:
    """An update delivered before its card retries shortly; afterwards chat.update edits the stored ts."""
    with pytest.raises(DeliveryRetry) as waited:
        await delivery.deliver(row(update()))
    assert waited.value.retry_after == 2.0
    assert slack.calls == []
    await delivery.deliver(row(card()))
    await delivery.deliver(row(update()))
    [posted] = slack.calls_to("chat.postMessage")
    [updated] = slack.calls_to("chat.update")
    ts = slack.message(CHANNEL, updated.args["ts"])
    assert updated.args["channel"] == CHANNEL
    assert ts["blocks"][0]["text"]["text"] == "approved" and ts["text"] == "Approved"
    assert posted.status == 200


async def test_update_of_a_card_that_never_made_it_is_posted_instead(
    delivery: SlackDelivery, slack: FakeSlack
) -> None:
    """After several attempts without a card, the decision is posted as a new message in the thread."""
    await delivery.deliver(row(update(), attempts=5))
    [call] = slack.calls_to("chat.postMessage")
    assert call.args["thread_ts"] == ROOT and call.args["text"] == "Approved"
    assert slack.calls_to("chat.update") == []


async def test_update_of_a_deleted_card_is_posted_instead(
    delivery: SlackDelivery, slack: FakeSlack, store: SqlStore
) -> None:
    """message_not_found on chat.update: the decision is still said, as a new message."""
    await store.put_ref(Ref(channel=CARD_REF, key="ap9", thread_id="th1", data={"channel": CHANNEL, "ts": "1.9"}))
    await delivery.deliver(row(update("ap9")))
    assert [c.args["ts"] for c in slack.calls_to("chat.update")] == ["1.9"]  # answered message_not_found
    [posted] = slack.calls_to("chat.postMessage")
    assert posted.args["thread_ts"] == ROOT and posted.args["text"] == "Approved"


async def test_short_rate_limit_is_waited_out_in_place(delivery: SlackDelivery, slack: FakeSlack) -> None:
    """A 429 with Retry-After: 1 is retried by the client after about a second, and then succeeds."""
    slack.fail_next("chat.postMessage", 1, status=429, retry_after=1)
    started = time.monotonic()
    await delivery.deliver(row(SlackPost(channel=CHANNEL, thread_ts=ROOT, text="hi")))
    elapsed = time.monotonic() - started
    calls = slack.calls_to("chat.postMessage", ok_only=False)
    assert [c.status for c in calls] == [429, 200]
    assert 1.0 <= elapsed < 4.0


async def test_long_rate_limit_goes_back_to_the_outbox(delivery: SlackDelivery, slack: FakeSlack) -> None:
    """A 429 asking for 30 s is not slept on: DeliveryRetry(retry_after=30) after one call."""
    slack.fail_next("chat.postMessage", 1, status=429, retry_after=30)
    with pytest.raises(DeliveryRetry) as retry:
        await delivery.deliver(row(SlackPost(channel=CHANNEL, thread_ts=ROOT, text="hi")))
    assert retry.value.retry_after == 30.0
    assert len(slack.calls_to("chat.postMessage", ok_only=False)) == 1


async def test_persistent_server_errors_are_retried_later(delivery: SlackDelivery, slack: FakeSlack) -> None:
    """503s: the client retries twice, then the outbox gets DeliveryRetry (the message is kept)."""
    slack.fail_next("chat.postMessage", 10, status=503, error="service_unavailable")
    with pytest.raises(DeliveryRetry, match="service_unavailable"):
        await delivery.deliver(row(SlackPost(channel=CHANNEL, thread_ts=ROOT, text="hi")))
    assert [c.status for c in slack.calls_to("chat.postMessage", ok_only=False)] == [503, 503, 503]


async def test_slack_unreachable_is_retried_later(slack_settings: Settings, store: SqlStore) -> None:
    """Nothing listening at SLACK_API_URL: DeliveryRetry, not a crash and not a loss."""
    down = slack_settings.model_copy(update={"slack_api_url": f"http://127.0.0.1:{free_port()}/api/"})
    with pytest.raises(DeliveryRetry, match="chat.postMessage"):
        await SlackDelivery(web_client(down), store).deliver(row(SlackPost(channel=CHANNEL, thread_ts=ROOT,
                                                                           text="hi")))


@pytest.mark.parametrize(("setup", "error"), [
    ({"token": "xoxb-wrong"}, "invalid_auth"),
    ({"channel": "C0GONE001"}, "channel_not_found"),
])
async def test_permanent_errors_fail_the_delivery(
    slack_settings: Settings, store: SqlStore, slack: FakeSlack, setup: dict[str, str], error: str
) -> None:
    """invalid_auth and channel_not_found are DeliveryFailed (recorded on the thread by the outbox)."""
    slack.unknown_channels.add("C0GONE001")
    settings = slack_settings.model_copy(update={"slack_bot_token": setup.get("token", BOT_TOKEN)})
    message = SlackPost(channel=setup.get("channel", CHANNEL), thread_ts=ROOT, text="hi")
    with pytest.raises(DeliveryFailed, match=error):
        await SlackDelivery(web_client(settings), store).deliver(row(message))


async def test_malformed_item_fails_clearly(delivery: SlackDelivery) -> None:
    """A payload that is not a Slack message is DeliveryFailed, naming the row."""
    bad: dict[str, Any] = {"kind": "post", "channel": CHANNEL}
    with pytest.raises(DeliveryFailed, match="malformed Slack outbox item"):
        await delivery.deliver(OutboxRow(id=77, channel="slack", thread_id="th1", payload=bad))


async def test_slash_command_thread_root_then_replies(
    delivery: SlackDelivery, slack: FakeSlack, store: SqlStore
) -> None:
    """The root is posted top-level and mapped to the thread; replies wait for it, then go under it."""
    reply = row(SlackPost(channel=CHANNEL, thread_ts=None, text="done"), thread_id="th7")
    with pytest.raises(DeliveryRetry):
        await delivery.deliver(reply)
    await delivery.deliver(row(SlackPost(channel=CHANNEL, thread_ts=None, text="asked", role="root"),
                               thread_id="th7"))
    root = await store.get_ref(ROOT_REF, "th7")
    assert root is not None and root.data is not None
    mapped = await store.get_ref(THREAD_REF, f"{CHANNEL}:{root.data['ts']}")
    assert mapped is not None and mapped.thread_id == "th7"
    await delivery.deliver(reply)
    first, second = slack.calls_to("chat.postMessage")
    assert "thread_ts" not in first.args or first.args["thread_ts"] is None
    assert second.args["thread_ts"] == root.data["ts"]


async def test_a_payload_over_slacks_limits_is_logged_before_it_is_sent(delivery: SlackDelivery) -> None:
    """An item that breaks a limit (e.g. queued by an older version) names the problem in the log."""
    oversize = SlackPost(channel=CHANNEL, thread_ts=ROOT, text="x" * 5000,
                         blocks=[{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}])
    with capture_logs() as logs:
        await delivery.deliver(row(oversize))
    [record] = [r for r in logs if r["event"] == "slack_payload_over_limit"]
    assert record["problems"] == ["text of 5000 characters (1-4000)", "blocks[0].text: 151 characters > 150"]
    with capture_logs() as quiet:
        await delivery.deliver(row(card()))
    assert not any(r["event"] == "slack_payload_over_limit" for r in quiet)


async def test_an_approvals_channel_card_starts_its_own_thread_and_replies_go_under_it(
    delivery: SlackDelivery, slack: FakeSlack, store: SqlStore
) -> None:
    """A lone card is posted at the top of the channel (its ts kept); reminders wait for it, then thread under it;
    the decision edits it."""
    lone = SlackPost(channel="C0APPROVE", thread_ts=None, text="Approval needed", blocks=BLOCKS, role="lone_card",
                     approval_id="ap9")
    under = SlackPost(channel="C0APPROVE", thread_ts=None, text="reminder", role="under_card", approval_id="ap9")
    with pytest.raises(DeliveryRetry):
        await delivery.deliver(row(under))
    await delivery.deliver(row(lone))
    [posted] = slack.calls_to("chat.postMessage")
    assert posted.args["channel"] == "C0APPROVE" and not posted.args.get("thread_ts")
    ref = await store.get_ref(CARD_REF, "ap9")
    assert ref is not None and ref.data is not None
    await delivery.deliver(row(under))
    reply = slack.calls_to("chat.postMessage")[-1]
    assert reply.args["thread_ts"] == ref.data["ts"] and reply.args["text"] == "reminder"
    decided = SlackCardUpdate(channel="C0APPROVE", thread_ts=None, approval_id="ap9", text="Approved",
                              blocks=BLOCKS, lone=True)
    await delivery.deliver(row(decided))
    assert slack.calls_to("chat.update")[-1].args["ts"] == ref.data["ts"]


async def test_a_lone_card_that_never_made_it_gets_its_decision_posted_in_the_channel(
    delivery: SlackDelivery, slack: FakeSlack
) -> None:
    """No card after several attempts: the decision is posted at the top of the approvals channel."""
    decided = SlackCardUpdate(channel="C0APPROVE", thread_ts=None, approval_id="ap8", text="Expired",
                              blocks=BLOCKS, lone=True)
    await delivery.deliver(row(decided, attempts=5))
    [call] = slack.calls_to("chat.postMessage")
    assert call.args["channel"] == "C0APPROVE" and not call.args.get("thread_ts")
