"""Hostile input over the real HTTP API of `opsgate serve`, on SQLite and PostgreSQL: clear answers, never a 5xx.

One server per backend for the whole module; no model is configured, so messages that are not commands end as a
thread asking for a model, which does not matter here: what is checked is what was accepted and stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from storage import upgrade
from tests.support.api_client import TOKEN, ApiClient
from tests.support.databases import postgres_database, sqlite_url
from tests.support.processes import OpsgateProcess


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsgateProcess]:
    """An `opsgate serve` with an API token on a fresh SQLite file or a migrated throwaway PostgreSQL database."""
    root = tmp_path_factory.mktemp("hostile")
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        database = postgres_database() if request.param == "postgres" else None
        url = runner.run(database.__aenter__()) if database else sqlite_url(Path(root) / "opsgate.db")
        process = OpsgateProcess({"DATABASE_URL": url, "OPSGATE_API_TOKEN": TOKEN, "OPSGATE_POLL_INTERVAL": "0.05",
                                  "OPSGATE_APPROVERS": "alice@example.com",
                                  # hostile text in asserted user names too: the shared token acts as a relay here
                                  "OPSGATE_API_TRUSTED_RELAY": "true"}, cwd=root)
        try:
            if database:
                runner.run(upgrade(url))
            runner.run(process.start())
            yield process
        finally:
            runner.run(process.kill())
            if database:
                runner.run(database.__aexit__(None, None, None))


@pytest.fixture
async def api(server: OpsgateProcess) -> AsyncIterator[ApiClient]:
    client = ApiClient(server.url)
    yield client
    await client.aclose()


def raw_json(text: str) -> bytes:
    """A JSON body with ``text`` as the message, escaped the way any JSON encoder may send it (\\u0000, \\ud800)."""
    return json.dumps({"message": text, "user": "bob\x00@example.com"}).encode()


async def post(api: ApiClient, path: str, body: bytes) -> httpx.Response:
    return await api.http.post(path, content=body, headers={"Content-Type": "application/json"})


async def test_nul_in_a_message_is_accepted_and_stored_replaced(api: ApiClient) -> None:
    """A message (and user) with NUL gets 202; the thread and its title show U+FFFD there on both backends."""
    response = await post(api, "/threads", raw_json("deploy\x00api now"))
    assert response.status_code == 202, response.text
    thread = await api.thread(response.json()["thread_id"])
    first = thread["events"][0]
    assert first["text"] == "deploy\ufffdapi now"
    assert first["user"] == "bob\ufffd@example.com"
    listed = (await api.http.get("/threads")).json()
    assert any(t["id"] == thread["id"] and t["title"] == "deploy\ufffdapi now" for t in listed)


async def test_a_lone_surrogate_escape_is_a_clear_422(api: ApiClient) -> None:
    """JSON with a lone surrogate escape (\\ud800, no valid Unicode) is refused with 422 naming the field."""
    response = await post(api, "/threads", raw_json("deploy \ud800 now"))
    assert response.status_code == 422, response.text
    assert "message" in response.text


async def test_a_command_with_nul_gets_a_clear_answer(api: ApiClient) -> None:
    """`!deploy` with NUL in a value is read with U+FFFD there, and the action's validation answers it."""
    thread_id = await api.start("!deploy service=a\x00pi version=1.2.3 environment=production", user="bob")
    thread = await api.wait(thread_id, "done")
    answer = thread["events"][-1]["message"]
    assert "service" in answer and "usage: !deploy" in answer, answer


async def test_follow_up_message_with_nul_is_accepted(api: ApiClient) -> None:
    """A message in an existing thread with NUL gets 202 and is stored replaced."""
    thread_id = await api.start("!help", user="bob")
    await api.wait(thread_id, "done")
    response = await api.respond(thread_id, {"type": "message", "text": "and\x00 then?"})
    assert response.status_code == 202, response.text
    thread = await api.thread(thread_id)
    assert any(e.get("text") == "and\ufffd then?" for e in thread["events"])


@pytest.mark.parametrize("path", ["/threads/abc%00def", "/threads/%ED%A0%80"])
async def test_hostile_thread_ids_are_unknown_threads(api: ApiClient, path: str) -> None:
    """A thread id with NUL (or bytes that are no UTF-8) is a 404 for reads and writes, not a 500."""
    assert (await api.http.get(path)).status_code == 404
    response = await api.http.post(f"{path}/responses", json={"type": "message", "text": "hi"})
    assert response.status_code == 404, response.text


# --- size limits ----------------------------------------------------------------------------------------------


async def test_a_message_at_the_limit_is_accepted_and_one_over_is_413(api: ApiClient) -> None:
    """OPSGATE_MAX_MESSAGE_CHARS (20,000) characters are accepted; one more is 413 with the numbers, nothing stored."""
    assert (await api.http.post("/threads", json={"message": "é" * 20_000})).status_code == 202
    before = len((await api.http.get("/threads", params={"limit": 1000})).json())
    response = await api.http.post("/threads", json={"message": "é" * 20_001})
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        "the message is too long: 20001 characters, at most 20000; shorten it or split it")
    assert len((await api.http.get("/threads", params={"limit": 1000})).json()) == before


async def test_follow_ups_and_comments_over_the_limit_are_413(api: ApiClient) -> None:
    """A follow-up message or an approval comment over the limit is refused the same way."""
    thread_id = await api.start("!help", user="bob")
    await api.wait(thread_id, "done")
    response = await api.respond(thread_id, {"type": "message", "text": "x" * 20_001})
    assert response.status_code == 413 and "message is too long" in response.json()["detail"]
    response = await api.respond(thread_id, {"type": "approval", "approval_id": "a", "approved": False,
                                             "comment": "x" * 20_001})
    assert response.status_code == 413 and "comment is too long" in response.json()["detail"]


async def test_a_huge_body_is_refused_before_it_is_read(api: ApiClient) -> None:
    """A body over the limit with Content-Length is 413 at once; a chunked one is 413 once it passes the limit."""
    big = b'{"message": "' + b"a" * (2 << 20) + b'"}'
    response = await post(api, "/threads", big)
    assert response.status_code == 413, response.text
    assert "larger than" in response.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"message": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    response = await api.http.post("/threads", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text


@pytest.mark.parametrize("offset", [str(10**20), str(1_000_000_001), "-1", "9" * 5000])
async def test_out_of_range_offsets_are_422(api: ApiClient, offset: str) -> None:
    """An offset past any real table (or the database's integers) is a 422, not a 500 (found by schemathesis)."""
    response = await api.http.get("/threads", params={"offset": offset})
    assert response.status_code == 422, response.text


async def test_the_largest_offset_is_an_empty_page(api: ApiClient) -> None:
    """offset=1,000,000,000 is accepted and simply past the end."""
    response = await api.http.get("/threads", params={"offset": 1_000_000_000})
    assert response.status_code == 200 and response.json() == []
