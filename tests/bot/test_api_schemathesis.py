"""Schemathesis against the OpenAPI schema of a real `opsgate serve` on SQLite and PostgreSQL: never a 5xx.

The `st` command line generates requests for every operation from /openapi.json (examples, schema coverage,
fuzzing of valid and invalid data, and stateful sequences that follow the API's links: start a thread, then read
and answer it), authenticated with the API token. It checks that nothing is a server error and that every status
code, body and content type is one the schema documents. The run is bounded (a fixed number of examples per
operation and a fixed seed, so a failure reproduces); run `st run` by hand with a larger ``-n`` to search wider.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from storage import upgrade
from tests.support.api_client import TOKEN
from tests.support.processes import OpsgateProcess

EXAMPLES = 60
# No server errors, and every answer is one the schema documents, with the documented body and content type.
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"
SEED = 20261130


async def test_no_request_generated_from_the_schema_gets_a_5xx(database_url: str, tmp_workdir: Path) -> None:
    """Every generated request (valid, invalid and stateful) gets a documented answer, never a server error."""
    if database_url.startswith("postgresql"):
        await upgrade(database_url)
    env = {"DATABASE_URL": database_url, "OPSGATE_API_TOKEN": TOKEN, "OPSGATE_APPROVERS": "alice@example.com",
           "OPSGATE_POLL_INTERVAL": "0.05"}
    async with OpsgateProcess(env, cwd=tmp_workdir) as server:
        st = Path(sys.executable).parent / "st"
        process = await asyncio.create_subprocess_exec(
            str(st), "run", f"{server.url}/openapi.json", "--header", f"Authorization: Bearer {TOKEN}",
            "--checks", CHECKS, "--max-examples", str(EXAMPLES), "--seed", str(SEED),
            "--workers", "1", "--request-timeout", "30", "--no-color",
            cwd=tmp_workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 300)
        text = output.decode(errors="replace")
        assert process.returncode == 0, text[-6000:] + "\n--- server log ---\n" + server.log_tail(60)
        assert "No issues found" in text, text[-3000:]
        assert not [r for r in server.log_records() if r.get("event") == "request_failed"]
