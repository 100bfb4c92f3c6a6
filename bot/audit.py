"""The audit export: every approval request, decision and execution, with who, when and what.

``who`` is the channel identity that acted (Slack id, email address, inbox/CLI/API name), ``person`` the person
it resolved to (bot/people.py) when it happened, and ``channel`` where it acted; rows written before people
were recorded have an empty ``person``.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from typing import IO, Any

from bot.events import (
    AUDIT_TYPES,
    ActionResult,
    ApprovalDecided,
    ApprovalEscalated,
    ApprovalRequested,
    DecisionRefused,
    ExecutionStarted,
    ProposalBlocked,
    ThreadCancelled,
)
from bot.store import AuditRecord, Store

FIELDS = ["at", "thread_id", "agent", "record", "action", "action_id", "approval_id", "who", "person", "channel",
          "decision", "arguments", "detail", "outcome"]
_CLOSED = {"expiry": "expired", "withdrawal": "withdrawn"}


def audit_row(record: AuditRecord) -> dict[str, Any]:
    """One flat row for an audit record."""
    e = record.event
    # Every column in every row (None when it does not apply), so JSON lines read like the CSV.
    row: dict[str, Any] = {**dict.fromkeys(FIELDS), "at": e.at.isoformat(), "thread_id": record.thread_id,
                           "agent": record.agent, "record": e.type, "outcome": record.outcome}
    if isinstance(e, ApprovalRequested):
        row.update(action=e.name, action_id=e.action_id, approval_id=e.approval_id, who=e.requester,
                   person=e.requester_person, arguments=e.arguments,
                   detail=f"approvers: {', '.join(e.approvers) or 'local user'}")
    elif isinstance(e, ApprovalDecided):
        changes = "; ".join(f"{c.field}: {c.old} -> {c.new}" for c in e.changes)
        row.update(action_id=e.action_id, approval_id=e.approval_id, who=e.by, person=e.by_person,
                   channel=e.via.channel, arguments=e.arguments,
                   decision="approved" if e.approved else _CLOSED.get(e.closed_by, "rejected"),
                   detail=" | ".join(x for x in (e.comment, changes and f"edited {changes}",
                                                 f"via {e.via.channel}") if x))
    elif isinstance(e, DecisionRefused):
        row.update(approval_id=e.approval_id, who=e.by, person=e.by_person, channel=e.via.channel,
                   decision="refused", detail=f"{e.reason} | via {e.via.channel}")
    elif isinstance(e, ApprovalEscalated):
        row.update(approval_id=e.approval_id, decision="escalated",
                   detail=f"group {e.group}: {', '.join(e.approvers) or 'no members'}")
    elif isinstance(e, ThreadCancelled):
        row.update(who=e.by, person=e.by_person, channel=e.via.channel, decision="cancelled",
                   detail=" | ".join(x for x in (e.reason, f"via {e.via.channel}") if x))
    elif isinstance(e, ExecutionStarted):
        row.update(action=e.name, action_id=e.action_id, who=e.approved_by, person=e.approved_by_person,
                   arguments=e.arguments,
                   detail=f"idempotency key {e.idempotency_key}")
    elif isinstance(e, ActionResult):
        row.update(action=e.name, action_id=e.action_id, decision="ok" if e.ok else "failed", detail=e.result)
    elif isinstance(e, ProposalBlocked):
        field = f" {e.field}={e.value}" if e.field else ""
        row.update(action_id=e.action_id, decision=f"stopped ({e.rule})", detail=f"{e.rule}{field}: {e.reason}")
    return row


async def export(store: Store, since: datetime | None, fmt: str, out: IO[str]) -> int:
    """Write the audit records since ``since`` as CSV or JSON lines; return how many."""
    writer = csv.DictWriter(out, fieldnames=FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    count = 0
    async for record in store.audit(since, AUDIT_TYPES):
        row = audit_row(record)
        if writer:
            writer.writerow({k: json.dumps(v) if isinstance(v, dict) else v for k, v in row.items()})
        else:
            out.write(json.dumps(row, default=str) + "\n")
        count += 1
    return count
