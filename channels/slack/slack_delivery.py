"""Delivering one outbox item to the Slack Web API, and remembering the ts of what we posted.

Failures fall in the outbox's two kinds: DeliveryRetry (429 beyond the inline wait, 5xx, network down, a card
not posted yet) and DeliveryFailed (bad token, unknown channel, malformed message): Slack being down delays
messages but loses none. Delivery is at-least-once; a card already posted is never posted twice.
"""

from __future__ import annotations

import aiohttp
import structlog
from pydantic import ValidationError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import DeliveryFailed, DeliveryRetry
from bot.store import OutboxRow, Ref, Store
from channels.slack.limits import message_problems
from channels.slack.slack_client import retry_after
from channels.slack.slack_outbound import MESSAGE_ADAPTER, SlackCardUpdate, SlackPost

log = structlog.get_logger("opsgate.slack")

CARD_REF = "slack-card"  # approval id -> {channel, ts} of its card
ROOT_REF = "slack-root"  # thread id -> {channel, ts} of the root we posted for a slash command
THREAD_REF = "slack"  # "{channel}:{root ts}" -> thread id
WAIT_FOR_CARD = 2.0  # seconds before retrying an update whose card is not posted yet
GIVE_UP_ON_CARD = 5  # attempts after which the decision is posted as a new message instead

# ok:false errors that mean "later" rather than "never".
_TRANSIENT = frozenset({
    "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
    "team_added_to_org", "rate_limited",
})
_CARD_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


def thread_key(channel: str, root_ts: str) -> str:
    """The ref key of a Slack thread."""
    return f"{channel}:{root_ts}"


def _error_code(exc: SlackApiError) -> str | None:
    data = exc.response.data
    return str(data.get("error")) if isinstance(data, dict) and data.get("error") else None


def classify(exc: SlackApiError, method: str) -> DeliveryRetry | DeliveryFailed:
    """Turn a Slack API error into the outbox's retry-or-give-up answer."""
    status = exc.response.status_code
    error = _error_code(exc) or f"HTTP {status}"
    if status == 429 or error in ("ratelimited", "rate_limited"):
        return DeliveryRetry(f"{method}: rate limited", retry_after(exc.response.headers) or 1.0)
    if status >= 500 or error in _TRANSIENT:
        return DeliveryRetry(f"{method}: {error}")
    return DeliveryFailed(f"{method}: {error}")


class SlackDelivery:
    """Sends SlackPost / SlackCardUpdate items and records the ts refs later items need."""

    def __init__(self, client: AsyncWebClient, store: Store) -> None:
        self.client = client
        self.store = store

    async def deliver(self, row: OutboxRow) -> None:
        """Send one outbox row; raise DeliveryRetry or DeliveryFailed."""
        try:
            message = MESSAGE_ADAPTER.validate_python(row.payload)
        except ValidationError as exc:
            raise DeliveryFailed(f"malformed Slack outbox item {row.id}: {exc.error_count()} errors") from exc
        method = "chat.update" if isinstance(message, SlackCardUpdate) else "chat.postMessage"
        problems = message_problems(message.text, message.blocks)
        if problems:  # a builder bug: Slack will refuse it (then the outbox sets the row aside); say why first
            log.error("slack_payload_over_limit", row=row.id, thread_id=row.thread_id, problems=problems[:5])
        try:
            if isinstance(message, SlackPost):
                await self._post(row, message)
            else:
                await self._update(row, message)
        except SlackApiError as exc:
            raise classify(exc, method) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryRetry(f"{method}: {type(exc).__name__}: {exc}") from None

    async def _thread_ts(self, row: OutboxRow, channel: str, thread_ts: str | None) -> tuple[str, str | None]:
        """Where a reply goes; for a slash-command thread, the root we posted (retry until it exists)."""
        if thread_ts is not None or row.thread_id is None:
            return channel, thread_ts
        root = await self.store.get_ref(ROOT_REF, row.thread_id)
        if root is None or not root.data:
            raise DeliveryRetry("the thread's root message is not posted yet", WAIT_FOR_CARD)
        return str(root.data["channel"]), str(root.data["ts"])

    async def _under_card(self, approval_id: str) -> tuple[str, str]:
        """Where a reply under an approvals-channel card goes: that card's thread (retry until it is posted)."""
        card = await self.store.get_ref(CARD_REF, approval_id)
        if card is None or not card.data:
            raise DeliveryRetry(f"approval card {approval_id} is not posted yet", WAIT_FOR_CARD)
        return str(card.data["channel"]), str(card.data["ts"])

    async def _post(self, row: OutboxRow, message: SlackPost) -> None:
        carded = message.role in ("card", "lone_card") and message.approval_id
        if carded and message.approval_id:
            if await self.store.get_ref(CARD_REF, message.approval_id) is not None:
                return  # posted by an earlier attempt that died before the outbox row was marked sent
        if message.role in ("root", "lone_card"):
            channel, thread_ts = message.channel, None
        elif message.role == "under_card" and message.approval_id:
            channel, thread_ts = await self._under_card(message.approval_id)
        else:
            channel, thread_ts = await self._thread_ts(row, message.channel, message.thread_ts)
        response = await self.client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, text=message.text, blocks=message.blocks,
            unfurl_links=False, unfurl_media=False,
        )
        posted_channel, ts = str(response.get("channel") or channel), str(response["ts"])
        where = {"channel": posted_channel, "ts": ts}
        if carded and message.approval_id:
            await self.store.put_ref(Ref(channel=CARD_REF, key=message.approval_id, thread_id=row.thread_id,
                                         data=where))
        elif message.role == "root" and row.thread_id:
            await self.store.put_ref(
                Ref(channel=ROOT_REF, key=row.thread_id, thread_id=row.thread_id, data=where)
            )
            await self.store.put_ref(Ref(channel=THREAD_REF, key=thread_key(posted_channel, ts),
                                         thread_id=row.thread_id))
        log.info("slack_posted", thread_id=row.thread_id, role=message.role, channel=posted_channel, ts=ts)

    async def _update(self, row: OutboxRow, message: SlackCardUpdate) -> None:
        card = await self.store.get_ref(CARD_REF, message.approval_id)
        if card is None or not card.data:
            if row.attempts < GIVE_UP_ON_CARD:
                raise DeliveryRetry(f"approval card {message.approval_id} is not posted yet", WAIT_FOR_CARD)
            await self._post_decision(row, message)  # the card never made it: say the decision anyway
            return
        try:
            await self.client.chat_update(
                channel=str(card.data["channel"]), ts=str(card.data["ts"]), text=message.text,
                blocks=message.blocks,
            )
        except SlackApiError as exc:
            if _error_code(exc) in _CARD_GONE:
                await self._post_decision(row, message)
                return
            raise
        log.info("slack_card_updated", thread_id=row.thread_id, approval_id=message.approval_id)

    async def _post_decision(self, row: OutboxRow, message: SlackCardUpdate) -> None:
        if message.lone:  # the approvals channel: no thread of ours to post into
            channel, thread_ts = message.channel, None
        else:
            channel, thread_ts = await self._thread_ts(row, message.channel, message.thread_ts)
        await self.client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, text=message.text, blocks=message.blocks,
            unfurl_links=False, unfurl_media=False,
        )
