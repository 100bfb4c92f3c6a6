"""Sign-in links: asked for on the login page, delivered by a real SMTP server or the fake Slack Web API,
used once (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

from bot.credentials import SignInLink, digest
from bot.events import utcnow
from bot.signin import LINKS_PER_WINDOW
from tests.channels.web.conftest import Client, Inbox, InboxFactory, csrf_of, text_of
from tests.support.fake_slack import BOT_TOKEN, FakeSlack
from tests.support.mail_servers import SmtpRecorder, smtp_env, smtp_server  # noqa: F401 - fixture

APPROVERS = {"OPSGATE_APPROVERS": "alice@example.com,UCAROL01"}
_LINK = re.compile(r"(https?://\S+/login/link\?token=[A-Za-z0-9_-]+)")
SAME_ANSWER = "a sign-in link is on its way to it by email or Slack DM"


def mail_env(smtp: SmtpRecorder) -> dict[str, str]:
    """SMTP only (no mailbox): enough for sign-in mail; links point at a public URL of our choosing."""
    return {**APPROVERS, **smtp_env(smtp), "OPSGATE_EMAIL_ADDRESS": "opsgate@example.com",
            "OPSGATE_PUBLIC_URL": "https://inbox.example.com/"}


async def ask_for_link(client: Client, identity: str) -> str:
    """Post the sign-in link form; return the visible answer."""
    page = await client.get("/login")
    assert "Send me a link" in page.text
    response = await client.post("/login/link/request", {"csrf": csrf_of(page.text), "identity": identity})
    assert response.status_code == 200, response.text
    return text_of(response.text)


async def outbox_drained(inbox: Inbox, within: float = 10.0) -> None:
    """Wait until every queued outbox row was handed over (delivered or given up)."""
    deadline = asyncio.get_running_loop().time() + within
    while await inbox.runtime.store.outbox_pending() > 0:
        assert asyncio.get_running_loop().time() < deadline, "the outbox did not drain"
        await asyncio.sleep(0.02)


async def use_link(client: Client, url: str, inbox: Inbox) -> int:
    """Open a link as the browser would (the landing page), press Sign in; return the post's status."""
    path = url.split("://", 1)[1].split("/", 1)[1]
    landing = await client.get("/" + path)
    assert landing.status_code == 200
    assert "This link signs you in once" in text_of(landing.text)
    token = path.split("token=", 1)[1]
    response = await client.post("/login/link", {"csrf": csrf_of(landing.text), "token": token})
    return response.status_code


async def test_sign_in_link_by_email_works_once(
    inbox_at: InboxFactory, database_url: str, smtp_server: SmtpRecorder  # noqa: F811
) -> None:
    """A known address gets a link by mail that points at OPSGATE_PUBLIC_URL; it logs in once, then is refused."""
    async with inbox_at(mail_env(smtp_server), database_url=database_url) as inbox:
        client = inbox.client()
        assert SAME_ANSWER in await ask_for_link(client, "alice@example.com")
        [mail] = await smtp_server.wait_for(lambda m: "alice@example.com" in m.rcpt_tos)
        assert mail.message["Subject"] == "Your opsgate sign-in link"
        assert mail.message["Auto-Submitted"] == "auto-generated"
        body = mail.message.get_body(("plain",))
        assert body is not None
        found = _LINK.search(body.get_content())
        assert found, body.get_content()
        url = found.group(1)
        assert url.startswith("https://inbox.example.com/login/link?token=")
        assert (await client.get("/")).status_code == 303  # nothing happens before the link is used
        assert await use_link(client, url, inbox) == 303
        assert 'title="you are signed in as alice@example.com"' in (await client.get("/")).text

        other = inbox.client()
        assert await use_link(other, url, inbox) == 403  # single use
        assert (await other.get("/")).status_code == 303
        await client.aclose()
        await other.aclose()


async def test_unknown_identity_gets_the_same_answer_and_no_mail(
    inbox_at: InboxFactory, smtp_server: SmtpRecorder  # noqa: F811
) -> None:
    """Nobody learns whether an address is known: same page, and a stranger's address gets no mail."""
    async with inbox_at(mail_env(smtp_server)) as inbox:
        client = inbox.client()
        known = await ask_for_link(client, "alice@example.com")
        unknown = await ask_for_link(client, "mallory@example.com")
        assert known.replace("alice@example.com", "X") == unknown.replace("mallory@example.com", "X")
        await smtp_server.wait_for(lambda m: "alice@example.com" in m.rcpt_tos)
        await outbox_drained(inbox)
        assert smtp_server.to("mallory@example.com") == []
        bad = await client.post("/login/link/request", {"csrf": csrf_of((await client.get("/login")).text),
                                                       "identity": "two words"})
        assert bad.status_code == 422
        await client.aclose()


async def test_links_are_rate_limited_per_identity(
    inbox_at: InboxFactory, smtp_server: SmtpRecorder  # noqa: F811
) -> None:
    """After LINKS_PER_WINDOW links in the window no more mail goes out, and the page still says the same."""
    async with inbox_at(mail_env(smtp_server)) as inbox:
        client = inbox.client()
        for _ in range(LINKS_PER_WINDOW + 2):
            assert SAME_ANSWER in await ask_for_link(client, "alice@example.com")
        await smtp_server.wait_for(lambda m: "alice@example.com" in m.rcpt_tos, count=LINKS_PER_WINDOW)
        await outbox_drained(inbox)
        assert len(smtp_server.to("alice@example.com")) == LINKS_PER_WINDOW
        await client.aclose()


async def test_expired_link_is_refused(inbox_at: InboxFactory, database_url: str) -> None:
    """A link past its expiry does not log in, and says links are short-lived."""
    async with inbox_at(APPROVERS, database_url=database_url) as inbox:
        then = utcnow() - timedelta(minutes=30)
        link = SignInLink(hash=digest("old-secret"), identity="alice@example.com", created_at=then,
                          expires_at=then + timedelta(minutes=10))
        assert await inbox.runtime.store.add_signin_link(link, limit=5, since=then)
        client = inbox.client()
        status = await use_link(client, "http://x/login/link?token=old-secret", inbox)
        assert status == 403
        page = await client.post("/login/link", {"csrf": csrf_of((await client.get("/login")).text),
                                                 "token": "old-secret"})
        assert "it expired (links work for 10 minutes)" in text_of(page.text)
        assert (await client.get("/")).status_code == 303
        await client.aclose()


async def test_sign_in_link_by_slack_dm(inbox_at: InboxFactory, database_url: str) -> None:
    """A Slack member id gets the link as a DM (chat.postMessage to the user id) and it logs in as that id."""
    with FakeSlack() as slack:
        env = {**APPROVERS, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": "s" * 32,
               "SLACK_API_URL": slack.api_url}
        async with inbox_at(env, database_url=database_url) as inbox:
            client = inbox.client()
            assert SAME_ANSWER in await ask_for_link(client, "UCAROL01")
            [call] = await slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "UCAROL01")
            assert "thread_ts" not in call.args or not call.args["thread_ts"]
            found = _LINK.search(str(call.args["text"]))
            assert found, call.args
            assert found.group(1).startswith(inbox.url)  # no OPSGATE_PUBLIC_URL: the configured host and port
            assert await use_link(client, found.group(1), inbox) == 303
            assert 'title="you are signed in as UCAROL01"' in (await client.get("/")).text
            await client.aclose()


async def test_a_mapped_person_gets_the_link_at_their_address(
    inbox_at: InboxFactory, smtp_server: SmtpRecorder  # noqa: F811
) -> None:
    """A person named in OPSGATE_PEOPLE may ask by name: the link goes to their address and signs in the name."""
    async with inbox_at({**mail_env(smtp_server), "OPSGATE_PEOPLE": "dana=dana@example.com"}) as inbox:
        client = inbox.client()
        assert SAME_ANSWER in await ask_for_link(client, "dana")
        [mail] = await smtp_server.wait_for(lambda m: "dana@example.com" in m.rcpt_tos)
        body = mail.message.get_body(("plain",))
        assert body is not None and "as dana." in body.get_content()
        found = _LINK.search(body.get_content())
        assert found
        assert await use_link(client, found.group(1), inbox) == 303
        assert 'title="you are signed in as dana"' in (await client.get("/")).text
        await client.aclose()


async def test_without_smtp_or_slack_there_are_no_links(inbox_at: InboxFactory) -> None:
    """The form is hidden, and a hand-made request says links cannot be sent (a fact about the server only)."""
    async with inbox_at(APPROVERS) as inbox:
        client = inbox.client()
        page = await client.get("/login")
        assert "Send me a link" not in page.text
        response = await client.post("/login/link/request", {"csrf": csrf_of(page.text),
                                                             "identity": "alice@example.com"})
        assert response.status_code == 409
        assert "cannot send sign-in links" in text_of(response.text)
        await client.aclose()
