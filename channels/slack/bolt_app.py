"""The slack-bolt AsyncApp: url_verification, routing to our handlers; HTTP (``route.py``) or Socket Mode.

``process_before_response=True`` makes bolt answer only after a listener returns, so the answer to Slack means
"stored". Listeners do only the fast part (one database transaction); the worker does the slow model work, so
the ack stays far below Slack's 3 s whatever the model does. Bolt's lazy listeners are never used: they are
fire-and-forget tasks that a restart would lose.

Over HTTP every request was verified before bolt saw it. Slash commands and clicks carry their request's
replay key (``route.request_key``), recorded with what they cause, so the same signed request sent again
changes nothing. A failing event asks Slack for a retry and is quarantined on its last delivery
(``poison.py``); a failing command or click gets an answer with an error id. None of them answers 500.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import structlog
from pydantic import ValidationError
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncBoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.errors import Conflict, DuplicateRef, Signal
from bot.service import Service
from bot.store import Ref
from channels.slack import poison, replay
from channels.slack import slack_interactions as interactions
from channels.slack.limits import fit_escaped
from channels.slack.route import ask_for_retry, request_key
from channels.slack.slack_blocks import APPROVE, EDIT, EDIT_MODAL, REASON_BLOCK, REJECT, REJECT_MODAL, WITHDRAW
from channels.slack.slack_client import api_url, retry_handlers
from channels.slack.slack_inbound import incoming, receive, run_command
from channels.slack.slack_notices import Notices
from channels.slack.slack_payloads import BlockActions, EventCallback, SlashCommand, ViewSubmission
from channels.slack.users import ActorLookup, id_only

log = structlog.get_logger("opsgate.slack")

ClickHandler = Callable[[BlockActions, Service, ActorLookup, list[Ref]], Awaitable[interactions.Answer]]
SubmitHandler = Callable[[ViewSubmission, Service, ActorLookup, list[Ref]], Awaitable[dict[str, str] | None]]
Listener = Callable[[AsyncAck, dict[str, Any], AsyncBoltContext], Awaitable[None]]
ALREADY_HANDLED = "That request was already handled."
Payload = TypeVar("Payload", BlockActions, ViewSubmission, SlashCommand)
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


async def handle_event(
    body: dict[str, Any], service: Service, identity: BotIdentity, notices: Notices, actor_of: ActorLookup = id_only,
) -> None:
    """A message or mention event callback -> start or continue a thread (deduplicated by event id).

    A refusal for good (e.g. a message over the size limit) is told to the author and counts as handled; any
    other failure raises, so the caller retries (the inbox loop, or Slack itself in Socket Mode).
    """
    try:
        envelope = EventCallback.model_validate(body)
    except ValidationError as exc:
        log.warning("slack_event_unreadable", error=str(exc).splitlines()[0], event_id=body.get("event_id"))
        return  # a retry would not make it readable
    message = incoming(envelope, identity.user_id)
    if message is None:
        return
    try:
        received = await receive(message, service, actor_of)
    except Signal as exc:
        if isinstance(exc, Conflict | DuplicateRef):
            raise
        log.info("slack_event_refused", event_id=message.event_id, reason=str(exc)[:200])
        notices.ephemeral(message.channel, message.user, f":warning: {fit_escaped(str(exc), 2000)}", message.root_ts)
        return
    log.info("slack_event", event_id=message.event_id, outcome=received.outcome, thread_id=received.thread_id)
    if received.notice:
        notices.ephemeral(message.channel, message.user, received.notice, message.root_ts)


def build_app(
    settings: Settings, service: Service, identity: BotIdentity, notices: Notices, actor_of: ActorLookup = id_only,
) -> AsyncApp:
    """The bolt app with our listeners; every listener parses its payload into a typed model first.

    ``actor_of`` turns a signed Slack user id into the actor the core resolves to a person (channels/slack/users.py).
    """
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

    async def on_message(body: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest) -> None:
        # Events reach bolt in Socket Mode (over HTTP they take the inbox's fast path, slack_event_inbox.py).
        try:
            await handle_event(body, service, identity, notices, actor_of)
        except Exception as exc:
            # Storage down, a busy thread, a bug: Slack retries; its last delivery is quarantined.
            delivery = poison.attempt(request.headers)
            event_id = str(body.get("event_id") or "unknown")
            if not await poison.event_failed(service.store, event_id, body, exc, delivery):
                if not ask_for_retry(context):
                    raise  # Socket Mode: no HTTP answer to change; not acking makes Slack send it again

    app.event("app_mention")(on_message)
    app.event("message")(on_message)

    async def replayed(context: AsyncBoltContext) -> bool:
        """A signed request already handled (the same bytes sent again within the signature window)."""
        return await replay.seen(service.store, request_key(context))

    def button(handler: ClickHandler) -> Listener:
        async def on_click(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
            await ack()
            click = unreadable_or(BlockActions, body)
            if click is None:
                return
            try:
                if await replayed(context):
                    answer = interactions.REPLAYED
                else:
                    answer = await handler(click, service, actor_of, replay.request_refs(request_key(context)))
            except ValueError as exc:  # a button value that is not ours
                log.warning("slack_button_unreadable", error=str(exc), user=click.user.id)
                answer = interactions.Answer(ephemeral="That button does not belong to an opsgate approval.")
            except Exception:
                error_id = failure("slack_click_failed", user=click.user.id)
                answer = interactions.Answer(ephemeral=f"opsgate could not handle that click (error id "
                                                       f"{error_id}). Please try again in a moment.")
            if answer.replayed:
                log.warning("slack_request_replayed", kind="block_actions", user=click.user.id)
            if answer.view is not None:
                notices.open_view(click.trigger_id, answer.view)
            if answer.ephemeral is not None:
                notices.ephemeral(click.channel_id, click.user.id, answer.ephemeral, click.thread_ts)
        return on_click

    app.action(APPROVE)(button(interactions.approve))
    app.action(REJECT)(button(interactions.open_reject))
    app.action(EDIT)(button(interactions.open_edit))
    app.action(WITHDRAW)(button(interactions.withdraw))

    def modal(handler: SubmitHandler) -> Listener:
        async def on_submit(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
            submission = unreadable_or(ViewSubmission, body)
            if submission is None:
                await ack()
                return
            try:
                if await replayed(context):
                    log.warning("slack_request_replayed", kind="view_submission", user=submission.user.id)
                    errors = None
                else:
                    errors = await handler(submission, service, actor_of, replay.request_refs(request_key(context)))
            except ValueError as exc:  # private_metadata that is not ours: close the modal, change nothing
                log.warning("slack_modal_unreadable", error=str(exc), user=submission.user.id)
                errors = None
            except Exception:
                error_id = failure("slack_submit_failed", user=submission.user.id)
                errors = {first_input(submission): f"opsgate could not save this (error id {error_id}). "
                                                   "Please try again in a moment."}
            if errors:
                await ack(response_action="errors", errors=errors)
            else:
                await ack()
        return on_submit

    app.view(REJECT_MODAL)(modal(interactions.submit_reject))
    app.view(EDIT_MODAL)(modal(interactions.submit_edit))

    async def on_command(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        command = unreadable_or(SlashCommand, body)
        if command is None:
            await ack(text="opsgate could not read that command.")
            return
        try:
            if await replayed(context):
                raise DuplicateRef("request already handled")
            _, answer = await run_command(command, service, actor_of, replay.request_refs(request_key(context)))
        except DuplicateRef:
            log.warning("slack_request_replayed", kind="slash_command", user=command.user_id)
            answer = ALREADY_HANDLED
        except Signal as exc:  # refused for good (too long, unknown agent): say why
            answer = f":warning: {fit_escaped(str(exc), 2000)}"
        except Exception:
            error_id = failure("slack_command_failed", user=command.user_id)
            answer = f"opsgate could not start this (error id {error_id}). Please try again in a moment."
        await ack(text=answer)

    app.command(re.compile(r"^/opsgate"))(on_command)
    return app


def unreadable_or(model: type[Payload], body: dict[str, Any]) -> Payload | None:
    """The typed payload, or None (logged) when Slack sent something we cannot read: answered, never a 500."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        log.warning("slack_payload_unreadable", kind=model.__name__, error=str(exc).splitlines()[0])
        return None


def failure(event: str, **fields: Any) -> str:
    """Log an unexpected failure with its traceback and a short error id the person can quote; return the id."""
    error_id = secrets.token_hex(6)
    log.exception(event, error_id=error_id, **fields)
    return error_id


def first_input(submission: ViewSubmission) -> str:
    """The block id of the modal's first input, where a general error is shown."""
    return next(iter(submission.view.state.values), REASON_BLOCK)


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
