"""The incident agent's read-only diagnostics against a real HTTP Prometheus double and a real runbook folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from agents.incident.diagnostics import query_prometheus, runbook
from agents.incident.settings import IncidentSettings
from bot.errors import ExecutionFailed
from tests.support.servers import BackgroundServer

ANSWERS: dict[str, tuple[int, Any]] = {
    "up": (200, {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"job": "api"}, "values": [[1, "1"], [2, "0"]]}]}}),
    "bad(": (400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}),
    "nothing": (200, {"status": "success", "data": {"resultType": "vector", "result": []}}),
    "scalar(1)": (200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}}),
}


async def _query(request: Request) -> Any:
    query = request.query_params["query"]
    if query == "html":
        return PlainTextResponse("<html>proxy error</html>", status_code=502)
    status, body = ANSWERS[query]
    return JSONResponse(body, status_code=status)


@pytest.fixture
def prometheus_url() -> Iterator[str]:
    """A Prometheus double on a real socket."""
    server = BackgroundServer(Starlette(routes=[Route("/api/v1/query", _query)]), name="prometheus-double")
    server.start()
    yield server.url
    server.stop()


@pytest.mark.parametrize(("query", "expected"), [
    ("up", '{job="api"} 2 samples, last 0'),
    ("nothing", "no data (the query matched no series)"),
    ("scalar(1)", "scalar: 1"),
])
async def test_query_results_read_as_lines(prometheus_url: str, query: str, expected: str) -> None:
    """Matrix, empty vector and scalar answers each become plain lines."""
    config = IncidentSettings(OPSGATE_INCIDENT_PROMETHEUS_URL=prometheus_url)  # type: ignore[call-arg]
    async with httpx.AsyncClient() as http:
        assert await query_prometheus(http, config, query) == expected


@pytest.mark.parametrize(("query", "problem"), [
    ("bad(", "bad_data: parse error at char 5"), ("html", "HTTP 502 without JSON")])
async def test_prometheus_refusals_are_reported_in_its_words(prometheus_url: str, query: str, problem: str) -> None:
    """A refused query or a non-JSON answer is an ExecutionFailed saying why."""
    config = IncidentSettings(OPSGATE_INCIDENT_PROMETHEUS_URL=prometheus_url)  # type: ignore[call-arg]
    async with httpx.AsyncClient() as http:
        with pytest.raises(ExecutionFailed, match=problem.replace("(", r"\(")):
            await query_prometheus(http, config, query)


def test_runbooks_match_by_alert_name_and_stay_in_their_folder(tmp_path: Path) -> None:
    """HighErrorRate finds high_error_rate.md; names outside the folder or unknown find nothing."""
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "high_error_rate.md").write_text("roll back first")
    (tmp_path / "secret.md").write_text("not a runbook")
    config = IncidentSettings(OPSGATE_INCIDENT_RUNBOOKS=folder)  # type: ignore[call-arg]
    assert runbook(config, "HighErrorRate") == "roll back first"
    assert runbook(config, "secret") is None and runbook(config, "../secret") is None
