"""The slack-bolt AsyncApp: signature check, url_verification, routing to our handlers; HTTP or Socket Mode.

``process_before_response=True`` makes bolt answer only after a listener returns, so the answer to Slack means
"stored". Listeners do only the fast part (one database transaction); the worker does the slow model work, so
the ack stays far below Slack's 3 s whatever the model does. Bolt's lazy listeners are never used: they are
fire-and-forget tasks that a restart would lose.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from fastapi import FastAPI
from pydantic import ValidationError
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.config import Settings
from bot.service import Service
from channels.slack import slack_interactions as interactions
from channels.slack.slack_blocks import APPROVE, EDIT, EDIT_MODAL, REJECT, REJECT_MODAL
from channels.slack.slack_client import api_url, retry_handlers
from channels.slack.slack_event_inbox import EventInbox, event_id_of
from channels.slack.slack_inbound import incoming, receive, run_command
from channels.slack.slack_notices import Notices
from channels.slack.slack_payloads import BlockActions, EventCallback, SlashCommand, ViewSubmission
from channels.slack.verify import Rejected, verify

log = structlog.get_logger("opsgate.slack")

EVENTS_PATH = "/slack/events"
ClickHandler = Callable[[BlockActions, Service], Awaitable[interactions.Answer]]
SubmitHandler = Callable[[ViewSubmission, Service], Awaitable[dict[str, str] | None]]
Listener = Callable[[AsyncAck, dict[str, Any]], Awaitable[None]]
_FATAL_AUTH = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})


@dataclass
class BotIdentity:
    """Our bot's ids from auth.test, learned in the background so no request waits for it."""

    token: str
    user_id: str | None = None
    bot_id: str | None = None
    team_id: str | None = None

    def result(self, enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        """What bolt's authorize hook returns: the single bot token, with no network call in the ack path."""
        return AuthorizeResult(
            enterprise_id=enterprise_id, team_id=team_id or self.team_id, bot_token=self.token,
            bot_user_id=self.user_id, bot_id=self.bot_id, user_id=user_id,
        )


async def identify(client: AsyncWebClient, identity: BotIdentity) -> None:
    """auth.test until Slack answers; a rejected token is a configuration mistake, logged and not retried."""
    delay = 1.0
    while True:
        try:
            response = await client.auth_test()
        except SlackApiError as exc:
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            if error in _FATAL_AUTH:
                log.error("slack_token_rejected", error=error, hint="check SLACK_BOT_TOKEN")
                return
            status = error or exc.response.status_code
            log.warning("slack_auth_test_failed", error=str(status), retry_in=delay)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("slack_unreachable", error=f"{type(exc).__name__}: {exc}", retry_in=delay)
        else:
            identity.user_id = response.get("user_id")
            identity.bot_id = response.get("bot_id")
            identity.team_id = response.get("team_id")
            log.info("slack_identity", bot_user_id=identity.user_id, bot_id=identity.bot_id,
                     team=response.get("team"))
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 60.0)


async def handle_event(body: dict[str, Any], service: Service, identity: BotIdentity, notices: Notices) -> None:
    """A message or mention event callback -> start or continue a thread (deduplicated by event id)."""
    try:
        envelope = EventCallback.model_validate(body)
    except ValidationError as exc:
        log.warning("slack_event_unreadable", error=str(exc).splitlines()[0], event_id=body.get("event_id"))
        return  # a retry would not make it readable
    message = incoming(envelope, identity.user_id)
    if message is None:
        return
    received = await receive(message, service)
    log.info("slack_event", event_id=message.event_id, outcome=received.outcome, thread_id=received.thread_id)
    if received.notice:
        notices.ephemeral(message.channel, message.user, received.notice, message.root_ts)


def build_app(settings: Settings, service: Service, identity: BotIdentity, notices: Notices) -> AsyncApp:
    """The bolt app with our listeners; every listener parses its payload into a typed model first."""
    # Bolt passes arguments by parameter name, so the hook is a plain function (a method's "self" confuses it).
    async def authorize(
        enterprise_id: str | None = None, team_id: str | None = None, user_id: str | None = None,
    ) -> AuthorizeResult:
        return identity.result(enterprise_id, team_id, user_id)

    # Bolt reads SLACK_BOT_TOKEN from the environment by itself and warns that the client wins over it; the
    # warning would only confuse operators, so it is muted while the app is built.
    bolt_log = logging.getLogger("slack_bolt.AsyncApp")
    level = bolt_log.level
    bolt_log.setLevel(logging.ERROR)
    try:
        app = AsyncApp(
            name="opsgate",
            # No token on the app's client: bolt then asks our authorize hook instead of calling auth.test inline.
            client=AsyncWebClient(base_url=api_url(settings), retry_handlers=retry_handlers()),
            signing_secret=settings.slack_signing_secret or "",
            authorize=authorize,
            process_before_response=True,
        )
    finally:
        bolt_log.setLevel(level)

    async def on_message(body: dict[str, Any]) -> None:
        await handle_event(body, service, identity, notices)

    app.event("app_mention")(on_message)
    app.event("message")(on_message)

    def button(handler: ClickHandler) -> Listener:
        async def on_click(ack: AsyncAck, body: dict[str, Any]) -> None:
            await ack()
            click = BlockActions.model_validate(body)
            try:
                answer = await handler(click, service)
            except ValueError as exc:  # a button value that is not ours
                log.warning("slack_button_unreadable", error=str(exc), user=click.user.id)
                answer = interactions.Answer(ephemeral="That button does not belong to an opsgate approval.")
            if answer.view is not None:
                notices.open_view(click.trigger_id, answer.view)
            if answer.ephemeral is not None:
                notices.ephemeral(click.channel_id, click.user.id, answer.ephemeral, click.thread_ts)
        return on_click

    app.action(APPROVE)(button(interactions.approve))
    app.action(REJECT)(button(interactions.open_reject))
    app.action(EDIT)(button(interactions.open_edit))

    def modal(handler: SubmitHandler) -> Listener:
        async def on_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
            submission = ViewSubmission.model_validate(body)
            try:
                errors = await handler(submission, service)
            except ValueError as exc:  # private_metadata that is not ours: close the modal, change nothing
                log.warning("slack_modal_unreadable", error=str(exc), user=submission.user.id)
                errors = None
            if errors:
                await ack(response_action="errors", errors=errors)
            else:
                await ack()
        return on_submit

    app.view(REJECT_MODAL)(modal(interactions.submit_reject))
    app.view(EDIT_MODAL)(modal(interactions.submit_edit))

    async def on_command(ack: AsyncAck, body: dict[str, Any]) -> None:
        _, answer = await run_command(SlashCommand.model_validate(body), service)
        await ack(text=answer)

    app.command(re.compile(r"^/opsgate"))(on_command)
    return app


def mount_events(app: FastAPI, bolt: AsyncApp, inbox: EventInbox, signing_secret: str) -> None:
    """POST /slack/events: events, interactivity and the slash command on one URL, as the manifest says.

    Message and mention events take the inbox's fast path (verified, recorded, 200); the rest goes to bolt.
    """

    async def slack_events(request: Request) -> Response:
        try:
            verified = await verify(request.headers, request.stream(), signing_secret)
        except Rejected as exc:
            log.warning("slack_request_rejected", status=exc.status, reason=exc.reason)
            return JSONResponse({"error": "invalid request"}, status_code=exc.status)  # what bolt answers
        event_id = event_id_of(verified.body)
        if event_id is not None:
            await inbox.record(event_id, verified.body)  # committed before the 200; a retry is a no-op
            return Response(status_code=200)
        return to_starlette_response(await bolt.async_dispatch(to_async_bolt_request(request, verified.body)))

    app.add_api_route(EVENTS_PATH, slack_events, methods=["POST"], include_in_schema=False)


async def run_socket_mode(bolt: AsyncApp, settings: Settings, client: AsyncWebClient) -> None:
    """Hold a Socket Mode connection (SLACK_APP_TOKEN) until cancelled; the SDK reconnects by itself."""
    assert settings.slack_app_token is not None
    handler = AsyncSocketModeHandler(bolt, app_token=settings.slack_app_token, web_client=client)
    await handler.connect_async()
    log.info("slack_socket_mode_connected")
    try:
        await asyncio.Event().wait()
    finally:
        await handler.close_async()
