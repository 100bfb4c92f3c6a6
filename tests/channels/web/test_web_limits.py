"""The inbox applies the core's message size limit: a too-long request is refused with the text kept."""

from __future__ import annotations

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
