"""FakeGitHub: the part of the GitHub REST API a workflow_dispatch deploy uses, as a real HTTP server.

Built from the documented endpoints: create a workflow dispatch event (``return_run_details`` answers 200 with
the run's id, otherwise 204), list a workflow's runs (newest first, ``display_title`` is the evaluated
``run-name``), get a run, cancel a run. Runs move queued -> in_progress -> completed as they are polled.
Knobs script failures: bad credentials, unexpected inputs, a 5xx after accepting, a run that appears late or
never, a run no runner ever picks up.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.servers import BackgroundServer

INPUTS = ("action", "service", "version", "environment", "idempotency_key", "approved_by")
RUN_NAME = "{action} {service} {version} to {environment} [{idempotency_key}]"


@dataclass
class FakeRun:
    """One workflow run and how often it has been polled."""

    id: int
    inputs: dict[str, str]
    ref: str
    display_title: str
    status: str = "queued"
    conclusion: str | None = None
    polls: int = 0
    listed_after: int | None = 0  # list calls before it shows up; None: never

    def as_json(self, base: str, repo: str) -> dict[str, Any]:
        return {"id": self.id, "name": "Deploy", "display_title": self.display_title, "event": "workflow_dispatch",
                "status": self.status, "conclusion": self.conclusion, "head_branch": self.ref,
                "html_url": f"{base}/{repo}/actions/runs/{self.id}",
                "url": f"{base}/repos/{repo}/actions/runs/{self.id}"}


@dataclass
class FakeGitHub:
    """One repository with one workflow_dispatch workflow; start it with ``with FakeGitHub() as github:``."""

    token: str = "ghp_test"
    repo: str = "acme/deploys"
    workflow: str = "deploy.yml"
    refs: tuple[str, ...] = ("main",)
    run_name: str = RUN_NAME
    conclusion: str = "success"
    polls_to_finish: int = 2          # GETs of a run before it completes (the first makes it in_progress)
    return_run_details: bool = True   # False: 204 like servers before run details existed
    appear_after: int | None = 0      # list calls before a dispatched run is listed; None: never
    never_starts: bool = False        # runs stay queued (no runner) until cancelled
    dispatch_error: int | None = None  # answer the dispatch with this status AFTER creating the run
    runs: list[FakeRun] = field(default_factory=list)
    dispatches: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(9000)
        self._lock = threading.Lock()
        prefix = f"/repos/{self.repo}/actions"
        self._server = BackgroundServer(Starlette(routes=[
            Route(f"{prefix}/workflows/{{workflow}}/dispatches", self._dispatch, methods=["POST"]),
            Route(f"{prefix}/workflows/{{workflow}}/runs", self._list, methods=["GET"]),
            Route(f"{prefix}/runs/{{run_id:int}}", self._get, methods=["GET"]),
            Route(f"{prefix}/runs/{{run_id:int}}/cancel", self._cancel, methods=["POST"]),
        ]), name="fake-github")

    @property
    def url(self) -> str:
        """The API base URL (OPSGATE_DEPLOY_GITHUB_API_URL)."""
        return self._server.url

    def add_run(self, inputs: dict[str, str], *, status: str = "completed", conclusion: str | None = "success",
                ) -> FakeRun:
        """A run that already exists (e.g. dispatched before a crash)."""
        run = FakeRun(next(self._ids), inputs, self.refs[0], self.run_name.format(**inputs), status, conclusion)
        self.runs.append(run)
        return run

    def __enter__(self) -> FakeGitHub:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop()

    def _refuse(self, request: Request) -> JSONResponse | None:
        self.requests.append(f"{request.method} {request.url.path}")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"message": "Bad credentials", "status": "401"}, status_code=401)
        if "workflow" in request.path_params and request.path_params["workflow"] != self.workflow:
            return JSONResponse({"message": "Not Found", "status": "404"}, status_code=404)
        return None

    async def _dispatch(self, request: Request) -> Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        body = await request.json()
        self.dispatches.append(body)
        if body.get("ref") not in self.refs:
            return JSONResponse({"message": f"No ref found for: {body.get('ref')}"}, status_code=422)
        inputs = body.get("inputs") or {}
        unexpected = sorted(set(inputs) - set(INPUTS))
        if unexpected or not all(isinstance(v, str) for v in inputs.values()):
            return JSONResponse({"message": f"Unexpected inputs provided: {unexpected}"}, status_code=422)
        with self._lock:
            title = self.run_name.format(**{**{k: "" for k in INPUTS}, **inputs})
            run = FakeRun(next(self._ids), inputs, body["ref"], title)
            run.listed_after = self.appear_after
            self.runs.append(run)
        if self.dispatch_error is not None:
            return JSONResponse({"message": "Server Error"}, status_code=self.dispatch_error)
        if self.return_run_details and body.get("return_run_details"):
            run.listed_after = 0
            data = run.as_json(self.url, self.repo)
            return JSONResponse({"workflow_run_id": run.id, "run_url": data["url"], "html_url": data["html_url"]})
        return Response(status_code=204)

    async def _list(self, request: Request) -> Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        visible = []
        with self._lock:
            for run in self.runs:
                if run.listed_after is not None and run.listed_after <= 0:
                    visible.append(run)
                elif run.listed_after is not None:
                    run.listed_after -= 1
        runs = [run.as_json(self.url, self.repo) for run in reversed(visible)][: int(request.query_params.get(
            "per_page", "30"))]
        return JSONResponse({"total_count": len(runs), "workflow_runs": runs})

    async def _get(self, request: Request) -> Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        run = next((r for r in self.runs if r.id == request.path_params["run_id"]), None)
        if run is None:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        with self._lock:
            run.polls += 1
            if run.status != "completed" and not self.never_starts:
                run.status = "completed" if run.polls >= self.polls_to_finish else "in_progress"
                run.conclusion = self.conclusion if run.status == "completed" else None
        return JSONResponse(run.as_json(self.url, self.repo))

    async def _cancel(self, request: Request) -> Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        run = next((r for r in self.runs if r.id == request.path_params["run_id"]), None)
        if run is None:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        self.cancelled.append(run.id)
        run.status, run.conclusion = "completed", "cancelled"
        return JSONResponse({}, status_code=202)
