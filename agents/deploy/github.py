"""Deploying through GitHub Actions: ``workflow_dispatch`` with the action's inputs, then following the run.

The workflow must name its runs after the key (``run-name: … ${{ inputs.idempotency_key }}``). That is what keeps
a deploy single after a crash: before dispatching, the workflow's recent dispatch runs are searched for the key;
a resumed execution (its intent recorded before a restart) that finds none waits the start timeout for one to
appear and then refuses to dispatch again, and a dispatch whose answer was lost is never repeated.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from agents.deploy.actions import Deploy, Rollback
from agents.deploy.remote import Ambiguous, read, send
from agents.deploy.settings import DeploySettings
from bot.agent import ToolContext
from bot.errors import ExecutionFailed

SYSTEM = "GitHub"
_NOT_STARTED = frozenset({"queued", "requested", "pending"})


class WorkflowRun(BaseModel):
    """The fields of a workflow run we use."""

    model_config = ConfigDict(extra="ignore")

    id: int
    display_title: str = ""
    status: str | None = None
    conclusion: str | None = None
    html_url: str = ""


class WorkflowRuns(BaseModel):
    model_config = ConfigDict(extra="ignore")

    workflow_runs: list[WorkflowRun]


class GitHubActions:
    """One workflow of one repository, through the REST API."""

    def __init__(self, config: DeploySettings, http: httpx.AsyncClient) -> None:
        assert config.github_repo and config.github_token
        self.config = config
        self.http = http
        self.repo_url = f"{str(config.github_api_url).rstrip('/')}/repos/{config.github_repo}"
        self.workflow_url = f"{self.repo_url}/actions/workflows/{config.github_workflow}"
        self.headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {config.github_token.get_secret_value()}",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    async def find(self, key: str) -> WorkflowRun | None:
        """The run named with ``key`` among the workflow's 100 most recent dispatch runs."""
        data = await read(self.http, SYSTEM, f"{self.workflow_url}/runs", headers=self.headers,
                          params={"event": "workflow_dispatch", "per_page": 100})
        runs = WorkflowRuns.model_validate(data).workflow_runs
        return next((run for run in runs if key in run.display_title), None)

    async def wait_for(self, key: str) -> WorkflowRun | None:
        """Look for the run until it appears or the start timeout passes."""
        deadline = time.monotonic() + self.config.start_timeout
        while True:
            run = await self.find(key)
            if run is not None or time.monotonic() >= deadline:
                return run
            await asyncio.sleep(min(self.config.poll_interval, max(deadline - time.monotonic(), 0.01)))

    async def dispatch(self, inputs: dict[str, str]) -> int | None:
        """Create the dispatch event; the run's id when GitHub returns it (``return_run_details``)."""
        response = await send(self.http, SYSTEM, "POST", f"{self.workflow_url}/dispatches", headers=self.headers,
                              body={"ref": self.config.github_ref, "inputs": inputs, "return_run_details": True})
        if response.status_code == 200:
            details: Any = response.json()
            if isinstance(details, dict) and isinstance(details.get("workflow_run_id"), int):
                return int(details["workflow_run_id"])
        return None  # 204 No Content: an older server; the run is found by its name

    async def get(self, run_id: int) -> WorkflowRun:
        return WorkflowRun.model_validate(
            await read(self.http, SYSTEM, f"{self.repo_url}/actions/runs/{run_id}", headers=self.headers))

    async def cancel(self, run: WorkflowRun) -> None:
        """Ask GitHub to cancel a run that never started, so it cannot deploy later behind our back."""
        try:
            await send(self.http, SYSTEM, "POST", f"{self.repo_url}/actions/runs/{run.id}/cancel",
                       headers=self.headers, body={})
        except (Ambiguous, ExecutionFailed):
            pass  # reported by the caller either way: the run did not start in time

    async def follow(self, run: WorkflowRun) -> WorkflowRun:
        """Poll until the run completes; cancel it if no runner started it within the start timeout."""
        started_by = time.monotonic() + self.config.start_timeout
        deadline = time.monotonic() + self.config.timeout
        while run.status != "completed":
            now = time.monotonic()
            if run.status in _NOT_STARTED and now >= started_by:
                await self.cancel(run)
                raise ExecutionFailed(
                    f"GitHub Actions run {run.html_url} was still {run.status} after "
                    f"{self.config.start_timeout:g} s (no runner took it?); asked GitHub to cancel it")
            if now >= deadline:
                raise ExecutionFailed(
                    f"GitHub Actions run {run.html_url} is still {run.status} after {self.config.timeout:g} s; "
                    "it was not cancelled: follow it there")
            await asyncio.sleep(self.config.poll_interval)
            run = await self.get(run.id)
        return run


def workflow_inputs(action: Deploy | Rollback, version: str | None, ctx: ToolContext) -> dict[str, str]:
    """The workflow's inputs (all strings, as workflow_dispatch wants them)."""
    return {
        "action": action.name, "service": action.service, "environment": action.environment,
        "version": version or "", "idempotency_key": ctx.idempotency_key, "approved_by": ctx.approved_by or "",
    }


async def run_workflow(action: Deploy | Rollback, version: str | None, ctx: ToolContext,
                       config: DeploySettings) -> str:
    """Dispatch the workflow once for this key (or find the run an earlier attempt started) and follow it."""
    github = GitHubActions(config, ctx.http)
    key = ctx.idempotency_key
    run = await github.find(key)
    if run is None and ctx.resumed:
        run = await github.wait_for(key)
        if run is None:
            raise ExecutionFailed(
                f"this {action.name} was interrupted by a restart and may already have been dispatched, but no run "
                f"named with {key} appeared within {config.start_timeout:g} s; not dispatching again so it cannot "
                "run twice. Check the workflow's runs on GitHub and ask again if nothing ran.")
    if run is None:
        try:
            run_id = await github.dispatch(workflow_inputs(action, version, ctx))
        except Ambiguous as exc:  # it may have been accepted: look for it instead of sending it again
            run = await github.wait_for(key)
            if run is None:
                raise ExecutionFailed(
                    f"the dispatch got no clear answer ({exc}) and no run named with {key} appeared within "
                    f"{config.start_timeout:g} s; not retried so it cannot run twice") from None
        else:
            run = await github.get(run_id) if run_id is not None else await github.wait_for(key)
            if run is None:
                raise ExecutionFailed(
                    f"dispatched {config.github_workflow}, but no run named with {key} appeared within "
                    f"{config.start_timeout:g} s: the run never started (does the workflow's run-name include "
                    "${{ inputs.idempotency_key }}?)")
    run = await github.follow(run)
    if run.conclusion != "success":
        raise ExecutionFailed(f"GitHub Actions run {run.html_url} finished: {run.conclusion or 'no conclusion'}")
    return f"GitHub Actions run succeeded: {run.html_url}"
