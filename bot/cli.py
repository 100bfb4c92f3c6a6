"""The ``opsgate`` command line: serve, worker, email, chat, threads, quarantine, db, tokens, audit."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from bot.config import Settings, load_settings
from bot.errors import ConfigError, OpsgateError
from bot.logs import configure_logging
from bot.thread import STATUSES

if TYPE_CHECKING:
    from bot.runtime import Loop, Runtime


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        return None


@click.group()
@click.version_option(package_name="opsgate")
def main() -> None:
    """opsgate: chat-ops with humans in the loop."""


@main.command()
@click.option("--host", default=None, help="Interface to bind (default OPSGATE_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default PORT or 8080).")
def serve(host: str | None, port: int | None) -> None:
    """Run the HTTP API, web inbox, channels, worker and outbox in one process."""
    import uvicorn

    from bot.app import create_app
    from bot.wiring import prepare_database

    settings = _settings(host=host, port=port)
    configure_logging(settings.log_level)
    _run(prepare_database(settings))  # a missing schema is a one-line error here, not a lifespan traceback
    try:
        app = create_app(settings)
    except OpsgateError as exc:
        raise click.ClickException(str(exc)) from None
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                            lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    _run(server.serve())
    if not server.started:
        sys.exit(1)


@main.command()
def worker() -> None:
    """Run only the worker and outbox loops (scale-out; use PostgreSQL for several workers)."""
    settings = _settings()
    configure_logging(settings.log_level)
    _run(_run_loops(settings, lambda runtime: runtime.loops(channels=False)))


@main.command()
def email() -> None:
    """Run only the email channel's mailbox watcher (IMAP); `serve` or `worker` run the worker and outbox."""
    settings = _settings()
    configure_logging(settings.log_level)
    if not settings.imap_enabled:
        raise click.ClickException("IMAP_HOST is not set: there is no mailbox to watch")
    _run(_run_loops(settings, lambda runtime: {
        name: loop for name, loop in runtime.loops(worker=False, outbox=False).items() if name.startswith("email-")
    }))


async def _run_loops(settings: Settings, choose: Callable[[Runtime], dict[str, Loop]]) -> None:
    """Run the loops ``choose`` picks from a fresh runtime, until interrupted."""
    from bot.runtime import Loops
    from bot.wiring import build_runtime, prepare_database

    await prepare_database(settings)
    runtime = build_runtime(settings)
    loops = Loops()
    loops.start(choose(runtime))
    try:
        await asyncio.gather(*loops.tasks.values())
    finally:
        await loops.stop()
        await runtime.aclose()


@main.command()
@click.option("--agent", default=None, help="Agent for new requests (default: routing / OPSGATE_DEFAULT_AGENT).")
@click.option("--user", default=None, help="Your identity (an approver id); default: your login name.")
def chat(agent: str | None, user: str | None) -> None:
    """Use the terminal as a channel: type requests, see proposals, approve or reject at the prompt."""
    from channels.terminal import run_chat

    settings = _settings(log_level="warning")
    configure_logging("warning")
    _run(run_chat(settings, agent=agent, user=user))


@main.group()
def threads() -> None:
    """Look at threads."""


@threads.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--limit", type=int, default=50)
def threads_list(status: str | None, limit: int) -> None:
    """List threads, most recently updated first."""
    from storage import ensure_schema, store_for

    settings = _settings()

    async def go() -> None:
        await ensure_schema(settings.database_url)
        store = store_for(settings.database_url)
        try:
            for t in await store.list_threads(status, limit):  # type: ignore[arg-type]
                click.echo(f"{t.id}  {t.status:<21} {t.outcome or '-':<9} {t.agent or '-':<8} "
                           f"{t.updated_at:%Y-%m-%d %H:%M}  {t.title}")
        finally:
            await store.close()

    _run(go())


@threads.command("show")
@click.argument("thread_id")
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON.")
def threads_show(thread_id: str, as_json: bool) -> None:
    """Show one thread's events."""
    from channels.terminal import describe_event
    from storage import ensure_schema, store_for

    settings = _settings()

    async def go() -> None:
        await ensure_schema(settings.database_url)
        store = store_for(settings.database_url)
        try:
            thread = await store.load_thread(thread_id)
        finally:
            await store.close()
        if thread is None:
            raise click.ClickException(f"thread {thread_id} not found")
        if as_json:
            click.echo(thread.model_dump_json(indent=2))
            return
        click.echo(f"thread {thread.id}  agent={thread.agent}  status={thread.status}  outcome={thread.outcome or '-'}")
        for event in thread.events:
            click.echo(describe_event(event))

    _run(go())


@main.group()
def quarantine() -> None:
    """Look at messages set aside because they could not be processed or delivered."""


@quarantine.command("list")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, with the detail.")
def quarantine_list(limit: int, as_json: bool) -> None:
    """Quarantined messages, newest first: when, channel, key, attempts, reason."""
    from storage import ensure_schema, store_for

    settings = _settings()

    async def go() -> None:
        await ensure_schema(settings.database_url)
        store = store_for(settings.database_url)
        try:
            items = await store.list_quarantine(limit)
        finally:
            await store.close()
        for item in items:
            when = f"{item.at:%Y-%m-%d %H:%M:%S}"
            line = f"{when}  {item.channel:<8} {item.key}  x{item.attempts}  {item.reason}"
            click.echo(item.model_dump_json() if as_json else line)
        if not items and not as_json:
            click.echo("nothing is in quarantine")

    _run(go())


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations to DATABASE_URL."""
    from storage import upgrade

    settings = _settings()
    revision = _run(upgrade(settings.database_url))
    click.echo(f"database at revision {revision}")


def _register_tokens() -> None:
    from bot.token_cli import tokens

    main.add_command(tokens)


_register_tokens()


@main.group()
def audit() -> None:
    """Audit trail."""


@audit.command("export")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="Only records at or after this date (UTC).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl")
@click.option("--output", type=click.File("w"), default="-", help="File to write (default stdout).")
def audit_export(since: datetime | None, fmt: str, output: Any) -> None:
    """Every approval request, decision and execution with who, when and what."""
    from bot.audit import export
    from storage import ensure_schema, store_for

    settings = _settings()

    async def go() -> int:
        await ensure_schema(settings.database_url)
        store = store_for(settings.database_url)
        try:
            return await export(store, since.replace(tzinfo=UTC) if since else None, fmt, output)
        finally:
            await store.close()

    count = _run(go())
    click.echo(f"{count} audit records", err=True)
