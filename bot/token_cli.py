"""``opsgate tokens``: create, list and revoke personal API tokens (an operator on the host, like ``db``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bot.config import load_settings
from bot.credentials import (
    DEFAULT_LIFETIME,
    ApiToken,
    DurationError,
    digest,
    is_identity,
    issue_token,
    parse_duration,
)
from bot.errors import ConfigError
from bot.events import utcnow

if TYPE_CHECKING:
    from bot.store import Store

T = TypeVar("T")


def _with_store(work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` against DATABASE_URL (schema checked first, as every CLI command does)."""
    from storage import ensure_schema, store_for

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None

    async def go() -> T:
        await ensure_schema(settings.database_url)
        store = store_for(settings.database_url)
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _when(value: datetime | None, never: str = "never") -> str:
    return f"{value:%Y-%m-%d %H:%M}Z" if value is not None else never


@click.group()
def tokens() -> None:
    """Personal API tokens: each proves one person in the API and the web inbox."""


@tokens.command("create")
@click.option("--user", "person", required=True, help="The person the token acts as (name, Slack id or email).")
@click.option("--name", "label", default="", help="A label to recognise it by, e.g. laptop or ci.")
@click.option("--expires", default=DEFAULT_LIFETIME, show_default=True,
              help="Lifetime: 90m, 12h, 30d, 2w, or never.")
def tokens_create(person: str, label: str, expires: str) -> None:
    """Create a token for PERSON and print it once (only its hash is stored)."""
    if not is_identity(person):
        raise click.BadParameter("a user name, Slack id or email address (no spaces, at most 100 characters)",
                                 param_hint="--user")
    if len(label) > 100:
        raise click.BadParameter("at most 100 characters", param_hint="--name")
    try:
        lifetime = parse_duration(expires)
    except DurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from None
    secret, record = issue_token(person, label, lifetime)

    async def work(store: Store) -> None:
        await store.add_api_token(record)

    _with_store(work)
    click.echo(secret)
    click.echo(f"token {record.id} for {person}{f' ({record.label})' if record.label else ''}, expires "
               f"{_when(record.expires_at)}. It is shown only now: store it like a password.", err=True)


@tokens.command("list")
@click.option("--user", "person", default=None, help="Only this person's tokens.")
def tokens_list(person: str | None) -> None:
    """Every token with its person, label, state and dates (never the secret)."""

    async def work(store: Store) -> list[ApiToken]:
        return await store.api_tokens(person)

    found = _with_store(work)
    if not found:
        click.echo("no tokens", err=True)
        return
    now = utcnow()
    click.echo(f"{'id':<17} {'person':<28} {'label':<16} {'state':<8} {'created':<17} {'expires':<17} last used")
    for t in found:
        click.echo(f"{t.id:<17} {t.person:<28} {t.label or '-':<16} {t.state(now):<8} {_when(t.created_at):<17} "
                   f"{_when(t.expires_at):<17} {_when(t.last_used_at, 'never')}")


@tokens.command("revoke")
@click.argument("key", required=False)
@click.option("--user", "person", default=None, help="Revoke every active token of this person.")
def tokens_revoke(key: str | None, person: str | None) -> None:
    """Revoke a token by its id (tok_…) or by the token itself (a leaked ogp_…); its inbox sessions end too."""
    if (key is None) == (person is None):
        raise click.UsageError("give a token id (or the token itself), or --user PERSON")
    at = utcnow()
    lookup: dict[str, Any] = {"person": person} if person else {
        "key": digest(key) if key and key.startswith("ogp_") else key}

    async def work(store: Store) -> list[ApiToken]:
        return await store.revoke_api_tokens(at, **lookup)

    revoked = _with_store(work)
    if not revoked:
        if person:
            what = f"{person} has no active token"
        elif key and key.startswith("ogp_"):
            what = "no active token matches the token given"
        else:
            what = f"no active token {key}"
        raise click.ClickException(f"{what}; `opsgate tokens list` shows them")
    for t in revoked:
        click.echo(f"revoked {t.id} ({t.person}{f', {t.label}' if t.label else ''})")
