"""Carrying out deploys: a signed webhook (GitHub Actions, Argo, Jenkins… via a small relay) or the local ledger.

Both are idempotent on the key recorded before the side effect, so a retried execution never deploys twice:
the ledger ignores a known key, and the webhook sends the same key for the receiver to de-duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import httpx

from agents.deploy.actions import Deploy, ListDeployments, Rollback
from bot.agent import ToolContext
from bot.errors import ExecutionFailed
from bot.store import LedgerEntry

_ATTEMPTS = 4


def sign(body: bytes, secret: str) -> str:
    """The X-Opsgate-Signature header value: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def call_webhook(action: Deploy | Rollback, ctx: ToolContext) -> str:
    """POST the signed request; retry connection errors and 5xx, fail on 4xx."""
    url = ctx.settings.deploy_webhook_url
    secret = ctx.settings.webhook_secret or ""
    assert url
    body = json.dumps({
        "action": action.name,
        "arguments": action.model_dump(mode="json"),
        "thread_id": ctx.thread_id,
        "action_id": ctx.action_id,
        "approved_by": ctx.approved_by,
        "idempotency_key": ctx.idempotency_key,
    }, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Opsgate-Signature": sign(body, secret),
        "Idempotency-Key": ctx.idempotency_key,
    }
    error = ""
    for attempt in range(_ATTEMPTS):
        try:
            response = await ctx.http.post(url, content=body, headers=headers, timeout=30)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 300:
                return response.text.strip()[:500] or f"HTTP {response.status_code}"
            if response.status_code < 500:
                raise ExecutionFailed(f"webhook refused the request: HTTP {response.status_code} {response.text[:200]}")
            error = f"HTTP {response.status_code}"
        await asyncio.sleep(0.5 * 2 ** attempt)
    raise ExecutionFailed(f"webhook unreachable after {_ATTEMPTS} attempts ({error})")


async def deploy(action: Deploy, ctx: ToolContext) -> str:
    """Deploy through the webhook, or record it in the local ledger when none is configured."""
    if ctx.settings.deploy_webhook_url:
        answer = await call_webhook(action, ctx)
        done = f"deploy of {action.service} {action.version} to {action.environment} sent to the webhook: {answer}"
        ctx.happened(done)  # from here on the deploy happened, whatever the ledger write below does
        await _record(action, ctx)
        return done
    fresh = await _record(action, ctx)
    note = "" if fresh else " (already recorded; not repeated)"
    return (f"recorded deploy of {action.service} {action.version} to {action.environment} in the local ledger"
            f"{note}. No external system was called: set OPSGATE_DEPLOY_WEBHOOK_URL to deploy for real.")


async def rollback(action: Rollback, ctx: ToolContext) -> str:
    """Roll back to the version before the current one in the ledger (or ask the webhook to)."""
    previous = _previous_version(
        [e for e in await ctx.ledger.ledger_list(action.service, limit=500) if e.environment == action.environment]
    )
    if ctx.settings.deploy_webhook_url:
        answer = await call_webhook(action, ctx)
        done = f"rollback of {action.service} in {action.environment} sent to the webhook: {answer}"
        ctx.happened(done)
        await _record(action, ctx, previous)
        return done
    if previous is None:
        raise ExecutionFailed(f"no earlier deploy of {action.service} to {action.environment} in the ledger")
    await _record(action, ctx, previous)
    return (f"recorded rollback of {action.service} in {action.environment} to {previous} in the local ledger. "
            "No external system was called: set OPSGATE_DEPLOY_WEBHOOK_URL to deploy for real.")


def _previous_version(newest_first: list[LedgerEntry]) -> str | None:
    """Replay the ledger as a stack: a deploy pushes its version, a rollback pops back to the one before."""
    stack: list[str | None] = []
    for entry in reversed(newest_first):
        if entry.action == "deploy":
            stack.append(entry.version)
        elif entry.action == "rollback" and stack:
            stack.pop()
    return stack[-2] if len(stack) > 1 else None


async def list_deployments(action: ListDeployments, ctx: ToolContext) -> str:
    """Recent ledger entries, newest first."""
    entries = await ctx.ledger.ledger_list(action.service, limit=20)
    if not entries:
        return f"no deployments recorded{' for ' + action.service if action.service else ''}"
    return "\n".join(
        f"{e.at:%Y-%m-%d %H:%M} {e.action} {e.service} {e.version or '-'} {e.environment}"
        f" (approved by {e.approved_by or 'no approval needed'})"
        for e in entries
    )


async def _record(action: Deploy | Rollback, ctx: ToolContext, version: str | None = None) -> bool:
    return await ctx.ledger.ledger_add(LedgerEntry(
        idempotency_key=ctx.idempotency_key, action=action.name, service=action.service,
        environment=action.environment, version=getattr(action, "version", None) or version,
        thread_id=ctx.thread_id, action_id=ctx.action_id, approved_by=ctx.approved_by,
    ))
