"""Carrying out deploys: GitHub Actions, Argo CD, a signed webhook, or only the local ledger.

Each is idempotent on the key recorded before the side effect, so a retried execution never deploys twice:
the ledger ignores a known key, the webhook sends the same key for the receiver to de-duplicate, and the
GitHub and Argo CD backends look for the key on the run or sync they started (see their modules).
"""

from __future__ import annotations

from agents.deploy import ledger
from agents.deploy.actions import Deploy, ListDeployments, Rollback
from agents.deploy.argocd import sync_version
from agents.deploy.github import run_workflow
from agents.deploy.ledger import LedgerEntry
from agents.deploy.settings import deploy_settings
from bot.agent import ToolContext
from bot.errors import ExecutionFailed
from bot.webhooks import post_signed


async def call_webhook(action: Deploy | Rollback, ctx: ToolContext) -> str:
    """POST the signed request (bot/webhooks.py: connection errors and 5xx retried, a 4xx fails)."""
    url = str(deploy_settings(ctx.settings).webhook_url or "")
    assert url
    payload = {
        "action": action.name,
        "arguments": action.model_dump(mode="json"),
        "thread_id": ctx.thread_id,
        "action_id": ctx.action_id,
        "approved_by": ctx.approved_by,
        "idempotency_key": ctx.idempotency_key,
    }
    return await post_signed(ctx.http, url, ctx.settings.webhook_secret or "", payload, ctx.idempotency_key)


async def deploy(action: Deploy, ctx: ToolContext) -> str:
    """Deploy through the configured backend; the ledger records every deploy that went through."""
    config = deploy_settings(ctx.settings)
    backend = config.chosen()
    what = f"{action.service} {action.version} to {action.environment}"
    if backend == "ledger":
        fresh = await _record(action, ctx)
        note = "" if fresh else " (already recorded; not repeated)"
        return (f"recorded deploy of {what} in the local ledger{note}. No external system was called: "
                "set OPSGATE_DEPLOY_BACKEND (github, argocd) or OPSGATE_DEPLOY_WEBHOOK_URL to deploy for real.")
    if backend == "webhook":
        done = f"deploy of {what} sent to the webhook: {await call_webhook(action, ctx)}"
    elif backend == "github":
        done = f"deployed {what}. {await run_workflow(action, action.version, ctx, config)}"
    else:
        done = f"deployed {what}. {await sync_version(action, action.version, ctx, config)}"
    ctx.happened(done)  # from here on the deploy happened, whatever the ledger write below does
    await _record(action, ctx)
    return done


async def rollback(action: Rollback, ctx: ToolContext) -> str:
    """Roll back to the version before the current one in the ledger (or ask the backend to)."""
    config = deploy_settings(ctx.settings)
    backend = config.chosen()
    previous = _previous_version(
        [e for e in await ledger.entries(ctx.records, action.service, limit=500) if e.environment == action.environment]
    )
    where = f"{action.service} in {action.environment}"
    if backend == "webhook":
        done = f"rollback of {where} sent to the webhook: {await call_webhook(action, ctx)}"
        ctx.happened(done)
        await _record(action, ctx, previous)
        return done
    if backend == "github":  # the workflow gets the ledger's previous version, or "" to decide itself
        outcome = await run_workflow(action, previous, ctx, config)
        done = f"rolled back {where}{f' to {previous}' if previous else ''}. {outcome}"
        ctx.happened(done)
        await _record(action, ctx, previous)
        return done
    if backend == "github":  # the workflow gets the ledger's previous version, or "" to decide itself
        outcome = await run_workflow(action, previous, ctx, config)
        await _record(action, ctx, previous)
        return f"rolled back {where}{f' to {previous}' if previous else ''}. {outcome}"
    if previous is None:
        raise ExecutionFailed(f"no earlier deploy of {action.service} to {action.environment} in the ledger")
    if backend == "argocd":
        done = f"rolled back {where} to {previous}. {await sync_version(action, previous, ctx, config)}"
        ctx.happened(done)
        await _record(action, ctx, previous)
        return done
    await _record(action, ctx, previous)
    return (f"recorded rollback of {where} to {previous} in the local ledger. No external system was called: "
            "set OPSGATE_DEPLOY_BACKEND (github, argocd) or OPSGATE_DEPLOY_WEBHOOK_URL to deploy for real.")


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
    found = await ledger.entries(ctx.records, action.service, limit=20)
    if not found:
        return f"no deployments recorded{' for ' + action.service if action.service else ''}"
    return "\n".join(e.line() for e in found)


async def _record(action: Deploy | Rollback, ctx: ToolContext, version: str | None = None) -> bool:
    return await ledger.record(ctx.records, LedgerEntry(
        idempotency_key=ctx.idempotency_key, action=action.name, service=action.service,
        environment=action.environment, version=getattr(action, "version", None) or version,
        thread_id=ctx.thread_id, action_id=ctx.action_id, approved_by=ctx.approved_by,
    ))
