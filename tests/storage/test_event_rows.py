"""Stored events are smaller than their JSON (no type, no approval copy of its proposal) and load back identical."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.events import AUDIT_TYPES, ActionProposed, ApprovalRequested
from storage import SqlStore
from storage.schema import events
from tests.storage.test_sql_store import create


def request_for(proposal: ActionProposed, **changes: object) -> ApprovalRequested:
    fields = {"action_id": proposal.action_id, "name": proposal.name, "arguments": proposal.arguments,
              "reason": proposal.reason, "approvers": ["carol"], "requester": "bob", "four_eyes": True}
    return ApprovalRequested(**{**fields, **changes})  # type: ignore[arg-type]


async def stored(store: SqlStore, thread_id: str) -> list[dict[str, object]]:
    async with store.reader.connect() as conn:
        rows = (await conn.execute(select(events.c.data).where(events.c.thread_id == thread_id)
                                   .order_by(events.c.seq))).all()
    return [json.loads(r.data) for r in rows]


async def test_an_approval_request_is_stored_without_its_proposal_copy(store: SqlStore) -> None:
    """Written with its proposal, a request keeps only what is its own; it loads (and audits) identical."""
    thread = await create(store)
    proposal = ActionProposed(name="deploy", arguments={"service": "api", "version": "1.2.3"}, reason="asked")
    request = request_for(proposal)
    await store.append(thread.id, [proposal, request], expected_seq=2, status="waiting_for_approval",
                       agent="deploy")
    rows = await stored(store, thread.id)
    assert all("type" not in row for row in rows)
    assert {"name", "arguments", "reason"}.isdisjoint(rows[3]) and rows[3]["approval_id"] == request.approval_id
    loaded = await store.load_thread(thread.id)
    assert loaded is not None and loaded.events[2:] == [proposal, request]
    since = datetime.now(UTC) - timedelta(minutes=1)
    audited = [r.event async for r in store.audit(since, AUDIT_TYPES)]
    assert audited == [request]


async def test_a_request_that_differs_from_its_proposal_keeps_its_own_values(store: SqlStore) -> None:
    """A request whose arguments differ from the proposal's, or whose proposal came in an earlier write, is
    stored whole."""
    thread = await create(store)
    proposal = ActionProposed(name="deploy", arguments={"service": "api"})
    differing = request_for(proposal, arguments={"service": "web"})
    await store.append(thread.id, [proposal, differing], expected_seq=2, status="waiting_for_approval",
                       agent="deploy")
    later = request_for(proposal)
    await store.append(thread.id, [later], expected_seq=4, status="waiting_for_approval", agent="deploy")
    rows = await stored(store, thread.id)
    assert rows[3]["arguments"] == {"service": "web"} and rows[4]["name"] == "deploy"
    loaded = await store.load_thread(thread.id)
    assert loaded is not None and loaded.events[2:] == [proposal, differing, later]
