"""The access agent: a grant approved by the role's owners (four-eyes), granted through the signed webhook, and
revoked by a durable timer when it expires, also when opsgate was down at that moment (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

import pytest
from pydantic import ValidationError

from agents.access import roles
from agents.access.actions import GrantAccess
from bot.config import load_settings
from bot.errors import ConfigError, NotAuthorized
from bot.events import ActionResult, ApprovalRequested, HumanInputRequested, ProposalBlocked, Via
from bot.runtime import Loops
from bot.wiring import build_registry, build_runtime
from storage import upgrade
from tests.conftest import WEBHOOK_SECRET
from tests.support.model_server import ScriptedModelServer, tool_call
from tests.support.threads import running, settled
from tests.support.webhook_receiver import WebhookReceiver

ROLES = json.dumps({"prod-db": {"group": "dba", "max": "1h"}})


def env(database_url: str, webhook: WebhookReceiver, model: ScriptedModelServer) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "OPSGATE_POLL_INTERVAL": "0.05", "OPSGATE_MODEL_RETRIES": "1",
            "OPENAI_BASE_URL": model.base_url, "OPSGATE_ACCESS_ROLES": ROLES,
            "OPSGATE_ACCESS_WEBHOOK_URL": webhook.url, "OPSGATE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "OPSGATE_APPROVERS_DBA": "alice@example.com,carol@example.com"}


async def test_a_grant_is_approved_by_an_owner_granted_and_revoked_on_time_across_a_restart(
    database_url: str, webhook: WebhookReceiver, model_server: ScriptedModelServer
) -> None:
    """carol asks for prod-db; she may not approve it herself, alice does; the webhook grants it; opsgate stops;
    when it starts after the expiry, the revoke runs once as an action in the thread and the webhook confirms."""
    await upgrade(database_url)
    settings = load_settings(env(database_url, webhook, model_server))
    model_server.script(
        tool_call("grant_access", user="carol@example.com", role="prod-db", duration="3s", reason="carol asked"),
        tool_call("done_for_now", message="carol has prod-db for 3s."),
    )
    first = build_runtime(settings, channels=[])
    loops = Loops()
    loops.start(first.loops())
    try:
        thread = await first.service.start_thread("give me prod-db for 3s", user="carol@example.com",
                                                  via=Via(channel="api"), agent="access")
        waiting = await settled(first, thread.id, "waiting_for_approval")
        pending = waiting.pending
        assert pending is not None and pending.group == "dba" and pending.four_eyes
        with pytest.raises(NotAuthorized):
            await first.service.decide(thread.id, pending.approval_id, approved=True, user="carol@example.com",
                                       via=Via(channel="api"))
        await first.service.decide(thread.id, pending.approval_id, approved=True, user="alice@example.com",
                                   via=Via(channel="api"))
        granted = await settled(first, thread.id, "done")
    finally:
        await loops.stop()
        await first.aclose()
    [grant_call] = webhook.accepted
    assert grant_call.json["action"] == "grant" and grant_call.json["user"] == "carol@example.com"
    assert grant_call.json["approved_by"] == "alice@example.com" and grant_call.signature_valid
    expires_at = datetime.fromisoformat(grant_call.json["expires_at"])

    await asyncio.sleep(max(0.0, expires_at.timestamp() - time.time()) + 0.5)  # down while it expires
    assert len(webhook.calls) == 1
    second = build_runtime(settings, channels=[])
    loops = Loops()
    loops.start(second.loops())
    try:
        await webhook.wait_for_calls(2, timeout=15)
        revoked = await settled(second, thread.id, "done")
        while not any(isinstance(e, ActionResult) and e.name == "revoke_access" for e in revoked.events):
            revoked = await settled(second, thread.id, "done")
        await asyncio.sleep(0.5)  # a second firing, if there were one, would show by now
    finally:
        await loops.stop()
        await second.aclose()
    revoke_calls = [c for c in webhook.accepted if c.json["action"] == "revoke"]
    assert len(revoke_calls) == 1 and revoke_calls[0].signature_valid
    assert revoke_calls[0].json["grant_id"] == grant_call.json["grant_id"]
    assert revoke_calls[0].received_at >= expires_at.timestamp()
    results = [e for e in revoked.events if isinstance(e, ActionResult) and e.name == "revoke_access"]
    assert len(results) == 1 and results[0].ok
    assert len(granted.events) < len(revoked.events)


async def test_the_revoke_is_retried_until_the_receiver_confirms(
    sqlite_database_url: str, webhook: WebhookReceiver, model_server: ScriptedModelServer
) -> None:
    """The receiver fails every attempt of the first revoke (5xx): the revoke is an action again a little later,
    and the receiver's first confirmation ends it."""
    model_server.script(tool_call("grant_access", user="bob@example.com", role="prod-db", duration="1s"),
                        tool_call("done_for_now", message="ok"))
    async with running(sqlite_database_url, **env(sqlite_database_url, webhook, model_server),
                       OPSGATE_ACCESS_RETRY_SECONDS="1") as runtime:
        thread = await runtime.service.start_thread("prod-db for bob, 1s", user="dave@example.com",
                                                    via=Via(channel="api"), agent="access")
        pending = (await settled(runtime, thread.id, "waiting_for_approval")).pending
        assert pending is not None
        await runtime.service.decide(thread.id, pending.approval_id, approved=True, user="alice@example.com",
                                     via=Via(channel="api"))
        await webhook.wait_for_calls(1, timeout=10)
        webhook.fail_first = 4  # the revoke's four attempts fail (the grant's call did not count: it came first)
        await webhook.wait_for_calls(2, timeout=30, accepted=True)  # accepted calls: the grant, then the retried revoke
        final = await settled(runtime, thread.id, "done")
        while len([e for e in final.events if isinstance(e, ActionResult) and e.name == "revoke_access"]) < 2:
            final = await settled(runtime, thread.id, "done")
    results = [e.ok for e in final.events if isinstance(e, ActionResult) and e.name == "revoke_access"]
    assert results == [False, True]
    assert [c.json["action"] for c in webhook.accepted] == ["grant", "revoke"]
    assert [c.status for c in webhook.calls].count(500) == 4


async def test_a_role_nobody_named_is_asked_about_not_sent_to_its_owners(
    sqlite_database_url: str, webhook: WebhookReceiver, model_server: ScriptedModelServer
) -> None:
    """"give bob database access": the model picks the prod-db role itself; that role was never said, so the
    requester is asked which role, and no approval request reaches the role's owners."""
    model_server.script(tool_call("grant_access", user="bob@example.com", role="prod-db", duration="1h"))
    async with running(sqlite_database_url, **env(sqlite_database_url, webhook, model_server)) as runtime:
        thread = await runtime.service.start_thread("give bob database access for an hour", user="dave@example.com",
                                                    via=Via(channel="api"), agent="access")
        asked = await settled(runtime, thread.id, "waiting_for_human")
    assert asked.pending is None and not [e for e in asked.events if isinstance(e, ApprovalRequested)]
    [blocked] = [e for e in asked.events if isinstance(e, ProposalBlocked)]
    assert (blocked.rule, blocked.field, blocked.value) == ("grounding", "role", "prod-db")
    [question] = [e for e in asked.events if isinstance(e, HumanInputRequested)]
    assert question.message == "Which role should bob@example.com get?"
    assert webhook.calls == []


def test_a_grant_longer_than_its_role_allows_is_refused_before_any_approval() -> None:
    """The role's maximum, unknown roles and bad durations are validation errors the model is told about."""
    roles.configure(roles.parse_roles(ROLES))
    GrantAccess(user="bob", role="prod-db", duration="1h")
    for duration, role, problem in (("2h", "prod-db", "at most 1h"), ("1h", "root", "unknown role"),
                                    ("soon", "prod-db", "not a duration")):
        with pytest.raises(ValidationError, match=problem):
            GrantAccess(user="bob", role=role, duration=duration)


def test_a_role_whose_owners_are_not_configured_stops_the_start() -> None:
    """A role owned by a group without OPSGATE_APPROVERS_<GROUP> is a ConfigError naming the variable."""
    settings = load_settings({"OPSGATE_ACCESS_ROLES": ROLES, "OPSGATE_ACCESS_WEBHOOK_URL": "http://x/hook",
                              "OPSGATE_WEBHOOK_SECRET": "s"})
    with pytest.raises(ConfigError, match="OPSGATE_APPROVERS_DBA"):
        build_registry(settings)
