"""The inbox shows the quarantine: a link on the list only when something is there, and a page listing it."""

from __future__ import annotations

from bot.store import QuarantineItem
from tests.channels.web.conftest import Client, Inbox, text_of


async def test_quarantine_is_linked_only_when_not_empty_and_lists_items(inbox: Inbox, local: Client) -> None:
    """Empty: no link and "Nothing is in quarantine". With an item: the list links it; the page shows it escaped."""
    assert "/quarantine" not in (await local.get("/")).text
    empty = await local.get("/quarantine")
    assert empty.status_code == 200 and "Nothing is in quarantine" in text_of(empty.text)

    await inbox.runtime.store.quarantine(QuarantineItem(
        channel="email", key="INBOX:9:17", reason="unparseable mail", detail="<script>alert(1)</script>", attempts=2))
    assert 'href="/quarantine"' in (await local.get("/")).text
    page = await local.get("/quarantine")
    assert page.status_code == 200
    assert "email INBOX:9:17 unparseable mail 2" in text_of(page.text)
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text


async def test_quarantine_page_needs_a_session(inbox: Inbox) -> None:
    """An anonymous visitor is sent to the login page."""
    client = inbox.client()
    response = await client.get("/quarantine")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    await client.aclose()
