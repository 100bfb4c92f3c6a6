"""The inbox's limits: the core's message size, page numbers past any table, and huge threads rendered in part."""

from __future__ import annotations

from bot.events import Done, Event, UserMessage, new_id
from bot.thread import Thread
from tests.channels.web.conftest import Client, Inbox, text_of


async def test_a_too_long_request_is_refused_with_its_text_kept(inbox: Inbox, local: Client) -> None:
    """Over OPSGATE_MAX_MESSAGE_CHARS the form answers 413 with the numbers and keeps the text; nothing is stored."""
    text = "!help " + "x" * 20_000
    response = await local.post("/new", {"csrf": await local.csrf(), "agent": "deploy", "text": text})
    assert response.status_code == 413
    assert "20006 characters, at most 20000" in text_of(response.text)
    assert text in response.text
    assert await inbox.runtime.service.list_threads() == []


async def test_a_huge_page_number_is_an_empty_page(local: Client) -> None:
    """?page= beyond the database's integers lists nothing instead of failing."""
    for page in (str(10**18), str(10**300), "9" * 5000, "-3", "x"):
        response = await local.get("/", params={"page": page})
        assert response.status_code == 200, page


async def test_a_huge_thread_page_shows_its_newest_events_and_says_how_many_are_hidden(
    inbox: Inbox, local: Client
) -> None:
    """A thread with 400 messages renders the newest 300 timeline items and a note naming how to see the rest."""
    events: list[Event] = [UserMessage(text=f"message {n:03d}", user="bob") for n in range(400)]
    thread = Thread(id=new_id(), agent="deploy", events=[*events, Done(message="enough")])
    await inbox.runtime.store.create_thread(thread, thread.status)
    page = text_of((await local.get(f"/t/{thread.id}")).text)
    assert "101 earlier events are not shown here" in page
    assert "message 399" in page and "message 101" in page and "message 100" not in page
    assert f"opsgate threads show {thread.id}" in page
