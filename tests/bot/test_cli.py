"""The `opsgate` command line as a subprocess: threads list/show, audit export, bad configuration, chat."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_settings
from bot.errors import NotAuthorized
from bot.events import Via
from bot.runtime import Loops
from bot.service import Service
from bot.wiring import build_runtime, prepare_database
from storage import SqlStore
from tests.support.api_client import run_cli
from tests.support.databases import sqlite_url
from tests.support.deploy_ledger import deploy_ledger
from tests.support.processes import REPO_ROOT

ALICE, BOB, MALLORY = "alice@example.com", "bob@example.com", "mallory@example.com"
SLACK = Via(channel="slack", conversation="C1")


@dataclass(frozen=True)
class History:
    """A database with a decided-and-executed deploy, a waiting one and a finished !help thread."""

    url: str
    executed: str
    waiting: str
    helped: str


async def settle(service: Service, thread_id: str, *statuses: str) -> None:
    deadline = time.monotonic() + 10
    while (await service.get_thread(thread_id)).status not in statuses:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def make_history(url: str) -> History:
    settings = load_settings({"DATABASE_URL": url, "OPSGATE_APPROVERS": f"{ALICE},carol@example.com",
                              "OPSGATE_POLL_INTERVAL": "0.05"})
    await prepare_database(settings)
    runtime = build_runtime(settings, channels=[])
    loops = Loops()
    loops.start(runtime.loops())
    service = runtime.service
    try:
        executed = await service.start_thread("!deploy service=api version=1.2.3 environment=production",
                                              user=BOB, via=SLACK)
        await settle(service, executed.id, "waiting_for_approval")
        pending = (await service.get_thread(executed.id)).pending
        assert pending is not None
        with pytest.raises(NotAuthorized):
            await service.decide(executed.id, pending.approval_id, approved=True, user=MALLORY, via=SLACK)
        await service.decide(executed.id, pending.approval_id, approved=True, user=ALICE, via=SLACK,
                             comment="ship the patch", arguments={"version": "1.2.4"})
        await settle(service, executed.id, "done")
        waiting = await service.start_thread("!deploy service=web version=2.0.0 environment=production",
                                             user=BOB, via=SLACK)
        helped = await service.start_thread("!help", user=BOB, via=SLACK)
        await settle(service, waiting.id, "waiting_for_approval")
        await settle(service, helped.id, "done")
    finally:
        await loops.stop()
        await runtime.aclose()
    return History(url, executed.id, waiting.id, helped.id)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """Built once per module in process; the CLI only reads it."""
    url = sqlite_url(tmp_path_factory.mktemp("cli") / "opsgate.db")
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(make_history(url))


def cli(history: History, *args: str) -> Any:
    return run_cli(*args, env={"DATABASE_URL": history.url})


# --- threads --------------------------------------------------------------------------------------------


async def test_threads_list_shows_every_thread_and_filters_by_status(history: History) -> None:
    """`threads list` prints one line per thread with id, status, agent and title; --status filters."""
    (code, everything), (code_w, waiting) = await asyncio.gather(
        cli(history, "threads", "list"), cli(history, "threads", "list", "--status", "waiting_for_approval"))
    assert code == 0 and code_w == 0, everything + waiting
    lines = {line.split()[0]: line for line in everything.splitlines() if line.strip()}
    assert set(lines) == {history.executed, history.waiting, history.helped}
    assert "done" in lines[history.executed] and "deploy" in lines[history.executed]
    assert lines[history.executed].split()[2] == "executed" and lines[history.helped].split()[2] == "answered"
    assert lines[history.waiting].split()[2] == "-"  # no outcome while it waits
    assert lines[history.executed].endswith("!deploy service=api version=1.2.3 environment=production")
    assert "waiting_for_approval" in lines[history.waiting]
    assert [line.split()[0] for line in waiting.splitlines() if line.strip()] == [history.waiting]


async def test_threads_show_prints_the_story_and_json(history: History) -> None:
    """`threads show ID` reads like a log; --json gives the typed events; an unknown id fails clearly."""
    (code, text), (code_json, as_json), (code_missing, missing) = await asyncio.gather(
        cli(history, "threads", "show", history.executed),
        cli(history, "threads", "show", history.executed, "--json"),
        cli(history, "threads", "show", "no-such-thread"),
    )
    assert code == 0, text
    assert f"thread {history.executed}  agent=deploy  status=done" in text
    for expected in (
        f"{BOB}: !deploy service=api version=1.2.3 environment=production",
        "proposed: deploy service=api version=1.2.3 environment=production",
        f"refused decision by {MALLORY}",
        f"approved by {ALICE}: ship the patch (edited version 1.2.3->1.2.4)",
        "result of deploy: recorded deploy of api 1.2.4 to production",
    ):
        assert expected in text
    assert code_json == 0, as_json
    thread = json.loads(as_json)
    assert thread["id"] == history.executed and thread["agent"] == "deploy"
    decided = next(e for e in thread["events"] if e["type"] == "approval_decided")
    assert decided["changes"] == [{"field": "version", "old": "1.2.3", "new": "1.2.4"}]
    assert code_missing != 0 and "thread no-such-thread not found" in missing


# --- audit export ---------------------------------------------------------------------------------------


async def test_audit_export_jsonl_and_csv_hold_request_decision_refusal_and_execution(
    history: History, tmp_path: Path
) -> None:
    """Both formats list, with who and when, the request, the refused attempt, the edited approval and the run."""
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    jsonl, csv_path = tmp_path / "audit.jsonl", tmp_path / "audit.csv"
    (code_j, out_j), (code_c, out_c) = await asyncio.gather(
        cli(history, "audit", "export", "--since", today, "--format", "jsonl", "--output", str(jsonl)),
        cli(history, "audit", "export", "--since", today, "--format", "csv", "--output", str(csv_path)),
    )
    assert code_j == 0 and code_c == 0, out_j + out_c
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert "6 audit records" in out_j and len(rows) == 6
    mine = [r for r in rows if r["thread_id"] == history.executed]
    assert [r["record"] for r in mine] == [
        "approval_requested", "decision_refused", "approval_decided", "execution_started", "action_result"]
    request, refusal, decision, started, result = mine
    assert (request["who"], request["action"], request["arguments"]["version"]) == (BOB, "deploy", "1.2.3")
    assert (refusal["who"], refusal["decision"]) == (MALLORY, "refused") and "not one of" in refusal["detail"]
    assert (decision["who"], decision["decision"], decision["arguments"]["version"]) == (ALICE, "approved", "1.2.4")
    assert (decision["person"], decision["channel"], refusal["person"], request["person"]) == (
        ALICE, "slack", MALLORY, BOB)  # unmapped addresses are people of their own
    assert "ship the patch" in decision["detail"] and "edited version: 1.2.3 -> 1.2.4" in decision["detail"]
    assert (started["who"], started["arguments"]["version"]) == (ALICE, "1.2.4")
    assert f"{history.executed}:" in started["detail"]
    assert result["decision"] == "ok" and "1.2.4" in result["detail"]
    for row in mine:
        assert datetime.fromisoformat(row["at"]).date() == datetime.now(UTC).date()
        assert row["agent"] == "deploy"
    assert [r["record"] for r in rows if r["thread_id"] == history.waiting] == ["approval_requested"]

    with csv_path.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["record"] for r in table] == [r["record"] for r in rows]
    csv_decision = next(r for r in table if r["record"] == "approval_decided")
    assert csv_decision["who"] == ALICE and json.loads(csv_decision["arguments"])["version"] == "1.2.4"
    assert next(r for r in table if r["record"] == "decision_refused")["who"] == MALLORY


async def test_audit_export_since_a_later_date_is_empty_and_bad_dates_fail(history: History) -> None:
    """Records before --since are left out; a date that cannot be read is a usage error."""
    (code, output), (bad_code, bad) = await asyncio.gather(
        cli(history, "audit", "export", "--since", "2999-01-01"),
        cli(history, "audit", "export", "--since", "yesterday"),
    )
    assert code == 0 and output.strip() == "0 audit records"
    assert bad_code != 0 and "--since" in bad


# --- configuration errors -------------------------------------------------------------------------------


async def run_bounded(*args: str, env: dict[str, str], cwd: Path, timeout: float = 30) -> tuple[int, str]:  # noqa: ASYNC109
    """Like run_cli, in ``cwd``, and the child is killed if it is still running at the deadline (a wrong start)."""
    full = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    full.update(PYTHONPATH=str(REPO_ROOT), **env)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=full, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"opsgate {' '.join(args)} did not exit within {timeout}s") from None
    return process.returncode or 0, out.decode()


@pytest.mark.parametrize(("command", "env", "variable"), [
    ("serve", {"PORT": "abc"}, "PORT"),
    ("threads list", {"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ("serve", {"OPSGATE_APPROVERS": "not valid"}, "OPSGATE_APPROVERS"),
])
async def test_bad_configuration_stops_start_up_naming_the_variable(
    tmp_workdir: Path, command: str, env: dict[str, str], variable: str
) -> None:
    """A bad variable makes the command exit non-zero with one line naming it, no traceback."""
    env = {"DATABASE_URL": sqlite_url(tmp_workdir / "opsgate.db"), **env}
    code, output = await run_bounded(*command.split(), env=env, cwd=tmp_workdir)
    assert code != 0, output
    assert output.startswith("Error: ") and variable in output.splitlines()[0], output
    assert "Traceback" not in output
    assert not (tmp_workdir / "opsgate.db").exists()  # nothing was started


# --- chat ----------------------------------------------------------------------------------------------


async def test_chat_approves_edits_and_rejects_at_the_prompt(tmp_path: Path) -> None:
    """`opsgate chat` in open mode: approve one deploy, edit the version of another, reject a third."""
    url = sqlite_url(tmp_path / "chat.db")
    session = "\n".join([
        "!deploy service=api version=1.2.3 environment=production", "y",
        "!deploy service=web version=2.0.0 environment=production", "e", "", "2.0.1", "",
        "!deploy service=db version=5 environment=production", "n", "maintenance window",
    ]) + "\n"
    code, output = await run_cli("chat", "--user", "alice", env={"DATABASE_URL": url}, stdin=session.encode(),
                                 timeout=60)
    assert code == 0, output
    assert "opsgate chat as alice" in output
    for what in ("deploy api 1.2.3 to production", "deploy web 2.0.0 to production", "deploy db 5 to production"):
        assert f"waiting for approval of {what} by the local user" in output  # the agent's own description
    assert "result of deploy: recorded deploy of api 1.2.3 to production in the local ledger" in output
    assert "approved by alice (edited version 2.0.0->2.0.1)" in output
    assert "result of deploy: recorded deploy of web 2.0.1 to production" in output
    assert "rejected by alice: maintenance window" in output
    assert "Traceback" not in output
    store = SqlStore.from_url(url)
    try:
        entries = await deploy_ledger(store)
    finally:
        await store.close()
    assert sorted((e.service, e.version, e.approved_by) for e in entries) == [
        ("api", "1.2.3", "alice"), ("web", "2.0.1", "alice")]
