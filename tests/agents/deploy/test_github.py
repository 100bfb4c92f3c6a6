"""The GitHub Actions backend against a fake of its documented REST API: dispatch, follow, fail, never twice."""

from __future__ import annotations

import httpx
import pytest

from agents.deploy.actions import Deploy, Rollback
from agents.deploy.executor import deploy, rollback
from bot.agent import ToolContext
from bot.config import load_settings
from bot.errors import ExecutionFailed
from bot.events import ActionResult
from storage import SqlStore
from tests.agents.deploy.threads import stored_crashed_thread, tool_context
from tests.support.deploy_ledger import deploy_ledger
from tests.support.fake_github import FakeGitHub
from tests.support.threads import running, settled

PROD = Deploy(service="api", version="1.4.2", environment="production")
KEY = "t1:a1"


def github_context(github: FakeGitHub, ledger: SqlStore, http: httpx.AsyncClient, *, resumed: bool = False,
                   key: str = KEY, **env: str) -> ToolContext:
    settings = load_settings({
        "OPSGATE_DEPLOY_BACKEND": "github", "OPSGATE_DEPLOY_GITHUB_REPO": github.repo,
        "OPSGATE_DEPLOY_GITHUB_TOKEN": github.token, "OPSGATE_DEPLOY_GITHUB_API_URL": github.url,
        "OPSGATE_DEPLOY_POLL_INTERVAL": "0.02", "OPSGATE_DEPLOY_START_TIMEOUT": "0.5",
        "OPSGATE_DEPLOY_TIMEOUT": "5", **env,
    })
    return tool_context(settings, ledger, http, key=key, resumed=resumed)


def inputs(key: str = KEY, **changes: str) -> dict[str, str]:
    return {"action": "deploy", "service": "api", "environment": "production", "version": "1.4.2",
            "idempotency_key": key, "approved_by": "alice@example.com", **changes}


async def test_dispatches_once_with_the_inputs_and_follows_the_run_to_success(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """One workflow_dispatch on the ref with the action's inputs; the result names the run's URL; the ledger records."""
    with FakeGitHub() as github:
        reply = await deploy(PROD, github_context(github, ledger, http))
    [dispatch] = github.dispatches
    assert dispatch == {"ref": "main", "inputs": inputs(), "return_run_details": True}
    [run] = github.runs
    assert run.status == "completed" and run.polls >= 2
    assert f"{github.url}/{github.repo}/actions/runs/{run.id}" in reply
    assert reply.startswith("deployed api 1.4.2 to production.") and "succeeded" in reply
    assert [(e.idempotency_key, e.version) for e in await deploy_ledger(ledger)] == [(KEY, "1.4.2")]


@pytest.mark.parametrize("conclusion", ["failure", "cancelled", "timed_out"])
async def test_a_run_that_does_not_succeed_fails_with_its_conclusion_and_url(
    ledger: SqlStore, http: httpx.AsyncClient, conclusion: str
) -> None:
    """The conclusion and the run's URL are in the failure; nothing is recorded in the ledger."""
    with FakeGitHub(conclusion=conclusion) as github:
        with pytest.raises(ExecutionFailed, match=f"actions/runs/9000 finished: {conclusion}"):
            await deploy(PROD, github_context(github, ledger, http))
    assert await deploy_ledger(ledger) == []


async def test_a_server_without_run_details_is_followed_by_the_run_name(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """A 204 dispatch: the run is found by the key in its run-name once GitHub lists it."""
    with FakeGitHub(return_run_details=False, appear_after=3) as github:
        reply = await deploy(PROD, github_context(github, ledger, http))
    assert len(github.dispatches) == 1 and "succeeded" in reply
    assert github.requests.count(f"GET /repos/{github.repo}/actions/workflows/deploy.yml/runs") >= 4


async def test_a_run_that_never_appears_fails_after_the_start_timeout(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """Dispatched, but no run carrying the key is ever listed: a clear failure, dispatched exactly once."""
    with FakeGitHub(return_run_details=False, appear_after=None) as github:
        with pytest.raises(ExecutionFailed, match="the run never started .*run-name"):
            await deploy(PROD, github_context(github, ledger, http))
    assert len(github.dispatches) == 1
    assert await deploy_ledger(ledger) == []


async def test_a_run_no_runner_picks_up_is_cancelled(ledger: SqlStore, http: httpx.AsyncClient) -> None:
    """Still queued after the start timeout: opsgate cancels it (so it cannot deploy later) and fails."""
    with FakeGitHub(never_starts=True) as github:
        with pytest.raises(ExecutionFailed, match="still queued after 0.5 s .*cancel"):
            await deploy(PROD, github_context(github, ledger, http))
    assert github.cancelled == [github.runs[0].id]


async def test_a_run_still_going_at_the_timeout_is_left_running(ledger: SqlStore, http: httpx.AsyncClient) -> None:
    """In progress past OPSGATE_DEPLOY_TIMEOUT: a failure pointing at the run, which is not cancelled."""
    with FakeGitHub(polls_to_finish=10**6) as github:
        with pytest.raises(ExecutionFailed, match="still in_progress after 0.3 s; it was not cancelled"):
            await deploy(PROD, github_context(github, ledger, http, OPSGATE_DEPLOY_TIMEOUT="0.3"))
    assert github.cancelled == []


async def test_bad_credentials_fail_at_once_with_githubs_message(ledger: SqlStore, http: httpx.AsyncClient) -> None:
    """A 401 is final: GitHub's message in the failure, nothing dispatched."""
    with FakeGitHub() as github:
        with pytest.raises(ExecutionFailed, match="GitHub refused GET .*HTTP 401 Bad credentials"):
            await deploy(PROD, github_context(github, ledger, http, OPSGATE_DEPLOY_GITHUB_TOKEN="ghp_revoked"))
    assert github.dispatches == []


async def test_a_refused_dispatch_names_githubs_reason(ledger: SqlStore, http: httpx.AsyncClient) -> None:
    """An unknown ref is a 422 whose message reaches the thread."""
    with FakeGitHub() as github:
        with pytest.raises(ExecutionFailed, match="HTTP 422 No ref found for: release"):
            await deploy(PROD, github_context(github, ledger, http, OPSGATE_DEPLOY_GITHUB_REF="release"))
    assert github.runs == []


async def test_a_dispatch_without_a_clear_answer_is_not_sent_again(ledger: SqlStore, http: httpx.AsyncClient) -> None:
    """A 502 after GitHub created the run: opsgate finds the run by its key and follows it, one dispatch in all."""
    with FakeGitHub(dispatch_error=502) as github:
        reply = await deploy(PROD, github_context(github, ledger, http))
    assert len(github.dispatches) == 1 and len(github.runs) == 1
    assert "succeeded" in reply


async def test_an_existing_run_with_the_key_is_followed_instead_of_dispatching(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """After a crash the run an earlier attempt dispatched is found by its key: no second dispatch."""
    with FakeGitHub() as github:
        earlier = github.add_run(inputs())
        reply = await deploy(PROD, github_context(github, ledger, http, resumed=True))
    assert github.dispatches == []
    assert f"actions/runs/{earlier.id}" in reply


async def test_a_resumed_execution_waits_for_a_late_run_instead_of_dispatching(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """The earlier dispatch's run is listed only after a few polls: it is awaited and followed, not re-sent."""
    with FakeGitHub() as github:
        earlier = github.add_run(inputs(), status="queued", conclusion=None)
        earlier.listed_after = 3
        reply = await deploy(PROD, github_context(github, ledger, http, resumed=True))
    assert github.dispatches == [] and f"actions/runs/{earlier.id}" in reply


async def test_a_resumed_execution_without_a_run_refuses_to_dispatch_again(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """No run with the key after the start timeout: maybe it was sent, so it is not sent again; the reason says so."""
    with FakeGitHub() as github:
        github.add_run(inputs(key="other:run"))
        with pytest.raises(ExecutionFailed, match="interrupted by a restart .*not dispatching again"):
            await deploy(PROD, github_context(github, ledger, http, resumed=True))
    assert github.dispatches == []


async def test_rollback_dispatches_the_previous_version_from_the_ledger(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """Two deploys went through the workflow; a rollback dispatches action=rollback with the one before."""
    with FakeGitHub() as github:
        await deploy(Deploy(service="api", version="1.0.0", environment="production"),
                     github_context(github, ledger, http, key="t1:a1"))
        await deploy(Deploy(service="api", version="1.1.0", environment="production"),
                     github_context(github, ledger, http, key="t2:a2"))
        reply = await rollback(Rollback(service="api", environment="production"),
                               github_context(github, ledger, http, key="t3:rb"))
    assert github.dispatches[-1]["inputs"] == inputs(key="t3:rb", action="rollback", version="1.0.0")
    assert reply.startswith("rolled back api in production to 1.0.0.")
    assert (await deploy_ledger(ledger, "api"))[0].version == "1.0.0"


def github_env(github: FakeGitHub) -> dict[str, str]:
    return {"OPSGATE_DEPLOY_BACKEND": "github", "OPSGATE_DEPLOY_GITHUB_REPO": github.repo,
            "OPSGATE_DEPLOY_GITHUB_TOKEN": github.token, "OPSGATE_DEPLOY_GITHUB_API_URL": github.url,
            "OPSGATE_DEPLOY_POLL_INTERVAL": "0.02", "OPSGATE_DEPLOY_START_TIMEOUT": "0.5"}


@pytest.mark.parametrize("dispatched", [True, False])
async def test_after_a_crash_the_worker_never_dispatches_a_second_time(
    sqlite_database_url: str, dispatched: bool
) -> None:
    """The intent was recorded, then the process died. The restarted worker follows the run with the key if there
    is one; if there is none it refuses (it cannot know the dispatch did not happen). Never a second dispatch."""
    thread, intent = await stored_crashed_thread(sqlite_database_url)
    with FakeGitHub() as github:
        if dispatched:
            github.add_run(inputs(key=intent.idempotency_key))
        async with running(sqlite_database_url, **github_env(github)) as runtime:
            resumed = await settled(runtime, thread.id)
    [result] = [e for e in resumed.events if isinstance(e, ActionResult)]
    assert github.dispatches == []
    assert result.ok is dispatched
    assert ("succeeded" if dispatched else "not dispatching again") in result.result
