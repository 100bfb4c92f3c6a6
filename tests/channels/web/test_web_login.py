"""Logging in to the inbox (printed URL or API token), and who may decide once logged in."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx

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


async def test_login_url_offers_the_configured_approvers(inbox_at: InboxFactory) -> None:
    """With approvers the link shows a choice among them; another identity or a missing CSRF is refused."""
    env = {**APPROVERS, "OPSGATE_APPROVERS_DEPLOYERS": "carol@example.com"}
    async with inbox_at(env) as inbox:
        client = inbox.client()
        page = await client.get(f"/login?token={inbox.login_token}")
        assert page.status_code == 200
        offered = re.findall(r'name="identity" value="([^"]+)"', page.text)
        assert offered == ["alice@example.com", "bob@example.com", "carol@example.com"]
        form = {"csrf": csrf_of(page.text), "token": inbox.login_token, "next": "/"}
        assert (await client.post("/login", {**form, "identity": "mallory"})).status_code == 422
        assert (await client.post("/login", {**form, "csrf": "", "identity": "bob@example.com"})).status_code == 403
        wrong = await client.post("/login", {**form, "token": "nope", "identity": "bob@example.com"})
        assert wrong.status_code == 403
        assert (await client.get("/")).status_code == 303
        done = await client.post("/login", {**form, "identity": "bob@example.com"})
        assert done.status_code == 303
        assert "bob@example.com" in (await client.get("/")).text
        await client.aclose()


async def test_logout_ends_the_session(inbox_at: InboxFactory) -> None:
    """After logging out, pages redirect to the login page again."""
    async with inbox_at() as inbox:
        client = inbox.client()
        await client.login_by_url(inbox.login_token)
        response = await client.post("/logout", {"csrf": await client.csrf()})
        assert (response.status_code, response.headers["location"]) == (303, "/login")
        assert (await client.get("/")).status_code == 303
        await client.aclose()


async def test_api_token_login_form(inbox_at: InboxFactory) -> None:
    """With OPSGATE_API_TOKEN there is no login URL; the form takes the token and an identity."""
    async with inbox_at({"OPSGATE_API_TOKEN": TOKEN}) as inbox:
        assert inbox.web.auth.login_token is None
        client = inbox.client()
        page = await client.get("/login")
        assert 'type="password" name="token"' in page.text
        assert (await client.login_by_token("wrong", "alice")).status_code == 403
        assert (await client.login_by_token(TOKEN, "two words")).status_code == 422
        assert (await client.login_by_token(TOKEN, "<script>")).status_code == 422
        assert (await client.get("/")).status_code == 303
        assert (await client.login_by_token(TOKEN, "alice")).status_code == 303
        assert "alice" in (await client.get("/")).text
        await client.aclose()


async def test_bearer_token_acts_without_cookie_or_csrf(inbox_at: InboxFactory) -> None:
    """``Authorization: Bearer`` with the API token is accepted (no ambient credential, so no CSRF)."""
    async with inbox_at({"OPSGATE_API_TOKEN": TOKEN}) as inbox:
        good = inbox.client(Authorization=f"Bearer {TOKEN}", **{"X-Opsgate-User": "ci-bot"})
        response = await good.post("/new", {"text": "!list_deployments", "agent": "deploy"})
        assert response.status_code == 303
        thread = await inbox.thread(response.headers["location"].removeprefix("/t/"))
        assert thread.requester == "ci-bot"
        bad = inbox.client(Authorization="Bearer wrong")
        assert (await bad.get("/")).status_code == 303
        assert (await bad.post("/new", {"text": "!help"})).status_code == 401
        await good.aclose()
        await bad.aclose()


async def test_beyond_loopback_without_token_nobody_logs_in(inbox_at: InboxFactory) -> None:
    """Listening on 0.0.0.0 without OPSGATE_API_TOKEN the inbox explains how to enable it and refuses logins."""
    async with inbox_at({"OPSGATE_HOST": "0.0.0.0"}) as inbox:
        assert not inbox.web.auth.enabled
        client = inbox.client()
        page = await client.get("/login")
        assert "Set OPSGATE_API_TOKEN and restart" in text_of(page.text)
        form = {"csrf": csrf_of(page.text), "token": "", "identity": "local"}
        assert (await client.post("/login", form)).status_code == 403
        await client.aclose()


async def test_non_approver_cannot_decide(inbox_at: InboxFactory) -> None:
    """A logged-in person who is not an approver sees why, and their Approve and Reject are refused (403)."""
    async with inbox_at({**APPROVERS, "OPSGATE_API_TOKEN": TOKEN}) as inbox:
        mallory = inbox.client()
        await mallory.login_by_token(TOKEN, "mallory")
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
    async with inbox_at({**APPROVERS, "OPSGATE_API_TOKEN": TOKEN}) as inbox:
        alice, bob = inbox.client(), inbox.client()
        await alice.login_by_token(TOKEN, "alice@example.com")
        await bob.login_by_token(TOKEN, "bob@example.com")
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
        async with httpx.AsyncClient(follow_redirects=False) as http:
            assert (await http.get(url)).status_code == 303


async def _printed_login_url(process: OpsgateProcess, within: float = 15.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = re.search(r"^opsgate inbox: open (\S+/login\?token=\S+) to log in$", process.log_text(), re.M)
        if found:
            return found.group(1)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no login URL printed:\n{process.log_tail()}")
