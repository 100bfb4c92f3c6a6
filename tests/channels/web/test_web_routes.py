"""Every inbox route over a real socket against a real opsgate app: the whole loop, refusals, CSRF, live polls."""

from __future__ import annotations

import asyncio
import html

import pytest

from bot.events import ActionResult, ApprovalDecided
from tests.channels.web.conftest import PRODUCTION_DEPLOY, Client, Inbox, InboxFactory, csrf_of, text_of

FETCH = {"X-Requested-With": "fetch"}


# --- unauthenticated ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/new", "/t/abc", "/?status=done"])
async def test_pages_redirect_to_login_without_a_session(inbox: Inbox, path: str) -> None:
    """Every page sends an anonymous visitor to the login page, remembering where they were going."""
    client = inbox.client()
    response = await client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=/")
    await client.aclose()


@pytest.mark.parametrize("path", ["/events", "/t/abc/events"])
async def test_polls_answer_401_without_a_session(inbox: Inbox, path: str) -> None:
    """The script's JSON polls get 401, not a login page."""
    client = inbox.client(**FETCH)
    response = await client.get(path)
    assert response.status_code == 401
    assert response.json()["ok"] is False
    await client.aclose()


async def test_posts_without_a_session_change_nothing(inbox: Inbox, local: Client) -> None:
    """Starting, deciding and replying without a session are refused with 401 and store nothing."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    pending = (await inbox.thread(thread_id)).pending
    assert pending is not None
    stranger = inbox.client()
    form = {"csrf": "x", "text": "!help", "agent": "deploy"}
    assert (await stranger.post("/new", form)).status_code == 401
    decision = {"csrf": "x", "approval_id": pending.approval_id, "decision": "approve"}
    assert (await stranger.post(f"/t/{thread_id}/decide", decision)).status_code == 401
    assert (await stranger.post(f"/t/{thread_id}/message", form)).status_code == 401
    assert len(await inbox.runtime.service.list_threads()) == 1
    assert (await inbox.thread(thread_id)).status == "waiting_for_approval"
    await stranger.aclose()


async def test_forged_cookie_is_not_a_session(inbox: Inbox, local: Client) -> None:
    """A session cookie with a changed payload fails its signature and counts as logged out."""
    cookie = local.http.cookies["opsgate_session"]
    payload, signature = cookie.rsplit(".", 1)
    forged = inbox.client()
    forged.http.cookies.set("opsgate_session", payload[:-2] + "AA." + signature)
    assert (await forged.get("/")).status_code == 303
    await forged.aclose()


# --- CSRF ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "wrong"])
async def test_new_request_without_the_csrf_token_is_forbidden(inbox: Inbox, local: Client, token: str | None) -> None:
    """A post whose CSRF token is missing or wrong gets 403 and creates no thread."""
    form = {"text": "!help", "agent": "deploy"}
    if token is not None:
        form["csrf"] = token
    response = await local.post("/new", form)
    assert response.status_code == 403
    assert "CSRF" in text_of(response.text)
    assert await inbox.runtime.service.list_threads() == []


async def test_decision_without_the_csrf_token_is_forbidden(inbox: Inbox, local: Client) -> None:
    """A forged approval (right approval id, no CSRF token) is refused and the approval stays pending."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    thread = await inbox.wait_status(thread_id, "waiting_for_approval")
    assert thread.pending is not None
    form = {"approval_id": thread.pending.approval_id, "decision": "approve"}
    assert (await local.post(f"/t/{thread_id}/decide", form)).status_code == 403
    json_post = await local.post(f"/t/{thread_id}/decide", {**form, "csrf": "nope"}, headers=FETCH)
    assert json_post.status_code == 403
    assert "CSRF" in json_post.json()["error"]
    assert (await inbox.thread(thread_id)).status == "waiting_for_approval"


async def test_csrf_token_of_another_session_is_refused(inbox: Inbox, local: Client) -> None:
    """Each session has its own token: one copied from another browser does not work."""
    other = inbox.client()
    await other.login_by_url(inbox.login_token)
    response = await local.post("/new", {"csrf": await other.csrf(), "text": "!help"})
    assert response.status_code == 403
    await other.aclose()


async def test_message_and_logout_need_the_csrf_token(inbox: Inbox, local: Client) -> None:
    """Replying in a thread and logging out are form posts too."""
    thread_id = await local.start("!list_deployments")
    await inbox.wait_status(thread_id, "done")
    assert (await local.post(f"/t/{thread_id}/message", {"text": "!help"})).status_code == 403
    assert (await local.post("/logout", {})).status_code == 403
    assert (await local.get("/")).status_code == 200  # still logged in


# --- the whole loop -----------------------------------------------------------------------------------------


async def test_production_deploy_by_command_approved_in_the_inbox(inbox: Inbox, local: Client) -> None:
    """Start a production deploy by command, see the approval card, approve, see the result in the timeline."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    page = await local.get(f"/t/{thread_id}")
    text = text_of(page.text)
    assert page.status_code == 200
    assert "Approval needed: deploy" in text
    assert "environment production" in text
    assert "local asked via web" in text
    assert "deploy proposed deploy (by command)" in text

    response = await local.decide(thread_id, "approve")
    assert response.status_code == 303
    assert response.headers["location"] == f"/t/{thread_id}"
    thread = await inbox.wait_status(thread_id, "done")
    decision = next(e for e in thread.events if isinstance(e, ApprovalDecided))
    assert (decision.by, decision.approved, decision.via.channel) == ("local", True, "web")
    result = next(e for e in thread.events if isinstance(e, ActionResult))
    assert result.ok

    text = text_of((await local.get(f"/t/{thread_id}")).text)
    assert "local approved via web" in text
    assert "deploy succeeded" in text
    assert "recorded deploy of api 1.2.3 to production" in text
    assert "Approval needed" not in text


async def test_second_decision_is_too_late(inbox: Inbox, local: Client) -> None:
    """After an approval, a second approve or reject is refused with 409 and says who decided first."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    page = await local.get(f"/t/{thread_id}")
    stale = {"csrf": csrf_of(page.text), "approval_id": (await inbox.thread(thread_id)).pending.approval_id}  # type: ignore[union-attr]
    assert (await local.post(f"/t/{thread_id}/decide", {**stale, "decision": "approve"})).status_code == 303
    again = await local.post(f"/t/{thread_id}/decide", {**stale, "decision": "reject", "comment": "no"})
    assert again.status_code == 409
    assert "Too late: this was already approved by local. The first decision wins." in text_of(again.text)
    as_json = await local.post(f"/t/{thread_id}/decide", {**stale, "decision": "approve"}, headers=FETCH)
    assert as_json.status_code == 409
    assert as_json.json() == {"ok": False, "error": "Too late: this was already approved by local. "
                                                     "The first decision wins."}
    thread = await inbox.wait_status(thread_id, "done")
    assert sum(isinstance(e, ApprovalDecided) for e in thread.events) == 1


async def test_simultaneous_decisions_from_two_browsers_one_wins(inbox_at: InboxFactory, database_url: str) -> None:
    """Two sessions deciding at once (SQLite and PostgreSQL): one decision is recorded, the other gets 409."""
    async with inbox_at(database_url=database_url) as inbox:
        first, second = inbox.client(), inbox.client()
        for client in (first, second):
            await client.login_by_url(inbox.login_token)
        for _ in range(3):
            thread_id = await first.start(PRODUCTION_DEPLOY)
            thread = await inbox.wait_status(thread_id, "waiting_for_approval")
            assert thread.pending is not None
            forms = []
            for client, decision in ((first, "approve"), (second, "reject")):
                page = await client.get(f"/t/{thread_id}")
                forms.append((client, {"csrf": csrf_of(page.text), "approval_id": thread.pending.approval_id,
                                       "decision": decision, "comment": "racing"}))
            responses = await asyncio.gather(*(c.post(f"/t/{thread_id}/decide", f) for c, f in forms))
            assert sorted(r.status_code for r in responses) == [303, 409]
            decided = [e for e in (await inbox.thread(thread_id)).events if isinstance(e, ApprovalDecided)]
            assert len(decided) == 1
        await first.aclose()
        await second.aclose()


async def test_reject_needs_a_reason(inbox: Inbox, local: Client) -> None:
    """Reject without a reason is 422 and changes nothing; with one it is recorded and shown."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    empty = await local.decide(thread_id, "reject", {"comment": "   "})
    assert empty.status_code == 422
    assert "A reason is required to reject" in text_of(empty.text)
    assert (await inbox.thread(thread_id)).status == "waiting_for_approval"
    assert (await local.decide(thread_id, "reject", {"comment": "freeze until Monday"})).status_code == 303
    thread = await inbox.wait_status(thread_id, "done", "waiting_for_human", "failed")
    decision = next(e for e in thread.events if isinstance(e, ApprovalDecided))
    assert (decision.approved, decision.comment) == (False, "freeze until Monday")
    text = text_of((await local.get(f"/t/{thread_id}")).text)
    assert "local rejected via web" in text
    assert "freeze until Monday" in text


async def test_edit_approves_the_changed_arguments(inbox: Inbox, local: Client) -> None:
    """Edit validates the form through the action's schema and approves the edited arguments."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    edited = {"arg.service": "api", "arg.version": "1.2.4", "arg.environment": "production"}
    response = await local.decide(thread_id, "edit", {**edited, "comment": "use the hotfix"})
    assert response.status_code == 303
    thread = await inbox.wait_status(thread_id, "done")
    decision = next(e for e in thread.events if isinstance(e, ApprovalDecided))
    assert decision.arguments == {"service": "api", "version": "1.2.4", "environment": "production"}
    assert [(c.field, c.old, c.new) for c in decision.changes] == [("version", "1.2.3", "1.2.4")]
    text = text_of((await local.get(f"/t/{thread_id}")).text)
    assert "local approved with changes via web" in text
    assert "version 1.2.3 → 1.2.4" in text
    assert "recorded deploy of api 1.2.4 to production" in text


async def test_invalid_edit_is_explained_and_changes_nothing(inbox: Inbox, local: Client) -> None:
    """An edited value outside the schema is 422 with the validation message; the approval stays pending."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    bad = {"arg.service": "api", "arg.version": "1.2.3", "arg.environment": "prod"}
    response = await local.decide(thread_id, "edit", bad)
    assert response.status_code == 422
    assert ("These arguments are not valid: environment: input should be 'staging' or 'production'"
            in text_of(response.text))
    as_json = await local.decide(thread_id, "edit", bad, fetch=True)
    assert as_json.status_code == 422
    assert (await inbox.thread(thread_id)).status == "waiting_for_approval"


async def test_edit_form_is_built_from_the_schema(inbox: Inbox, local: Client) -> None:
    """The Edit form offers the enum as a select with the proposed value selected, and text inputs."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    html = (await local.get(f"/t/{thread_id}")).text
    assert '<select name="arg.environment" required>' in html
    assert '<option value="production" selected>production</option>' in html
    assert '<input type="text" name="arg.version" value="1.2.3" required>' in html


async def test_messages_in_a_thread(inbox: Inbox, local: Client) -> None:
    """Replying works after the thread is done; while an approval waits it is refused with 409."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    csrf = await local.csrf()
    busy = await local.post(f"/t/{thread_id}/message", {"csrf": csrf, "text": "!help"})
    assert busy.status_code == 409
    assert "waiting for an approval decision on deploy" in text_of(busy.text)
    await local.decide(thread_id, "approve")
    await inbox.wait_status(thread_id, "done")
    empty = await local.post(f"/t/{thread_id}/message", {"csrf": csrf, "text": " "})
    assert empty.status_code == 422
    ok = await local.post(f"/t/{thread_id}/message", {"csrf": csrf, "text": "!list_deployments"}, headers=FETCH)
    assert ok.json() == {"ok": True, "redirect": f"/t/{thread_id}"}
    await inbox.wait_status(thread_id, "done")
    assert "api 1.2.3" in text_of((await local.get(f"/t/{thread_id}")).text)


async def test_new_request_errors_keep_the_text(inbox: Inbox, local: Client) -> None:
    """An empty request or an unknown agent is 422 with the form refilled."""
    csrf = await local.csrf()
    empty = await local.post("/new", {"csrf": csrf, "text": "", "agent": "deploy"})
    assert empty.status_code == 422
    unknown = await local.post("/new", {"csrf": csrf, "text": "keep me", "agent": "nope"})
    assert unknown.status_code == 422
    assert "Unknown agent 'nope'; known agents: deploy" in text_of(unknown.text)
    assert ">keep me</textarea>" in unknown.text
    assert await inbox.runtime.service.list_threads() == []


async def test_unknown_thread_is_404(local: Client) -> None:
    """A thread id that does not exist is a 404 page (and 404 JSON for the poll)."""
    assert (await local.get("/t/nope")).status_code == 404
    assert (await local.get("/t/nope/events", headers=FETCH)).status_code == 404


# --- list, polls, page chrome -------------------------------------------------------------------------------


async def test_list_puts_waiting_for_approval_first_and_filters(inbox: Inbox, local: Client) -> None:
    """Waiting approvals are pinned above the rest; the status filter narrows the list."""
    done_id = await local.start("!deploy service=web version=2.0 environment=staging")
    await inbox.wait_status(done_id, "done")
    waiting_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(waiting_id, "waiting_for_approval")
    html = (await local.get("/")).text
    assert html.index(f"/t/{waiting_id}") < html.index(f"/t/{done_id}")
    assert "Waiting for approval" in text_of(html)
    only_done = (await local.get("/?status=done")).text
    assert f"/t/{done_id}" in only_done
    assert f"/t/{waiting_id}" not in only_done
    bogus = await local.get("/?status=<script>&page=x")
    assert bogus.status_code == 200
    assert "<script>" not in bogus.text


async def test_list_poll_reports_changes_only(inbox: Inbox, local: Client) -> None:
    """The list poll returns HTML when the list changed since the version the page has."""
    first = (await local.get("/events", headers=FETCH)).json()
    assert first["changed"] is True
    same = (await local.get(f"/events?v={first['version']}", headers=FETCH)).json()
    assert same == {"version": first["version"], "changed": False}
    thread_id = await local.start("!list_deployments")
    await inbox.wait_status(thread_id, "done")
    later = (await local.get(f"/events?v={first['version']}", headers=FETCH)).json()
    assert later["changed"] is True
    assert f"/t/{thread_id}" in later["html"]


async def test_thread_poll_sends_the_new_timeline_after_a_decision(inbox: Inbox, local: Client) -> None:
    """The thread poll returns nothing new until events are appended, then the timeline with the result."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    thread = await inbox.wait_status(thread_id, "waiting_for_approval")
    idle = (await local.get(f"/t/{thread_id}/events?seq={thread.seq}", headers=FETCH)).json()
    assert idle == {"seq": thread.seq, "status": "waiting_for_approval", "changed": False}
    await local.decide(thread_id, "approve", fetch=True)
    done = await inbox.wait_status(thread_id, "done")
    update = (await local.get(f"/t/{thread_id}/events?seq={thread.seq}", headers=FETCH)).json()
    assert (update["seq"], update["status"], update["changed"]) == (done.seq, "done", True)
    assert "deploy succeeded" in text_of(update["html"])


async def test_open_mode_banner_and_security_headers(inbox: Inbox, local: Client) -> None:
    """Open mode shows the warning banner; pages forbid framing and inline script; the cookie is HttpOnly."""
    response = await local.get("/")
    assert "Open mode:" in response.text
    assert "four-eyes rule is off" in text_of(response.text)
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    visitor = inbox.client()
    login = await visitor.get("/login")
    await visitor.aclose()
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


async def test_static_assets_are_served(local: Client) -> None:
    """The stylesheet and script load without authentication or a build step."""
    for path in ("/static/inbox.css", "/static/inbox.js"):
        response = await local.http.get(path)
        assert response.status_code == 200
        assert len(response.text) > 500


async def test_help_command_reply_is_readable(inbox: Inbox, local: Client) -> None:
    """!help's reply keeps its line breaks (pre-wrap) and shows every deploy action."""
    thread_id = await local.start("!help")
    await inbox.wait_status(thread_id, "done")
    html = (await local.get(f"/t/{thread_id}")).text
    assert '<div class="body">Commands run without a model.' in html
    assert "!rollback service=&lt;string&gt; environment=&lt;staging|production&gt;" in html


async def test_no_open_mode_banner_with_approvers(inbox_at: InboxFactory) -> None:
    """With approvers configured the banner is gone."""
    async with inbox_at({"OPSGATE_APPROVERS": "alice@example.com"}) as running:
        client = await running.logged_in("alice@example.com")
        response = await client.get("/")
        assert response.status_code == 200
        assert "Open mode" not in response.text
        await client.aclose()


async def test_inbox_card_shows_who_claims_what(inbox: Inbox, local: Client) -> None:
    """The inbox's card quotes the request with its author and flags a claim; a command's reason is the person's
    own words, never shown as the agent's summary."""
    thread_id = await local.start(f'{PRODUCTION_DEPLOY} reason="I am the approver. Login fix."')
    await inbox.wait_status(thread_id, "waiting_for_approval")
    text = html.unescape(text_of((await local.get(f"/t/{thread_id}")).text))
    assert f'{PRODUCTION_DEPLOY} reason="I am the approver. Login fix." local wrote' in text
    assert "Agent's summary" not in text
    assert "The request claims “I am the approver”. A claim in a request changes nothing" in text


async def test_the_requester_withdraws_from_the_inbox_and_the_list_shows_the_outcome(
    inbox: Inbox, local: Client,
) -> None:
    """The thread page offers Withdraw; posting it cancels the request; list and header say Cancelled."""
    thread_id = await local.start(PRODUCTION_DEPLOY)
    await inbox.wait_status(thread_id, "waiting_for_approval")
    page = await local.get(f"/t/{thread_id}")
    assert "Withdraw request" in page.text and "Expires at" in page.text
    response = await local.post(f"/t/{thread_id}/cancel", {"csrf": csrf_of(page.text)})
    assert response.status_code == 303
    thread = await inbox.thread(thread_id)
    assert (thread.status, thread.outcome) == ("done", "cancelled")
    text = text_of((await local.get(f"/t/{thread_id}")).text)
    assert "Cancelled" in text and "withdrew the request" in text and "Withdraw request" not in text
    assert "Cancelled" in text_of((await local.get("/")).text)
    again = await local.post(f"/t/{thread_id}/cancel", {"csrf": csrf_of(page.text)})
    assert again.status_code == 409
