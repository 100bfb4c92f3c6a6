"""Personal tokens end to end: `opsgate tokens` in a subprocess, a real `opsgate serve` over HTTP (SQLite and
PostgreSQL); who may act as whom, and the shared token without and with the trusted-relay opt-in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.credentials import issue_token
from bot.events import utcnow
from storage import store_for
from tests.support.api_client import TOKEN, ApiClient, run_cli
from tests.support.processes import OpsgateProcess

PRODUCTION = "!deploy service=api version=1.2.3 environment=production"
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
_TOKEN = re.compile(r"^(ogp_[0-9A-Za-z]{49})$", re.M)


@pytest.fixture
async def env(database_url: str) -> dict[str, str]:
    """A server on this test's database with a shared token, three approvers, and alice's Slack id mapped."""
    if database_url.startswith("postgresql"):
        code, output = await run_cli("db", "upgrade", env={"DATABASE_URL": database_url})
        assert code == 0, output
    return {"DATABASE_URL": database_url, "OPSGATE_API_TOKEN": TOKEN, "OPSGATE_APPROVERS": f"{ALICE},{BOB},{CAROL}",
            "OPSGATE_PEOPLE": f"alice={ALICE},UALICE01", "OPSGATE_POLL_INTERVAL": "0.05"}


@pytest.fixture
async def server(env: dict[str, str], tmp_workdir: Path) -> AsyncIterator[OpsgateProcess]:
    async with OpsgateProcess(env, cwd=tmp_workdir) as process:
        yield process


async def create_token(env: dict[str, str], *args: str) -> tuple[str, str]:
    """`opsgate tokens create ARGS`; returns (token, its id)."""
    code, output = await run_cli("tokens", "create", *args, env=env)
    assert code == 0, output
    token = _TOKEN.search(output)
    token_id = re.search(r"token (tok_[0-9A-Za-z]{12}) for", output)
    assert token and token_id, output
    return token.group(1), token_id.group(1)


def client(server: OpsgateProcess, token: str) -> ApiClient:
    return ApiClient(server.url, token=token)


def detail(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["detail"])


def decision(thread: dict[str, Any], **fields: Any) -> dict[str, Any]:
    pending = thread["pending"]
    assert pending is not None, thread
    return {"type": "approval", "approval_id": pending["approval_id"], "approved": True, **fields}


async def test_personal_tokens_prove_who_requests_and_who_decides(
    env: dict[str, str], server: OpsgateProcess
) -> None:
    """A token acts as its person, cannot name another, cannot dodge four-eyes; the shared token cannot decide;
    revoking a token makes it 401 at once; `tokens list` never shows a secret."""
    bob_token, bob_id = await create_token(env, "--user", BOB, "--name", "laptop")
    alice_token, _ = await create_token(env, "--user", ALICE, "--expires", "12h")
    bob, alice, shared = client(server, bob_token), client(server, alice_token), client(server, TOKEN)
    try:
        thread_id = await bob.start(PRODUCTION)
        thread = await bob.wait(thread_id, "waiting_for_approval")
        assert thread["events"][0]["user"] == BOB

        named = await bob.http.post("/threads", json={"message": "!help", "user": ALICE})
        assert f"this token belongs to {BOB}; it cannot act as {ALICE}" in detail(named, 403)
        assert "four-eyes rule" in detail(await bob.respond(thread_id, decision(thread)), 403)
        assert "cannot act as" in detail(await bob.respond(thread_id, decision(thread, user=ALICE)), 403)

        assert "decisions need a personal token" in detail(
            await shared.respond(thread_id, decision(thread, user=ALICE)), 403)
        assert "decisions need a personal token" in detail(await shared.respond(thread_id, decision(thread)), 403)
        asserted = await shared.http.post("/threads", json={"message": "!help", "user": ALICE})
        assert "shared OPSGATE_API_TOKEN cannot act as" in detail(asserted, 403)
        by_service = await shared.wait(await shared.start("!help"), "done")
        assert by_service["events"][0]["user"] == "api"

        assert (await alice.respond(thread_id, decision(thread))).status_code == 202
        done = await alice.wait(thread_id, "done")
        decided = next(e for e in done["events"] if e["type"] == "approval_decided")
        assert (decided["by"], decided["via"]["channel"]) == (ALICE, "api")

        code, output = await run_cli("tokens", "revoke", bob_id, env=env)
        assert code == 0 and f"revoked {bob_id} ({BOB}, laptop)" in output, output
        assert f"personal token {bob_id} was revoked" in detail(await bob.http.get("/threads"), 401)

        code, listed = await run_cli("tokens", "list", env=env)
        assert code == 0, listed
        assert bob_token not in listed and alice_token not in listed
        row = next(line for line in listed.splitlines() if line.startswith(bob_id))
        assert BOB in row and "laptop" in row and "revoked" in row and row.rstrip().endswith("Z")
    finally:
        for c in (bob, alice, shared):
            await c.aclose()


async def test_same_person_under_another_identity_and_expired_tokens(
    env: dict[str, str], server: OpsgateProcess
) -> None:
    """A token may name another identity of its own person (OPSGATE_PEOPLE); an expired token is 401."""
    token, _ = await create_token(env, "--user", ALICE)
    expired, record = issue_token(BOB, "old", timedelta(hours=1), utcnow() - timedelta(hours=2))
    store = store_for(env["DATABASE_URL"])
    try:
        await store.add_api_token(record)
    finally:
        await store.close()
    alice, late = client(server, token), client(server, expired)
    try:
        thread = await alice.wait(await alice.start("!help", user="UALICE01"), "done")
        assert thread["events"][0]["user"] == "UALICE01"
        assert f"personal token {record.id} expired" in detail(await late.http.get("/threads"), 401)
        mangled = client(server, token[:-1] + ("a" if token[-1] != "a" else "b"))
        assert "malformed personal token" in detail(await mangled.http.get("/threads"), 401)
        await mangled.aclose()
    finally:
        await alice.aclose()
        await late.aclose()


async def test_trusted_relay_opt_in_lets_the_shared_token_decide(env: dict[str, str], tmp_workdir: Path) -> None:
    """With OPSGATE_API_TRUSTED_RELAY=true the shared token asserts requester and approver (and says so at start)."""
    async with OpsgateProcess({**env, "OPSGATE_API_TRUSTED_RELAY": "true"}, cwd=tmp_workdir) as server:
        await server.wait_for_log(lambda r: "OPSGATE_API_TRUSTED_RELAY" in str(r.get("message")),
                                  event="startup_warning")
        relay = client(server, TOKEN)
        try:
            thread = await relay.wait(await relay.start(PRODUCTION, user=BOB), "waiting_for_approval")
            assert thread["events"][0]["user"] == BOB
            assert (await relay.approve(thread, CAROL)).status_code == 202
            await relay.wait(thread["id"], "done")
        finally:
            await relay.aclose()


async def test_tokens_cli_refuses_bad_input(sqlite_database_url: str) -> None:
    """Bad durations, identities and unknown ids are clear errors; a leaked token can be revoked by its value."""
    env = {"DATABASE_URL": sqlite_database_url}
    for args, message in [
        (("--user", BOB, "--expires", "soon"), "cannot read the duration 'soon'"),
        (("--user", BOB, "--expires", "0d"), "must be longer than zero"),
        (("--user", BOB, "--expires", "9999d"), "longer than 3650 days"),
        (("--user", "two words"), "a user name, Slack id or email address"),
    ]:
        code, output = await run_cli("tokens", "create", *args, env=env)
        assert code == 2 and message in output, output
    code, output = await run_cli("tokens", "revoke", "tok_nope", env=env)
    assert code == 1 and "no active token tok_nope" in output, output
    code, output = await run_cli("tokens", "revoke", env=env)
    assert code == 2 and "give a token id" in output, output
    leaked, token_id = await create_token(env, "--user", BOB, "--expires", "never")
    code, output = await run_cli("tokens", "revoke", leaked, env=env)
    assert code == 0 and f"revoked {token_id}" in output and leaked not in output, output
    code, output = await run_cli("tokens", "revoke", "--user", BOB, env=env)
    assert code == 1 and f"{BOB} has no active token" in output, output
