"""Logging in to the inbox (printed URL or API token), and who may decide once logged in."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta
from pathlib import Path

import httpx

from bot.credentials import issue_token
from bot.events import utcnow
from tests.channels.web.conftest import PRODUCTION_DEPLOY, InboxFactory, csrf_of, text_of
from tests.support.processes import OpsgateProcess

APPROVERS = {"OPSGATE_APPROVERS": "alice@example.com,bob@example.com", "OPSGATE_APPROVERS_DEPLOYERS": ""}
TOKEN = "s3cret-api-token"


async def test_login_url_with_a_wrong_token_is_refused(inbox_at: InboxFactory) -> None:
    """A stale or guessed login link is 403 and sets no user."""
    async with inbox_at() as inbox:
        client = inbox.client()
        response = await client.get("/login?token=guess")
        assert response.status_code == 403
        assert "This login link is not valid" in text_of(response.text)
        assert (await client.get("/")).status_code == 303
        plain = await client.get("/login")
        assert "Open the login link that opsgate serve printed" in text_of(plain.text)
        await client.aclose()


async def test_open_mode_login_url_logs_in_as_local(inbox_at: InboxFactory) -> None:
    """With no approvers the only identity is ``local``: the link logs straight in and goes to ``next``."""
    async with inbox_at() as inbox:
        client = inbox.client()
        response = await client.get(f"/login?token={inbox.login_token}&next=/new")
        assert response.status_code == 303
        assert response.headers["location"] == "/new"
        page = await client.get("/new")
        assert '<span class="who" title="you are signed in as local">local</span>' in page.text
        evil = await client.get(f"/login?token={inbox.login_token}&next=//evil.example/")
        assert evil.headers["location"] == "/"
        await client.aclose()


async def test_with_approvers_a_personal_token_proves_who_logs_in(inbox_at: InboxFactory) -> None:
    """With approvers there is no login URL; a personal token logs in as its person, a wrong one is 403."""
    async with inbox_at(APPROVERS) as inbox:
        assert inbox.web.auth.login_token is None
        client = inbox.client()
        page = await client.get("/login")
        assert 'type="password" name="token"' in page.text
        assert "Open the login link" not in text_of(page.text)
        guessed = await client.login_with("ogp_" + "A" * 49)
        assert guessed.status_code == 403
        assert "malformed personal token" in text_of(guessed.text)
        assert (await client.login_with("wrong")).status_code == 403
        assert (await client.get("/")).status_code == 303
        token = await inbox.personal_token("bob@example.com")
        form = {"csrf": csrf_of((await client.get("/login")).text), "token": token}
        assert (await client.post("/login", {**form, "csrf": ""})).status_code == 403
        assert (await client.post("/login", form)).status_code == 303
        assert 'title="you are signed in as bob@example.com"' in (await client.get("/")).text
        await client.aclose()


async def test_revoked_and_expired_tokens_do_not_log_in(inbox_at: InboxFactory) -> None:
    """A revoked or expired personal token is refused with the reason; revoking ends the sessions it opened."""
    async with inbox_at(APPROVERS) as inbox:
        store = inbox.runtime.store
        token = await inbox.personal_token("alice@example.com")
        client = inbox.client()
        assert (await client.login_with(token)).status_code == 303
        assert (await client.get("/")).status_code == 200
        [record] = await store.api_tokens("alice@example.com")
        await store.revoke_api_tokens(utcnow(), key=record.id)
        assert (await client.get("/")).status_code == 303  # the session it opened is gone
        refused = await client.login_with(token)
        assert refused.status_code == 403
        assert f"personal token {record.id} was revoked" in text_of(refused.text)
        expired, old = issue_token("alice@example.com", "old", timedelta(hours=1), utcnow() - timedelta(hours=2))
        await store.add_api_token(old)
        late = await client.login_with(expired)
        assert late.status_code == 403
        assert "expired" in text_of(late.text)
        await client.aclose()


async def test_logout_revokes_the_session_server_side(inbox_at: InboxFactory) -> None:
    """After logout the old cookie, replayed by anyone, is logged out too."""
    async with inbox_at(APPROVERS) as inbox:
        client = await inbox.logged_in("alice@example.com")
        stolen = client.http.cookies["opsgate_session"]
        response = await client.post("/logout", {"csrf": await client.csrf()})
        assert (response.status_code, response.headers["location"]) == (303, "/login")
        assert (await client.get("/")).status_code == 303
        replay = inbox.client(Cookie=f"opsgate_session={stolen}")
        assert (await replay.get("/")).status_code == 303
        assert (await replay.post("/new", {"text": "!help", "csrf": "x"})).status_code == 401
        await client.aclose()
        await replay.aclose()


async def test_open_mode_logout_ends_the_session(inbox_at: InboxFactory) -> None:
    """The first-run login URL session ends at logout as well."""
    async with inbox_at() as inbox:
        client = inbox.client()
        await client.login_by_url(inbox.login_token)
        stolen = client.http.cookies["opsgate_session"]
        await client.post("/logout", {"csrf": await client.csrf()})
        replay = inbox.client(Cookie=f"opsgate_session={stolen}")
        assert (await replay.get("/")).status_code == 303
        await client.aclose()
        await replay.aclose()


async def test_shared_token_does_not_open_the_inbox(inbox_at: InboxFactory) -> None:
    """Without OPSGATE_API_TRUSTED_RELAY, OPSGATE_API_TOKEN proves nobody: no login, no bearer access."""
    async with inbox_at({**APPROVERS, "OPSGATE_API_TOKEN": TOKEN}) as inbox:
        client = inbox.client()
        refused = await client.login_by_token(TOKEN, "alice@example.com")
        assert refused.status_code == 403
        assert "does not prove who you are" in text_of(refused.text)
        assert (await client.get("/")).status_code == 303
        bearer = inbox.client(Authorization=f"Bearer {TOKEN}", **{"X-Opsgate-User": "alice@example.com"})
        assert (await bearer.get("/")).status_code == 303
        assert (await bearer.post("/new", {"text": "!help"})).status_code == 401
        await client.aclose()
        await bearer.aclose()


async def test_trusted_relay_may_assert_an_identity(inbox_at: InboxFactory) -> None:
    """With OPSGATE_API_TRUSTED_RELAY the form takes OPSGATE_API_TOKEN and an identity; rotating the token ends
    those sessions."""
    env = {"OPSGATE_API_TOKEN": TOKEN, "OPSGATE_API_TRUSTED_RELAY": "true", "OPSGATE_WEB_SECRET": "w" * 32}
    async with inbox_at(env) as inbox:
        client = inbox.client()
        assert (await client.login_by_token("wrong", "alice")).status_code == 403
        assert (await client.login_by_token(TOKEN, "two words")).status_code == 422
        assert (await client.login_by_token(TOKEN, "<script>")).status_code == 422
        assert (await client.get("/")).status_code == 303
        assert (await client.login_by_token(TOKEN, "alice")).status_code == 303
        assert "alice" in (await client.get("/")).text
        cookie = client.http.cookies["opsgate_session"]
        database = inbox.runtime.settings.database_url
        await client.aclose()
    async with inbox_at(env, database_url=database) as inbox:  # a restart with the same secrets keeps it
        replay = inbox.client(Cookie=f"opsgate_session={cookie}")
        assert (await replay.get("/")).status_code == 200
        await replay.aclose()
    async with inbox_at({**env, "OPSGATE_API_TOKEN": "rotated"}, database_url=database) as inbox:
        replay = inbox.client(Cookie=f"opsgate_session={cookie}")
        assert (await replay.get("/")).status_code == 303
        await replay.aclose()


async def test_bearer_tokens_act_without_cookie_or_csrf(inbox_at: InboxFactory) -> None:
    """``Authorization: Bearer`` with a personal token acts as its person; a relay's shared token as
    ``X-Opsgate-User`` (no ambient credential, so no CSRF)."""
    async with inbox_at({"OPSGATE_API_TOKEN": TOKEN, "OPSGATE_API_TRUSTED_RELAY": "true"}) as inbox:
        carol_token = await inbox.personal_token("carol")
        posing = inbox.client(Authorization=f"Bearer {carol_token}", **{"X-Opsgate-User": "dave"})
        assert (await posing.post("/new", {"text": "!help"})).status_code == 401
        await posing.aclose()
        mine = inbox.client(Authorization=f"Bearer {carol_token}")
        response = await mine.post("/new", {"text": "!list_deployments", "agent": "deploy"})
        assert response.status_code == 303
        assert (await inbox.thread(response.headers["location"].removeprefix("/t/"))).requester == "carol"
        relay = inbox.client(Authorization=f"Bearer {TOKEN}", **{"X-Opsgate-User": "ci-bot"})
        response = await relay.post("/new", {"text": "!list_deployments", "agent": "deploy"})
        assert response.status_code == 303
        assert (await inbox.thread(response.headers["location"].removeprefix("/t/"))).requester == "ci-bot"
        bad = inbox.client(Authorization="Bearer wrong")
        assert (await bad.get("/")).status_code == 303
        assert (await bad.post("/new", {"text": "!help"})).status_code == 401
        for client in (mine, relay, bad):
            await client.aclose()


async def test_beyond_loopback_people_log_in_with_personal_tokens(inbox_at: InboxFactory) -> None:
    """Listening on 0.0.0.0 there is no login URL; a personal token works, an empty one does not."""
    async with inbox_at({"OPSGATE_HOST": "0.0.0.0"}) as inbox:
        assert inbox.web.auth.login_token is None
        client = inbox.client()
        page = await client.get("/login")
        assert "opsgate tokens create --user YOU" in text_of(page.text)
        form = {"csrf": csrf_of(page.text), "token": ""}
        assert (await client.post("/login", form)).status_code == 403
        assert (await client.login_with(await inbox.personal_token("dave"))).status_code == 303
        await client.aclose()


async def test_non_approver_cannot_decide(inbox_at: InboxFactory) -> None:
    """A logged-in person who is not an approver sees why, and their Approve and Reject are refused (403)."""
    async with inbox_at(APPROVERS) as inbox:
        mallory = await inbox.logged_in("mallory")
        thread_id = await mallory.start(PRODUCTION_DEPLOY)
        await inbox.wait_status(thread_id, "waiting_for_approval")
        html = (await mallory.get(f"/t/{thread_id}")).text
        assert "mallory is not one of the approvers for deploy" in text_of(html)
        assert '<button type="submit" class="button approve" disabled>Approve</button>' in html
        assert "Reject…" not in html and "Edit…" not in html
        approve = await mallory.decide(thread_id, "approve")
        assert approve.status_code == 403
        assert "Not allowed: mallory is not one of the approvers for deploy" in text_of(approve.text)
        reject = await mallory.decide(thread_id, "reject", {"comment": "mine"}, fetch=True)
        assert reject.status_code == 403
        assert (await inbox.thread(thread_id)).status == "waiting_for_approval"
        await mallory.aclose()


async def test_four_eyes_in_the_inbox(inbox_at: InboxFactory) -> None:
    """The requester of a production deploy may not approve it; another approver may."""
    async with inbox_at(APPROVERS) as inbox:
        alice = await inbox.logged_in("alice@example.com")
        bob = await inbox.logged_in("bob@example.com")
        thread_id = await alice.start(PRODUCTION_DEPLOY)
        await inbox.wait_status(thread_id, "waiting_for_approval")
        html = (await alice.get(f"/t/{thread_id}")).text
        assert '<button type="submit" class="button approve" disabled>Approve</button>' in html
        assert "Reject…" in html  # the requester may still cancel their own request
        own = await alice.decide(thread_id, "approve")
        assert own.status_code == 403
        assert "four-eyes rule: alice@example.com requested this deploy" in text_of(own.text)
        assert (await bob.decide(thread_id, "approve")).status_code == 303
        thread = await inbox.wait_status(thread_id, "done")
        assert "approved via web" in text_of((await alice.get(f"/t/{thread_id}")).text)
        assert thread.requester == "alice@example.com"
        await alice.aclose()
        await bob.aclose()


async def test_opsgate_serve_prints_the_login_url(tmp_workdir: Path) -> None:
    """`opsgate serve` on loopback prints the login URL as a plain stdout line and logs it; it works."""
    async with OpsgateProcess({}, cwd=tmp_workdir) as process:
        url = await _printed_login_url(process)
        assert url.startswith(f"{process.url}/login?token=")
        record = await process.wait_for_log(event="web_login_url")
        assert record["url"] == url
        lines = [line for line in process.log_text().splitlines() if line.strip()]
        assert lines[-1] == f"opsgate inbox: open {url} to log in"  # last, after its log line, as the README says
        async with httpx.AsyncClient(follow_redirects=False) as http:
            assert (await http.get(url)).status_code == 303


async def test_with_approvers_serve_prints_how_to_log_in(tmp_workdir: Path) -> None:
    """With approvers configured `opsgate serve` prints no login URL, only where the inbox is and how to prove who
    you are."""
    async with OpsgateProcess({"OPSGATE_APPROVERS": "alice@example.com"}, cwd=tmp_workdir) as process:
        record = await process.wait_for_log(event="web_inbox")
        assert record["login"] == "personal token or sign-in link"
        assert f"opsgate inbox: {process.url}/ (log in with a personal token" in process.log_text()
        assert "/login?token=" not in process.log_text()


async def _printed_login_url(process: OpsgateProcess, within: float = 15.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = re.search(r"^opsgate inbox: open (\S+/login\?token=\S+) to log in$", process.log_text(), re.M)
        if found:
            return found.group(1)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no login URL printed:\n{process.log_tail()}")
