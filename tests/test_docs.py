"""The documentation stays true to the code: every setting is in .env.example and the README table."""

from __future__ import annotations

import re
from pathlib import Path

import agents  # noqa: F401  (registers the agents, and with them their own settings classes)
from bot.config import AgentSettings, Settings

ROOT = Path(__file__).resolve().parents[1]


def _aliases() -> set[str]:
    """The core settings' variables and every agent's own (AgentSettings subclasses)."""
    models = [Settings, *AgentSettings.__subclasses__()]
    return {f.alias for model in models for f in model.model_fields.values() if f.alias}


def test_agent_settings_are_found() -> None:
    """The deploy agent's OPSGATE_DEPLOY_* settings are among the documented ones."""
    assert "OPSGATE_DEPLOY_BACKEND" in _aliases()


def test_every_setting_is_in_env_example() -> None:
    """.env.example lists every environment variable Settings reads, and nothing it does not."""
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    groups = {name for name in listed if name.startswith("OPSGATE_APPROVERS_")}
    assert _aliases() <= listed
    assert listed - groups <= _aliases()


def test_every_setting_is_in_the_readme_table() -> None:
    """The README's configuration table has a row for every variable."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- env-table -->", 1)[1].split("\n\n", 1)[0]
    rows = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", table, re.M))
    assert _aliases() <= rows


def test_readme_has_exactly_the_two_setup_commands() -> None:
    """Quick start shows one command to run opsgate and one to run the tests, and both scripts exist."""
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    block = quick.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["./scripts/run", "./scripts/test"]
    assert (ROOT / "scripts" / "run").stat().st_mode & 0o111
    assert (ROOT / "scripts" / "test").stat().st_mode & 0o111
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test" in ci
