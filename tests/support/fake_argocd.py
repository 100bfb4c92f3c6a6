"""FakeArgoCD: the part of the Argo CD REST API a deploy uses, as a real HTTP server.

Built from the documented ApplicationService endpoints: GET and PATCH (``patchType`` merge, the patch as a JSON
string) ``/api/v1/applications/{name}``, and POST ``/api/v1/applications/{name}/sync`` (``infos`` are kept on the
operation). A simulated controller moves the operation Running -> Succeeded/Failed and the health Progressing ->
Healthy/Degraded as the application is read. Knobs script a busy application, a controller that never starts
the operation, a 5xx after accepting a sync, bad tokens.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.servers import BackgroundServer


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def application(name: str, *, helm: list[dict[str, str]] | None = None, images: list[str] | None = None,
                namespace: str = "argocd") -> dict[str, Any]:
    """A synced, healthy single-source Application."""
    source: dict[str, Any] = {"repoURL": "https://git.example.com/acme/deploy.git", "path": name,
                              "targetRevision": "HEAD"}
    if helm is not None:
        source["helm"] = {"parameters": helm}
    if images is not None:
        source["kustomize"] = {"images": images}
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"project": "default", "source": source,
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": name}},
            "status": {"sync": {"status": "Synced", "revision": "0" * 40}, "health": {"status": "Healthy"}}}


@dataclass
class _Progress:
    operation: dict[str, Any]
    reads: int = 0


@dataclass
class FakeArgoCD:
    """Applications by name; start it with ``with FakeArgoCD(apps) as argo:``."""

    apps: dict[str, dict[str, Any]]
    token: str = "argo-token"
    start_after: int | None = 1   # reads after a sync before the controller shows the operation; None: never
    finish_after: int = 1         # further reads until the operation is done
    healthy_after: int = 1        # further reads while Progressing before the final health
    phase: str = "Succeeded"      # or Failed / Error
    health: str = "Healthy"       # or Degraded
    busy_syncs: int = 0           # the first N syncs are refused: another operation is in progress
    sync_error: int | None = None  # answer the sync with this status AFTER accepting it
    patches: list[dict[str, Any]] = field(default_factory=list)
    syncs: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._progress: dict[str, _Progress] = {}
        base = "/api/v1/applications/{name}"
        self._server = BackgroundServer(Starlette(routes=[
            Route(base, self._get, methods=["GET"]),
            Route(base, self._patch, methods=["PATCH"]),
            Route(base + "/sync", self._sync, methods=["POST"]),
        ]), name="fake-argocd")

    @property
    def url(self) -> str:
        """The server's base URL (OPSGATE_DEPLOY_ARGOCD_URL)."""
        return self._server.url

    def __enter__(self) -> FakeArgoCD:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop()

    def _find(self, request: Request) -> tuple[dict[str, Any] | None, JSONResponse | None]:
        self.requests.append(f"{request.method} {request.url.path}")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return None, JSONResponse({"error": "invalid session: token is malformed", "code": 16,
                                       "message": "invalid session: token is malformed"}, status_code=401)
        app = self.apps.get(request.path_params["name"])
        if app is None:
            message = f'applications.argoproj.io "{request.path_params["name"]}" not found'
            return None, JSONResponse({"error": message, "code": 5, "message": message}, status_code=404)
        return app, None

    async def _get(self, request: Request) -> JSONResponse:
        app, refused = self._find(request)
        if app is None:
            assert refused is not None
            return refused
        with self._lock:
            self._advance(app)
            return JSONResponse(copy.deepcopy(app))

    def _advance(self, app: dict[str, Any]) -> None:
        """The controller's work, one step per read."""
        progress = self._progress.get(app["metadata"]["name"])
        if progress is None or self.start_after is None:
            return
        progress.reads += 1
        status = app["status"]
        done = self.start_after + self.finish_after
        if progress.reads >= self.start_after:
            phase = "Running" if progress.reads < done else self.phase
            status["operationState"] = {"operation": progress.operation, "phase": phase,
                                        "message": "successfully synced (all tasks run)" if phase == "Succeeded"
                                        else "one or more objects failed to apply" if phase != "Running" else ""}
            app.pop("operation", None)
        if progress.reads == done and self.phase == "Succeeded":
            status["sync"] = {"status": "Synced", "revision": "ab12cd34ef56" + "0" * 28}
            status["health"] = {"status": "Progressing"}
        if progress.reads >= done + self.healthy_after and self.phase == "Succeeded":
            status["health"] = {"status": self.health,
                                **({"message": "Deployment exceeded its progress deadline"}
                                   if self.health == "Degraded" else {})}

    async def _patch(self, request: Request) -> JSONResponse:
        app, refused = self._find(request)
        if app is None:
            assert refused is not None
            return refused
        body = await request.json()
        self.patches.append(body)
        if body.get("patchType") != "merge":
            return JSONResponse({"error": "unsupported patch type", "code": 3}, status_code=400)
        patched = merge_patch(app, json.loads(body["patch"]))
        with self._lock:
            app.clear()
            app.update(patched)
            app["status"]["sync"]["status"] = "OutOfSync"
        return JSONResponse(copy.deepcopy(app))

    async def _sync(self, request: Request) -> JSONResponse:
        app, refused = self._find(request)
        if app is None:
            assert refused is not None
            return refused
        body = await request.json()
        self.syncs.append(body)
        with self._lock:
            if len(self.syncs) <= self.busy_syncs:
                message = "another operation is already in progress"
                return JSONResponse({"error": message, "code": 9, "message": message}, status_code=400)
            operation = {"sync": {"prune": bool(body.get("prune"))}, "info": body.get("infos") or [],
                         "initiatedBy": {"username": "opsgate"}}
            app["operation"] = operation
            self._progress[app["metadata"]["name"]] = _Progress(operation)
        if self.sync_error is not None:
            return JSONResponse({"error": "upstream connect error", "code": 14}, status_code=self.sync_error)
        return JSONResponse(copy.deepcopy(app))
