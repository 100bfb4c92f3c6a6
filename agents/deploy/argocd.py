"""Deploying through Argo CD: set the image tag (Kustomize) or a Helm parameter, sync, wait until healthy.

Argo CD is declarative: setting the version is idempotent by itself, and re-syncing the same desired state
changes nothing. The key is still carried so a restart does not start a second sync while the first is known:
the application is annotated with it and the sync operation carries it in its ``info``; a resumed execution
whose key is on the current operation only waits for that operation.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from agents.deploy.actions import Deploy, Rollback
from agents.deploy.remote import Ambiguous, Refused, read, send
from agents.deploy.settings import DeploySettings
from bot.agent import ToolContext
from bot.errors import ExecutionFailed

SYSTEM = "Argo CD"
KEY_ANNOTATION = "opsgate.io/idempotency-key"
KEY_INFO = "opsgate-idempotency-key"
_DONE = frozenset({"Succeeded", "Failed", "Error"})


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Info(_Loose):
    name: str
    value: str


class Operation(_Loose):
    info: list[Info] = Field(default_factory=list)


class OperationState(_Loose):
    operation: Operation = Field(default_factory=Operation)
    phase: str = ""
    message: str = ""


class Health(_Loose):
    status: str = "Unknown"
    message: str = ""


class SyncStatus(_Loose):
    status: str = "Unknown"
    revision: str = ""


class AppStatus(_Loose):
    health: Health = Field(default_factory=Health)
    sync: SyncStatus = Field(default_factory=SyncStatus)
    operation_state: OperationState | None = Field(None, alias="operationState")


class AppSpec(_Loose):
    source: dict[str, Any] | None = None


class Metadata(_Loose):
    name: str
    annotations: dict[str, str] = Field(default_factory=dict)


class Application(_Loose):
    """The parts of an Argo CD Application we read."""

    metadata: Metadata
    spec: AppSpec = Field(default_factory=AppSpec)
    status: AppStatus = AppStatus(operationState=None)
    operation: Operation | None = None  # requested, not yet taken up by the controller

    def operation_key(self) -> str | None:
        """The key on the pending operation, else on the controller's current or last one."""
        state = self.status.operation_state
        operation = self.operation or (state.operation if state else None)
        return next((i.value for i in operation.info if i.name == KEY_INFO), None) if operation else None


def _image_name(entry: str) -> str:
    """``name`` of a Kustomize images entry (``name=new:tag``, ``name:tag`` or ``name@digest``)."""
    name = entry.split("=", 1)[0].split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def version_patch(app: Application, config: DeploySettings, action: Deploy | Rollback, version: str,
                  key: str) -> dict[str, Any]:
    """A JSON merge patch setting the version (lists are replaced whole, so they are sent whole) and the key."""
    source = app.spec.source or {}
    patch: dict[str, Any] = {"metadata": {"annotations": {KEY_ANNOTATION: key}}}
    if config.argocd_helm_parameter:
        name = config.argocd_helm_parameter
        parameters = [p for p in (source.get("helm") or {}).get("parameters") or [] if p.get("name") != name]
        parameters.append({"name": name, "value": version})
        patch["spec"] = {"source": {"helm": {"parameters": parameters}}}
    else:
        assert config.argocd_image
        image = config.argocd_image.format(service=action.service, environment=action.environment)
        images = [i for i in (source.get("kustomize") or {}).get("images") or [] if _image_name(i) != image]
        images.append(f"{image}:{version}")
        patch["spec"] = {"source": {"kustomize": {"images": images}}}
    return patch


class ArgoCD:
    """One application on one Argo CD server, through its REST API."""

    def __init__(self, config: DeploySettings, http: httpx.AsyncClient, name: str) -> None:
        assert config.argocd_url and config.argocd_token
        base = str(config.argocd_url).rstrip("/")
        namespace = config.argocd_app_namespace
        self.config, self.http, self.name = config, http, name
        self.url = f"{base}/api/v1/applications/{name}"
        self.params = {"appNamespace": namespace} if namespace else None
        self.body_base = {"name": name, **({"appNamespace": namespace} if namespace else {})}
        self.ui_url = f"{base}/applications/{namespace + '/' if namespace else ''}{name}"
        self.headers = {"Authorization": f"Bearer {config.argocd_token.get_secret_value()}"}

    async def get(self) -> Application:
        return Application.model_validate(await read(self.http, SYSTEM, self.url, headers=self.headers,
                                                     params=self.params))

    async def patch(self, patch: dict[str, Any]) -> None:
        body = {**self.body_base, "patchType": "merge", "patch": json.dumps(patch)}
        try:
            await send(self.http, SYSTEM, "PATCH", self.url, headers=self.headers, body=body)
        except Ambiguous:  # setting a value is idempotent: send it once more
            await send(self.http, SYSTEM, "PATCH", self.url, headers=self.headers, body=body)

    async def sync(self, ctx: ToolContext) -> None:
        """Start a sync carrying the key; wait while another operation is running, up to the start timeout."""
        body = {**self.body_base, "prune": False, "infos": [
            {"name": KEY_INFO, "value": ctx.idempotency_key}, {"name": "opsgate-thread", "value": ctx.thread_id}]}
        deadline = time.monotonic() + self.config.start_timeout
        while True:
            try:
                await send(self.http, SYSTEM, "POST", f"{self.url}/sync", headers=self.headers, body=body)
                return
            except Refused as exc:
                if "already in progress" not in exc.detail or time.monotonic() >= deadline:
                    raise
            except Ambiguous:
                if (await self.get()).operation_key() == ctx.idempotency_key:
                    return  # it did arrive
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(self.config.poll_interval)

    async def wait(self, key: str) -> Application:
        """Until our operation has finished and the application is healthy (or it fails, or time runs out)."""
        started_by = time.monotonic() + self.config.start_timeout
        deadline = time.monotonic() + self.config.timeout
        while True:
            app = await self.get()
            state = app.status.operation_state
            # only the controller's operation state tells how it went; a pending request has no phase yet
            ours = state is not None and any(i.name == KEY_INFO and i.value == key for i in state.operation.info)
            if ours and state and state.phase in ("Failed", "Error"):
                raise ExecutionFailed(f"Argo CD sync of {self.name} {state.phase.lower()}: {state.message} "
                                      f"({self.ui_url})")
            if ours and state and state.phase == "Succeeded":
                if app.status.health.status == "Healthy" and app.status.sync.status == "Synced":
                    return app
                if app.status.health.status == "Degraded":
                    raise ExecutionFailed(f"Argo CD synced {self.name} but it is Degraded: "
                                          f"{app.status.health.message or 'see Argo CD'} ({self.ui_url})")
            now = time.monotonic()
            if not ours and now >= started_by:
                raise ExecutionFailed(f"Argo CD accepted the sync of {self.name} but it never started within "
                                      f"{self.config.start_timeout:g} s (is the application controller running?)")
            if now >= deadline:
                where = f"sync {state.phase}" if ours and state and state.phase not in _DONE else \
                    f"health {app.status.health.status}"
                raise ExecutionFailed(f"Argo CD application {self.name} not healthy after {self.config.timeout:g} s "
                                      f"({where}); follow it at {self.ui_url}")
            await asyncio.sleep(self.config.poll_interval)


async def sync_version(action: Deploy | Rollback, version: str, ctx: ToolContext, config: DeploySettings) -> str:
    """Set the version, sync once for this key and wait for health; the result names revision and health."""
    argo = ArgoCD(config, ctx.http, config.app_name(action.service, action.environment))
    app = await argo.get()
    if app.spec.source is None:
        raise ExecutionFailed(f"Argo CD application {argo.name} has no single spec.source (multi-source "
                              "applications are not supported)")
    if app.operation_key() != ctx.idempotency_key:  # not already done or under way for this key
        await argo.patch(version_patch(app, config, action, version, ctx.idempotency_key))
        await argo.sync(ctx)
    done = await argo.wait(ctx.idempotency_key)
    revision = done.status.sync.revision[:12] or "?"
    return f"Argo CD synced {argo.name} to {version} (revision {revision}), Healthy: {argo.ui_url}"
