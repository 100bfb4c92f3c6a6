"""Access grants in the access agent's own records, and carrying them out through the signed webhook.

A grant's id is the idempotency key of the execution that granted it, recorded before the webhook is called:
the receiver de-duplicates a retried grant or revoke by it, and a revoke of a revoked grant changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel

from agents.access.actions import GrantAccess, ListGrants, RevokeAccess
from agents.access.roles import parse_duration
from agents.access.settings import AccessSettings
from bot.agent import ToolContext
from bot.errors import ExecutionFailed
from bot.webhooks import post_signed

KIND = "grant"


class Grant(BaseModel):
    """One grant as recorded."""

    grant_id: str
    user: str
    role: str
    expires_at: datetime
    approved_by: str | None = None
    thread_id: str
    state: Literal["active", "revoked"] = "active"
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def line(self, now: datetime) -> str:
        """``prod-db to bob until 10:30Z (active, id …)``."""
        state = self.state if self.state == "revoked" or self.expires_at > now else "expired, revoke pending"
        return (f"{self.role} for {self.user} until {self.expires_at:%Y-%m-%d %H:%M:%S}Z ({state}; "
                f"approved by {self.approved_by or '-'}; id {self.grant_id})")


async def _webhook(ctx: ToolContext, what: str, grant: Grant) -> str:
    config = ctx.settings.agent(AccessSettings)
    if config.webhook_url is None or not ctx.settings.webhook_secret:
        raise ExecutionFailed("no access webhook configured (OPSGATE_ACCESS_WEBHOOK_URL, OPSGATE_WEBHOOK_SECRET)")
    payload = {"action": what, "grant_id": grant.grant_id, "user": grant.user, "role": grant.role,
               "expires_at": grant.expires_at.isoformat(), "thread_id": ctx.thread_id, "action_id": ctx.action_id,
               "approved_by": ctx.approved_by}
    return await post_signed(ctx.http, str(config.webhook_url), ctx.settings.webhook_secret, payload,
                             f"{what}:{grant.grant_id}")


async def grant(action: GrantAccess, ctx: ToolContext) -> str:
    """Record the grant, then ask the receiver to grant it; its revoke timer follows from the result."""
    existing = await ctx.records.get(KIND, ctx.idempotency_key)
    if existing is not None:  # a resumed execution: same grant, same expiry; the receiver de-duplicates
        found = Grant.model_validate(existing.body)
    else:
        found = Grant(grant_id=ctx.idempotency_key, user=action.user, role=action.role,
                      expires_at=datetime.now(UTC) + parse_duration(action.duration),
                      approved_by=ctx.approved_by, thread_id=ctx.thread_id)
        await ctx.records.add(KIND, found.grant_id, found.model_dump(mode="json"), tag=found.user)
    answer = await _webhook(ctx, "grant", found)
    ctx.happened(f"granted {found.role} to {found.user}")
    return (f"granted {found.role} to {found.user} until {found.expires_at:%Y-%m-%d %H:%M:%S}Z "
            f"(grant {found.grant_id}); revoked automatically then. Receiver: {answer}")


async def revoke(action: RevokeAccess, ctx: ToolContext) -> str:
    """Ask the receiver to revoke (again, if a revoke failed before), then mark the grant revoked."""
    record = await ctx.records.get(KIND, action.grant_id)
    if record is None:
        raise ExecutionFailed(f"no grant {action.grant_id}")
    found = Grant.model_validate(record.body)
    if found.state == "revoked":
        return f"grant {found.grant_id} ({found.role} for {found.user}) was already revoked; nothing sent"
    answer = await _webhook(ctx, "revoke", found)
    ctx.happened(f"revoked {found.role} from {found.user}")
    done = found.model_copy(update={"state": "revoked", "revoked_at": datetime.now(UTC),
                                    "revoked_by": ctx.approved_by or ctx.requester})
    await ctx.records.replace(record, done.model_dump(mode="json"))
    return f"revoked {found.role} from {found.user} (grant {found.grant_id}). Receiver: {answer}"


async def list_grants(action: ListGrants, ctx: ToolContext) -> str:
    """Grants, active ones first, newest first."""
    records = await ctx.records.list(KIND, tag=action.user, limit=100)
    grants = [Grant.model_validate(r.body) for r in records]
    if not grants:
        return f"no grants{' for ' + action.user if action.user else ''}"
    now = datetime.now(UTC)
    grants.sort(key=lambda g: g.state != "active")
    return "\n".join(g.line(now) for g in grants)
