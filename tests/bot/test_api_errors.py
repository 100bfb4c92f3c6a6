"""The HTTP API refuses bad requests with clear 4xx answers, never a 5xx (one `opsgate serve` per module).

Two real server processes: one with OPSGATE_API_TOKEN and an approver, one with no token set. No model is
configured; explicit commands put threads into the states the tests need.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support.api_client import TOKEN, ApiClient
from tests.support.databases import sqlite_url
from tests.support.processes import OpsgateProcess

APPROVER = "alice@example.com"
OTHER_APPROVERS = ["carol@example.com", "dave@example.com"]
PRODUCTION = "!deploy service=api version=1.2.3 environment=production"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, OpsgateProcess]]:
    """Two opsgate processes for the whole module: "token" (API enabled) and "no_token" (API disabled)."""
    root = tmp_path_factory.mktemp("api-errors")
    # A trusted relay: these tests assert several users with one token (tests/bot/test_credentials_e2e.py covers
    # personal tokens and the shared token without the opt-in).
    common = {"OPSGATE_APPROVERS": ",".join([APPROVER, *OTHER_APPROVERS]), "OPSGATE_POLL_INTERVAL": "0.05",
              "OPSGATE_API_TRUSTED_RELAY": "true"}
    processes = {
        "token": OpsgateProcess({**common, "DATABASE_URL": sqlite_url(root / "a.db"), "OPSGATE_API_TOKEN": TOKEN},
                                cwd=root),
        "no_token": OpsgateProcess({**common, "DATABASE_URL": sqlite_url(root / "b.db")}, cwd=root),
    }

    async def start_all() -> None:
        await asyncio.gather(*(p.start() for p in processes.values()))

    async def kill_all() -> None:
        await asyncio.gather(*(p.kill() for p in processes.values()))

    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        try:
            runner.run(start_all())
            yield processes
        finally:
            runner.run(kill_all())


@pytest.fixture
async def api(servers: dict[str, OpsgateProcess]) -> AsyncIterator[ApiClient]:
    client = ApiClient(servers["token"].url)
    yield client
    await client.aclose()


@pytest.fixture
async def raw(servers: dict[str, OpsgateProcess]) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the token server without credentials."""
    async with httpx.AsyncClient(base_url=servers["token"].url, timeout=10) as client:
        yield client


async def waiting_thread(api: ApiClient) -> dict[str, Any]:
    thread_id = await api.start(PRODUCTION, user="bob@example.com")
    return await api.wait(thread_id, "waiting_for_approval")


async def done_thread(api: ApiClient) -> dict[str, Any]:
    return await api.wait(await api.start("!help", user="bob@example.com"), "done")


def refused(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    """Assert the status (never a 5xx) and return the JSON detail."""
    assert response.status_code < 500, response.text
    assert response.status_code == status, response.text
    return dict(response.json())


ROUTES = [("GET", "/threads"), ("GET", "/threads?status=done"), ("POST", "/threads"), ("GET", "/threads/abc"),
          ("POST", "/threads/abc/responses")]
BODY = {"message": "deploy api", "type": "message", "text": "hi"}


# --- authentication -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Token {TOKEN}",
                                           "Bearer", f"Bearer {TOKEN}x"])
async def test_threads_routes_need_the_right_bearer_token(
    raw: httpx.AsyncClient, method: str, path: str, authorization: str | None
) -> None:
    """Missing, wrong or non-bearer credentials get 401 with a Bearer challenge on every /threads route."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await raw.request(method, path, json=BODY if method == "POST" else None, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unauthenticated_malformed_body_is_still_401(raw: httpx.AsyncClient) -> None:
    """Authentication is checked before anything about the body is reported."""
    response = await raw.post("/threads", content=b'{"message": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_without_a_configured_token_the_api_refuses_everything(
    servers: dict[str, OpsgateProcess], method: str, path: str
) -> None:
    """With OPSGATE_API_TOKEN unset every /threads request without a personal token is 401 and says why."""
    async with httpx.AsyncClient(base_url=servers["no_token"].url, timeout=10) as client:
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": "Bearer"}):
            response = await client.request(method, path, json=BODY if method == "POST" else None, headers=headers)
            assert response.status_code == 401, response.text
            assert "OPSGATE_API_TOKEN" in response.json()["detail"]


async def test_start_up_log_says_the_api_is_disabled(servers: dict[str, OpsgateProcess]) -> None:
    """The server without a token logs a warning naming OPSGATE_API_TOKEN; the other does not."""
    record = await servers["no_token"].wait_for_log(
        lambda r: "OPSGATE_API_TOKEN" in str(r.get("message")), event="startup_warning")
    assert record["level"] == "warning"
    assert not any("OPSGATE_API_TOKEN" in str(r.get("message")) for r in servers["token"].log_records())


@pytest.mark.parametrize("server", ["token", "no_token"])
async def test_health_and_openapi_need_no_token(servers: dict[str, OpsgateProcess], server: str) -> None:
    """/healthz and /openapi.json answer without credentials; the schema documents the thread routes."""
    async with httpx.AsyncClient(base_url=servers[server].url, timeout=10) as client:
        health = await client.get("/healthz")
        schema = await client.get("/openapi.json")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert "worker" in health.json()["loops"]
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/threads", "/threads/{thread_id}", "/threads/{thread_id}/responses"} <= set(paths)
    assert "post" in paths["/threads/{thread_id}/responses"]


# --- malformed requests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "content_type"), [
    (b'{"message": ', "application/json"),
    (b"", "application/json"),
    (b"\xff\xfe\x00garbage", "application/json"),
    (b"[]", "application/json"),
    (b"null", "application/json"),
    (b'"deploy api"', "application/json"),
    (b'{"message": "deploy api"}', "text/plain"),
    (b"message=deploy+api", "application/x-www-form-urlencoded"),
])
async def test_unreadable_bodies_are_422(api: ApiClient, content: bytes, content_type: str) -> None:
    """Broken JSON, non-objects and non-JSON content types are refused with 422."""
    response = await api.http.post("/threads", content=content, headers={"Content-Type": content_type})
    refused(response)


@pytest.mark.parametrize(("body", "field"), [
    ({"message": 123}, "message"),
    ({"message": ["deploy"]}, "message"),
    ({"message": "x", "agent": 5}, "agent"),
    ({"message": "x", "user": {"id": 1}}, "user"),
    ({"message": "x", "priority": "high"}, "priority"),
    ({"message": ""}, "message"),
    ({}, "message"),
    ({"message": "x", "user": "u" * 300}, "user"),
])
async def test_invalid_start_requests_are_422_naming_the_field(
    api: ApiClient, body: dict[str, Any], field: str
) -> None:
    """Wrong types, unknown fields or empty messages get 422 with the field named (too long: 413, elsewhere)."""
    detail = refused(await api.http.post("/threads", json=body))
    assert field in [p["field"] for p in detail["problems"]], detail


async def test_blank_message_is_refused(api: ApiClient) -> None:
    """A message of only whitespace is as empty as an empty one."""
    refused(await api.http.post("/threads", json={"message": "  \n\t "}))


async def test_unknown_agent_is_422_listing_the_known_agents(api: ApiClient) -> None:
    """An agent name that is not registered is refused, naming the registered ones; nothing is created."""
    before = len((await api.http.get("/threads")).json())
    detail = refused(await api.http.post("/threads", json={"message": "deploy", "agent": "nope"}))
    assert "nope" in detail["detail"] and "deploy" in detail["detail"]
    assert len((await api.http.get("/threads")).json()) == before


@pytest.mark.parametrize("body", [
    {"type": "vote", "approved": True},
    {"approval_id": "x", "approved": True},
    {"type": "approval", "approved": True},
    {"type": "approval", "approval_id": "x"},
    {"type": "approval", "approval_id": "x", "approved": "maybe"},
    {"type": "approval", "approval_id": "x", "approved": True, "arguments": ["1.2.4"]},
    {"type": "approval", "approval_id": "x", "approved": True, "comment": 7},
    {"type": "approval", "approval_id": "x", "approved": True, "sudo": True},
    {"type": "message", "text": ""},
    {"type": "message", "text": " \n\t "},
    {"type": "message"},
    {"type": "message", "text": "hi", "approved": True},
])
async def test_invalid_responses_are_422_and_change_nothing(api: ApiClient, body: dict[str, Any]) -> None:
    """Unknown response types and malformed approvals or messages are 422; the approval stays pending."""
    thread = await waiting_thread(api)
    refused(await api.respond(thread["id"], body))
    after = await api.thread(thread["id"])
    assert after["status"] == "waiting_for_approval"
    assert after["pending"] == thread["pending"]
    assert len(after["events"]) == len(thread["events"])


async def test_unknown_thread_is_404(api: ApiClient) -> None:
    """Reading or answering a thread that does not exist is 404."""
    for thread_id in ("0" * 32, "no-such-thread", "x" * 2000):
        refused(await api.http.get(f"/threads/{thread_id}"), 404)
        refused(await api.respond(thread_id, {"type": "message", "text": "hello"}), 404)
        refused(await api.respond(thread_id, {"type": "approval", "approval_id": "a", "approved": True,
                                              "user": APPROVER}), 404)


# --- responses the thread is not waiting for -----------------------------------------------------------


async def test_message_to_a_thread_waiting_for_approval_is_409(api: ApiClient) -> None:
    """While an approval is pending, a message is refused with 409 naming what it waits for."""
    thread = await waiting_thread(api)
    detail = refused(await api.respond(thread["id"], {"type": "message", "text": "hurry up"}), 409)
    assert "approval" in detail["detail"] and "deploy" in detail["detail"]
    assert len((await api.thread(thread["id"]))["events"]) == len(thread["events"])


async def test_approval_on_a_thread_that_is_not_waiting_is_409(api: ApiClient) -> None:
    """Approving a finished thread, or an approval id the thread never asked for, is 409."""
    done = await done_thread(api)
    body = {"type": "approval", "approval_id": "0" * 32, "approved": True, "user": APPROVER}
    refused(await api.respond(done["id"], body), 409)
    waiting = await waiting_thread(api)
    refused(await api.respond(waiting["id"], body), 409)
    assert (await api.thread(waiting["id"]))["status"] == "waiting_for_approval"


async def test_decided_approval_cannot_be_decided_again(api: ApiClient) -> None:
    """After a rejection the same approval id is 409 and names the decider."""
    thread = await waiting_thread(api)
    assert (await api.reject(thread, APPROVER, "not now")).status_code == 202
    detail = refused(await api.approve(thread, APPROVER), 409)
    assert f"rejected by {APPROVER}" in detail["detail"]


async def test_simultaneous_decisions_have_one_winner_and_one_execution(api: ApiClient) -> None:
    """Six decisions at once from three approvers: one 202, five 409 naming the winner; the deploy runs once."""
    thread = await waiting_thread(api)
    pending = thread["pending"]
    bodies = [{"type": "approval", "approval_id": pending["approval_id"], "approved": True, "user": user}
              for user in [APPROVER, *OTHER_APPROVERS] * 2]
    responses = await asyncio.gather(*(api.respond(thread["id"], body) for body in bodies))
    assert sorted(r.status_code for r in responses) == [202, 409, 409, 409, 409, 409], [r.text for r in responses]
    done = await api.wait(thread["id"], "done")
    [decision] = [e for e in done["events"] if e["type"] == "approval_decided"]
    for response in responses:
        if response.status_code == 409:
            assert f"approved by {decision['by']}" in response.json()["detail"]
    assert [e["type"] for e in done["events"]].count("execution_started") == 1
    assert [e["type"] for e in done["events"]].count("action_result") == 1


# --- listing --------------------------------------------------------------------------------------------


async def test_listing_filters_by_status(api: ApiClient) -> None:
    """GET /threads?status= returns only threads with that status; without it, all of them."""
    waiting = await waiting_thread(api)
    done = await done_thread(api)
    listed = {s: [t["id"] for t in (await api.http.get("/threads", params={"status": s})).json()]
              for s in ("waiting_for_approval", "done", "failed")}
    assert waiting["id"] in listed["waiting_for_approval"] and waiting["id"] not in listed["done"]
    assert done["id"] in listed["done"] and done["id"] not in listed["waiting_for_approval"]
    everything = (await api.http.get("/threads", params={"limit": 1000})).json()
    assert {waiting["id"], done["id"]} <= {t["id"] for t in everything}
    for status in ("waiting_for_approval", "done"):
        rows = (await api.http.get("/threads", params={"status": status})).json()
        assert {t["status"] for t in rows} == {status}
    row = next(t for t in everything if t["id"] == waiting["id"])
    assert (row["title"], row["requester"], row["agent"]) == (PRODUCTION, "bob@example.com", "deploy")


@pytest.mark.parametrize("params", [{"status": "bogus"}, {"status": ""}, {"limit": "0"}, {"limit": "abc"},
                                    {"limit": "100000"}, {"offset": "-1"}])
async def test_bad_list_parameters_are_422(api: ApiClient, params: dict[str, str]) -> None:
    """An unknown status or an out-of-range page is 422."""
    detail = refused(await api.http.get("/threads", params=params))
    assert json.dumps(detail)  # a JSON explanation, not an HTML error page
