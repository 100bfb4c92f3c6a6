"""The first run and the CLI as a new user meets them: scripts/run, read-only commands, empty lists, chat prompts."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from storage import upgrade
from tests.bot.test_cli import run_bounded
from tests.support.api_client import run_cli
from tests.support.databases import postgres_database, sqlite_url
from tests.support.processes import REPO_ROOT

READ_ONLY = [["threads", "list"], ["threads", "show", "0123456789abcdef"], ["audit", "export"]]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
async def test_read_only_commands_never_create_a_database(tmp_workdir: Path, command: list[str]) -> None:
    """Run from a folder without a database: an error naming DATABASE_URL and the file looked for; no file made."""
    code, output = await run_bounded(*command, env={}, cwd=tmp_workdir)
    assert code != 0
    first = output.splitlines()[0]
    assert first.startswith("Error: no opsgate database at DATABASE_URL=sqlite+aiosqlite:///./opsgate.db")
    expected = await asyncio.to_thread(os.path.realpath, tmp_workdir / "opsgate.db")
    assert f"(the file {expected})" in first
    assert "Traceback" not in output
    assert os.listdir(tmp_workdir) == []


async def test_read_only_commands_on_postgresql_without_the_schema_say_so() -> None:
    """A reachable PostgreSQL database without opsgate's tables: the URL (password hidden) and what to run."""
    async with postgres_database() as url:
        with_password = make_url(url).set(password="secret").render_as_string(hide_password=False)
        code, output = await run_cli("threads", "list", env={"DATABASE_URL": with_password})
    assert code != 0
    assert "has no opsgate schema" in output and "opsgate db upgrade" in output
    assert "secret" not in output


async def test_an_empty_thread_list_says_so(tmp_path: Path) -> None:
    """No threads yet: a sentence instead of nothing, and the filter is named."""
    url = sqlite_url(tmp_path / "opsgate.db")
    await upgrade(url)
    code, output = await run_cli("threads", "list", env={"DATABASE_URL": url})
    assert (code, output.strip()) == (0, "no threads yet")
    code, output = await run_cli("threads", "list", "--status", "done", env={"DATABASE_URL": url})
    assert (code, output.strip()) == (0, "no threads with status done yet")


async def test_chat_edit_prompts_show_the_allowed_values_and_errors_in_words(tmp_path: Path) -> None:
    """Editing at the prompt names each field's choices or allowed characters; a bad value is explained plainly."""
    session = "!deploy service=web version=2.0.0 environment=production\ne\n\nnot ok!\n\nn\nno\n"
    code, output = await run_cli("chat", "--user", "alice", env={"DATABASE_URL": sqlite_url(tmp_path / "c.db")},
                                 stdin=session.encode(), timeout=60)
    assert code == 0, output
    assert "environment [production] (one of staging, production):" in output
    assert "version [2.0.0] (Exact version or git sha the person gave, e.g. 1.4.2. Never 'latest'; only letters, " \
           "digits and . _ + -, starting with a letter or digit, at most 64 characters):" in output
    assert "! version: 'not ok!' is not allowed: use only letters, digits and . _ + -" in output
    assert "^[" not in output  # no regular expression reaches the person
    assert "rejected by alice: no" in output


_CTRL_C = textwrap.dedent("""
    import os, pty, select, sys, time
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", "bot", "chat", "--user", "alice"])
    out, deadline = b"", time.monotonic() + 30
    while b"> " not in out and time.monotonic() < deadline:  # the prompt is up: chat is reading the terminal
        if select.select([fd], [], [], 0.1)[0]:
            out += os.read(fd, 4096)
    os.write(fd, b"\\x03")  # Ctrl-C typed at the terminal
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print("exited", os.waitstatus_to_exitcode(status))
            sys.exit(0)
        if select.select([fd], [], [], 0.1)[0]:
            try:
                out += os.read(fd, 4096)
            except OSError:
                pass
    os.kill(pid, 9)
    print("still running after Ctrl-C:", out.decode(errors="replace")[-300:])
""")


def test_ctrl_c_quits_chat_at_a_terminal(tmp_path: Path) -> None:
    """Ctrl-C at chat's prompt on a real terminal (a pty) ends the program at once, without waiting for Enter."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(PYTHONPATH=str(REPO_ROOT), DATABASE_URL=sqlite_url(tmp_path / "chat.db"))
    result = subprocess.run([sys.executable, "-c", _CTRL_C], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=90, check=False)
    assert result.stdout.strip() == "exited 0", result.stdout + result.stderr


_FAKE_PYTHON = textwrap.dedent("""\
    #!/usr/bin/env bash
    # Stands in for python3 (creates the venv) and for .venv/bin/python (pip) so the scripts run in a second.
    if [ "$1 $2" = "-m venv" ]; then
        mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
        printf '#!/usr/bin/env bash\\necho "opsgate $*"\\n' > "$3/bin/opsgate" && chmod +x "$3/bin/opsgate"
        exit 0
    fi
    case "$*" in *"--upgrade pip"*) exit 0 ;; esac
    for name in fastapi uvicorn sqlalchemy; do echo "Collecting $name>=1.0 (from opsgate==0.1.0)"; done
    echo "  Downloading something.whl (1.2 MB)"
    echo "Installing collected packages: fastapi, uvicorn, sqlalchemy, opsgate"
    echo "Successfully installed fastapi-1 uvicorn-1 sqlalchemy-1 opsgate-0.1.0"
    [ -z "$FAIL_INSTALL" ] || { echo "ERROR: No matching distribution found for fastapi"; exit 1; }
""")


@pytest.mark.parametrize("fail", [False, True])
def test_scripts_run_shows_install_progress_and_how_to_reach_opsgate(tmp_path: Path, fail: bool) -> None:
    """The first ./scripts/run says what it installs, shows pip's progress, says how to get `opsgate` on the PATH,
    then starts the server; a failed install shows pip's error and stops."""
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT / "scripts", checkout / "scripts")
    shutil.copy(REPO_ROOT / "pyproject.toml", checkout)
    fake = tmp_path / "python3"
    fake.write_text(_FAKE_PYTHON)
    fake.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "PYTHON": str(fake), **({"FAIL_INSTALL": "1"} if fail else {})}
    result = subprocess.run([str(checkout / "scripts" / "run")], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert "opsgate: installing opsgate and its dependencies into .venv" in result.stderr
    assert "  Collecting fastapi>=1.0" in result.stderr
    if fail:
        assert result.returncode != 0 and result.stdout == ""
        assert "the install failed" in result.stderr and "No matching distribution found" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert "Downloading" not in result.stderr  # pip's chatter is filtered to one line per package
    assert "source .venv/bin/activate" in result.stderr
    assert result.stdout == "opsgate serve\n"
