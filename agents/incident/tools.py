"""The incident agent's tools and its pre-fetch (factor 13): what it needs before the model is asked anything."""

from __future__ import annotations

import asyncio

from agents.deploy.ledger import recent_deploys
from agents.incident import diagnostics
from agents.incident.actions import PostUpdate, QueryPrometheus, ReadRunbook, RecentDeploys, Resolve
from agents.incident.settings import IncidentSettings
from bot.agent import AgentContext, ToolContext
from bot.alertmanager import SOURCE
from bot.thread import Thread


async def prefetch(thread: Thread, ctx: AgentContext) -> str | None:
    """The alert's labels and annotations, the service's recent deploys and the alert's runbook, in one block."""
    config = ctx.settings.agent(IncidentSettings)
    alert = await diagnostics.alert_of(thread, ctx.records.of(SOURCE))
    if alert is None:
        return None
    service = diagnostics.service_of(alert)
    deploys = await recent_deploys(ctx.records, service, limit=5)
    book = await asyncio.to_thread(diagnostics.runbook, config, alert.alertname)
    parts = [f"alert: {alert.alertname} ({alert.status}, {len(alert.alerts)} alerts)",
             "labels: " + ", ".join(f"{k}={v}" for k, v in sorted(alert.commonLabels.items()))]
    parts += [f"{k}: {v}" for k, v in sorted(alert.commonAnnotations.items())]
    for item in alert.alerts[:5]:
        since = f" since {item.startsAt:%Y-%m-%d %H:%M}Z" if item.startsAt else ""
        parts.append(f"- {item.status}{since} " + ", ".join(f"{k}={v}" for k, v in sorted(item.labels.items())))
    parts.append(f"recent deploys of {service or 'any service'}:")
    parts += [f"  {d.line()}" for d in deploys] or ["  none recorded"]
    parts.append(f"runbook {alert.alertname}:" if book else f"runbook: none found for {alert.alertname}")
    if book:
        parts.append(book)
    return "\n".join(parts)


async def query(action: QueryPrometheus, ctx: ToolContext) -> str:
    """A PromQL instant query."""
    return await diagnostics.query_prometheus(ctx.http, ctx.settings.agent(IncidentSettings), action.query)


async def deploys(action: RecentDeploys, ctx: ToolContext) -> str:
    """Recent deploys through the deploy agent's public interface."""
    found = await recent_deploys(ctx.records, action.service, limit=10)
    return "\n".join(d.line() for d in found) or "no deploys recorded"


async def read_runbook(action: ReadRunbook, ctx: ToolContext) -> str:
    """The runbook of an alert."""
    book = await asyncio.to_thread(diagnostics.runbook, ctx.settings.agent(IncidentSettings), action.alertname)
    return book or f"no runbook for {action.alertname}"


async def post_update(action: PostUpdate, ctx: ToolContext) -> str:
    """The update itself is the result: every channel following the thread shows it."""
    return action.message


async def resolve(action: Resolve, ctx: ToolContext) -> str:
    """Record the resolution in the agent's records and show it."""
    await ctx.records.add("resolution", ctx.thread_id, {"resolution": action.resolution, "by": ctx.requester})
    return f"resolved: {action.resolution}"
