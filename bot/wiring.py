"""Where the concrete pieces meet: SQL storage, registered agents, configured channels, the model client.

The only module of bot/ (with the CLI and app) that imports storage/ and channels/. Agents are plugins found
through the ``opsgate.agents`` entry point group: the core names none of them.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import structlog

from bot.agent import Agent, Registry
from bot.channel import Channel
from bot.config import Settings
from bot.llm import ChatModel, OpenAIChatModel
from bot.prompts import record_prompts
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


def installed_agents() -> list[Agent]:
    """Every agent the installed packages register under the ``opsgate.agents`` entry point group."""
    found: list[Agent] = []
    for point in sorted(entry_points(group="opsgate.agents"), key=lambda p: p.name):
        loaded = point.load()
        found.extend(loaded if isinstance(loaded, list | tuple) else [loaded])
    return found


def build_registry(settings: Settings) -> Registry:
    """The registered agents, each with its own settings checked (ConfigError names the bad variable)."""
    agents = [a for a in installed_agents() if a.enabled is None or a.enabled(settings)]
    for agent in agents:
        if agent.configure is not None:
            agent.configure(settings)
    return Registry(agents, default=settings.default_agent)


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
    """Create or check the schema (SQLite upgrades itself; PostgreSQL needs `opsgate db upgrade`); keep the
    agents' current prompt texts under their hashes (``opsgate prompts``)."""
    revision = await ensure_schema(settings.database_url)
    store = store_for(settings.database_url)
    try:
        await record_prompts(store, installed_agents())
    finally:
        await store.close()
    return revision
