"""Where the concrete pieces meet: SQL storage, registered agents, configured channels, the model client.

The only module of bot/ (with the CLI and app) that imports storage/, agents/ and channels/.
"""

from __future__ import annotations

import structlog

from agents import AGENTS
from bot.agent import Registry
from bot.channel import Channel
from bot.config import Settings
from bot.llm import ChatModel, OpenAIChatModel
from bot.runtime import Runtime
from storage import ensure_schema, store_for

log = structlog.get_logger("opsgate.wiring")


def build_channels(settings: Settings) -> list[Channel]:
    """The web inbox always; Slack and email when configured."""
    channels: list[Channel] = []
    from channels.web import WebChannel

    channels.append(WebChannel(settings))
    if settings.slack_enabled:
        from channels.slack import SlackChannel

        channels.append(SlackChannel(settings))
    if settings.imap_enabled or settings.smtp_enabled:
        from channels.email import EmailChannel

        channels.append(EmailChannel(settings))
    return channels


def build_registry(settings: Settings) -> Registry:
    """The registered agents, each with its own settings checked (ConfigError names the bad variable)."""
    for agent in AGENTS:
        if agent.configure is not None:
            agent.configure(settings)
    return Registry(AGENTS, default=settings.default_agent)


def build_model(settings: Settings) -> ChatModel | None:
    return OpenAIChatModel(settings) if settings.model_configured else None


def build_runtime(
    settings: Settings, *, channels: list[Channel] | None = None, model: ChatModel | None | bool = True
) -> Runtime:
    """A runtime on the configured database; ``model=True`` means "from the settings"."""
    chosen: ChatModel | None = build_model(settings) if model is True else (model or None)
    return Runtime(
        settings=settings,
        store=store_for(settings.database_url),
        registry=build_registry(settings),
        channels=build_channels(settings) if channels is None else channels,
        model=chosen,
    )


async def prepare_database(settings: Settings) -> str:
    """Create or check the schema (SQLite upgrades itself; PostgreSQL needs `opsgate db upgrade`)."""
    return await ensure_schema(settings.database_url)
