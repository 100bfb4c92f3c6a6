"""The ``opsgate`` command line: serve, worker, email, chat, threads, quarantine, db, tokens, audit."""

from __future__ import annotations

import asyncio
import json
import signal
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
        app = create_app(settings, freeze_heap=True)
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
    _run(_run_loops(settings, lambda runtime: {**runtime.loops(channels=False), **_metrics_loop(runtime)}))


def _metrics_loop(runtime: Runtime) -> dict[str, Loop]:
    """A worker's own /metrics listener when OPSGATE_METRICS_PORT is set."""
    from bot.telemetry import metrics_listener

    listener = metrics_listener(runtime.store, runtime.settings)
    return {"metrics": listener} if listener is not None else {}


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
    from bot import telemetry
    from bot.runtime import Loops, freeze_startup_heap
    from bot.wiring import build_runtime, prepare_database

    await prepare_database(settings)
    runtime = build_runtime(settings)
    telemetry.start(settings)
    loops = Loops()
    loops.start(choose(runtime))
    freeze_startup_heap()
    # SIGTERM (docker stop, Kubernetes) ends the loops the way Ctrl-C does: leases released, traces flushed.
    stopping, loop = asyncio.Event(), asyncio.get_running_loop()
    signal.signal(signal.SIGTERM, lambda *_: loop.call_soon_threadsafe(stopping.set))
    try:
        waiting: asyncio.Future[Any] = asyncio.create_task(stopping.wait())
        everything: asyncio.Future[Any] = asyncio.gather(*loops.tasks.values())  # some loops may end early
        await asyncio.wait([waiting, everything], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
    finally:
        await loops.stop()
        await runtime.aclose()
        telemetry.stop(settings)


@main.command()
@click.option("--agent", default=None, help="Agent for new requests (default: routing / OPSGATE_DEFAULT_AGENT).")
@click.option("--user", default=None, help="Your identity (an approver id); default: your login name.")
def chat(agent: str | None, user: str | None) -> None:
    """Use the terminal as a channel: type requests, see proposals, approve or reject at the prompt."""
    from channels.terminal import run_chat

    settings = _settings(log_level="warning")
    configure_logging("warning", cache=False)
    _run(run_chat(settings, agent=agent, user=user))


@main.group()
def threads() -> None:
    """Look at threads."""


@threads.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--limit", type=int, default=50)
def threads_list(status: str | None, limit: int) -> None:
    """List threads, most recently updated first."""
    from storage import ensure_existing_schema, store_for

    settings = _settings()

    async def go() -> None:
        await ensure_existing_schema(settings.database_url)
        store = store_for(settings.database_url)
        try:
            found = await store.list_threads(status, limit)  # type: ignore[arg-type]
        finally:
            await store.close()
        if not found:
            click.echo(f"no threads{f' with status {status}' if status else ''} yet", err=True)
        for t in found:
            click.echo(f"{t.id}  {t.status:<21} {t.outcome or '-':<9} {t.agent or '-':<8} "
                       f"{t.updated_at:%Y-%m-%d %H:%M}  {t.title}")

    _run(go())


@threads.command("show")
@click.argument("thread_id")
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON.")
def threads_show(thread_id: str, as_json: bool) -> None:
    """Show one thread's events."""
    from channels.terminal import describe_event
    from storage import ensure_existing_schema, store_for

    settings = _settings()

    async def go() -> None:
        await ensure_existing_schema(settings.database_url)
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
    from storage import ensure_existing_schema, store_for

    settings = _settings()

    async def go() -> int:
        await ensure_existing_schema(settings.database_url)
        store = store_for(settings.database_url)
        try:
            return await export(store, since.replace(tzinfo=UTC) if since else None, fmt, output)
        finally:
            await store.close()

    count = _run(go())
    click.echo(f"{count} audit records", err=True)


@main.command("eval")
@click.option("--agent", "agent_name", default=None, help="Only this agent's cases (default: every agent's).")
@click.option("--case", "pattern", default=None, help="Only cases whose id or group matches this glob.")
@click.option("--repeat", type=click.IntRange(1, 100), default=1, help="Run each case N times.")
@click.option("--min-pass", type=click.FloatRange(0, 1), default=None,
              help="Exit with status 1 when the pass rate is below this fraction (0.9 = 90%).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Also write the report as JSON to this file ('-': JSON on stdout instead of the table).")
def eval_cases(agent_name: str | None, pattern: str | None, repeat: int, min_pass: float | None,
               json_path: str | None) -> None:
    """Run the agents' eval cases against the configured model; print a table (and JSON)."""
    from bot.evals.command import run_eval

    settings = _settings(log_level="warning")
    configure_logging("warning", cache=False)
    if not settings.model_configured:
        raise click.ClickException("no model configured: set OPENAI_BASE_URL (and OPSGATE_MODEL) or OPENAI_API_KEY")
    reports = _run(run_eval(settings, agent_name, pattern, repeat))
    if reports is None:
        sys.exit(130)
    if json_path:
        body = json.dumps([r.model_dump(mode="json") for r in reports], indent=2)
        if json_path == "-":
            click.echo(body)
        else:
            with open(json_path, "w", encoding="utf-8") as handle:
                handle.write(body + "\n")
    if json_path != "-":
        from bot.evals.report import table

        click.echo("\n\n".join(table(r) for r in reports))
    runs = sum(r.totals.runs for r in reports)
    rate = sum(r.totals.passed for r in reports) / runs if runs else 0.0
    if min_pass is not None and rate < min_pass:
        click.echo(f"pass rate {rate:.1%} is below --min-pass {min_pass:.1%}", err=True)
        sys.exit(1)


@main.group()
def prompts() -> None:
    """Prompt versions seen in the event log."""


@prompts.command("list")
@click.option("--agent", "agent_name", default=None, help="Only this agent.")
def prompts_list(agent_name: str | None) -> None:
    """Each agent's prompt versions: first and last use, calls, last eval result; * marks the current one."""
    from bot.evals.command import list_versions

    for version in _run(list_versions(_settings(), agent_name)):
        used = (f"{version.first_used:%Y-%m-%d %H:%M} .. {version.last_used:%Y-%m-%d %H:%M}"
                if version.first_used and version.last_used else "never used")
        result = (f"eval {version.last_eval.passed}/{version.last_eval.runs} ({version.last_eval.rate:.0%}) "
                  f"on {version.last_eval.model} at {version.last_eval.at:%Y-%m-%d %H:%M}"
                  if version.last_eval else "no eval")
        mark = "*" if version.current else " "
        click.echo(f"{mark} {version.agent:<10} {version.prompt_hash:<16} {version.calls:>6} calls  "
                   f"{used:<36} {result}")


@prompts.command("show")
@click.argument("prompt_hash", required=False)
@click.option("--agent", "agent_name", default=None, help="The agent (default: the default agent).")
def prompts_show(prompt_hash: str | None, agent_name: str | None) -> None:
    """Print a prompt version's text (default: the agent's current prompt)."""
    from bot.evals.command import find_text

    click.echo(_run(find_text(_settings(), agent_name, prompt_hash)), nl=False)


@prompts.command("diff")
@click.argument("old")
@click.argument("new", required=False)
@click.option("--agent", "agent_name", default=None, help="The agent (default: the default agent).")
def prompts_diff(old: str, new: str | None, agent_name: str | None) -> None:
    """A unified diff between two prompt versions (NEW defaults to the current prompt)."""
    from bot.evals.command import diff_texts

    click.echo(_run(diff_texts(_settings(), agent_name, old, new)), nl=False)
