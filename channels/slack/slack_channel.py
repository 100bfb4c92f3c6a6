"""SlackChannel: plugs the converters, the delivery and the bolt app into opsgate's channel interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI
from slack_bolt.async_app import AsyncApp

from bot.channel import BackgroundTask, Channel
from bot.config import Settings
from bot.errors import ConfigError
from bot.events import Event
from bot.service import Service
from bot.store import OutboxItem, OutboxRow
from bot.thread import Thread
from channels.slack.bolt_app import BotIdentity, build_app, handle_event, identify, run_socket_mode
from channels.slack.route import mount_events
from channels.slack.slack_client import web_client
from channels.slack.slack_delivery import SlackDelivery
from channels.slack.slack_direct import direct_post
from channels.slack.slack_event_inbox import EventInbox
from channels.slack.slack_notices import Notices
from channels.slack.slack_outbound import outbound
from channels.slack.users import SlackUsers
from channels.slack.verify import MAX_BODY_BYTES

log = structlog.get_logger("opsgate.slack")


class SlackChannel(Channel):
    """Mentions, DMs and /opsgate in; replies, approval cards and card updates out."""

    name: ClassVar[str] = "slack"

    def __init__(self, settings: Settings) -> None:
        if not settings.slack_bot_token:
            raise ConfigError("SLACK_BOT_TOKEN is required for the Slack channel")
        if not (settings.slack_signing_secret or settings.slack_app_token):
            raise ConfigError(
                "the Slack channel needs SLACK_SIGNING_SECRET (HTTP) or SLACK_APP_TOKEN (Socket Mode)"
            )
        self.settings = settings
        self.client = web_client(settings)
        self.identity = BotIdentity(token=settings.slack_bot_token)
        self.notices = Notices(self.client)
        self.users = SlackUsers(web_client(settings, retries=False), lambda: self.identity.team_id)
        self._bolt: AsyncApp | None = None
        self._inbox: EventInbox | None = None

    def bolt(self, service: Service) -> AsyncApp:
        """The one bolt app shared by the HTTP route and Socket Mode."""
        if self._bolt is None:
            self._bolt = build_app(self.settings, service, self.identity, self.notices, self.users.actor)
        return self._bolt

    def inbox(self, service: Service) -> EventInbox:
        """Events recorded at the ack and turned into threads in the background (HTTP mode)."""
        if self._inbox is None:
            async def handle(body: dict[str, Any]) -> None:
                await handle_event(body, service, self.identity, self.notices, self.users.actor)

            self._inbox = EventInbox(service.store, handle, self.settings.poll_interval,
                                     service.foreground)
        return self._inbox

    def outbound(self, thread: Thread, new: Sequence[Event]) -> list[OutboxItem]:
        """Replies, approval cards and card updates for threads that started in Slack."""
        return outbound(thread, new, approvals_channel=self.settings.slack_approvals_channel,
                        inbox_url=self.settings.public_url)

    def direct_message(self, identity: str, subject: str, text: str) -> OutboxItem | None:
        """A DM to a Slack user id (sign-in links): chat.postMessage to U…/W… lands in the app's DM with them."""
        post = direct_post(identity, f"*{subject}*\n{text}")
        return OutboxItem(channel=self.name, payload=post.model_dump(mode="json")) if post else None

    async def deliver(self, row: OutboxRow) -> None:
        """Post or update one message through the Web API."""
        await SlackDelivery(self.client, self.service.store).deliver(row)

    def mount(self, app: FastAPI, service: Service) -> None:
        """POST /slack/events, when requests can be verified (SLACK_SIGNING_SECRET)."""
        if self.settings.slack_signing_secret:
            mount_events(app, self.bolt(service), self.settings.slack_signing_secret, self.inbox(service),
                         limit=min(MAX_BODY_BYTES, self.settings.max_body_bytes))
        else:
            log.info("slack_http_disabled", reason="no SLACK_SIGNING_SECRET; Socket Mode only")

    def background(self, service: Service) -> list[BackgroundTask]:
        """Learn the bot's identity; hold the Socket Mode connection when SLACK_APP_TOKEN is set."""
        tasks: list[BackgroundTask] = [lambda: identify(self.client, self.identity)]
        if self.settings.slack_signing_secret:
            tasks.append(self.inbox(service).run)
        if self.settings.slack_app_token:
            bolt = self.bolt(service)
            tasks.append(lambda: run_socket_mode(bolt, self.settings, self.client))
        return tasks

    async def aclose(self) -> None:
        """Let ephemeral notes and modals in flight finish."""
        await self.notices.aclose()
