"""The plugin boundary: bot/, storage/ and channels/ import nothing from agents/ and name no agent, action or
agent-owned type in their code (docstrings and comments may use an agent as an example)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import agents
from bot.actions import INTENTS
from bot.wiring import installed_agents

ROOT = Path(__file__).resolve().parents[2]
CORE = ("bot", "storage", "channels")
HISTORY = ROOT / "storage" / "migrations" / "versions"  # past data migrations move agents' old tables


def _core_files() -> list[Path]:
    return [p for d in CORE for p in sorted((ROOT / d).rglob("*.py")) if HISTORY not in p.parents]


def _agent_words() -> set[str]:
    """Agent names, their action names and every public class their modules define."""
    universal = {i.name for i in INTENTS}
    words: set[str] = set()
    for agent in installed_agents():
        words.add(agent.name)
        words.update(a.name for a in agent.actions if a.name not in universal)
    for module_path in (ROOT / "agents").rglob("*.py"):
        tree = ast.parse(module_path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                words.add(node.name)
    return words


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _violations(path: Path, words: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    # a word on its own, not part of a dotted name (the logger "uvicorn.access" names no agent)
    names = "|".join(sorted(map(re.escape, words), key=len, reverse=True))
    pattern = re.compile(r"(?<![\w.])(" + names + r")(?![\w.])")
    where = path.relative_to(ROOT) if ROOT in path.parents else path.name
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno} imports {a.name}" for a in node.names if a.name.split(".")[0] == "agents"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "agents":
            found.append(f"{where}:{node.lineno} imports from {node.module}")
        elif isinstance(node, ast.Name) and node.id in words:
            found.append(f"{where}:{node.lineno} uses {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in words:
            found.append(f"{where}:{node.lineno} uses .{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            match = pattern.search(node.value)
            if match:
                found.append(f"{where}:{node.lineno} names {match.group(0)!r} in {node.value[:60]!r}")
    return found


def test_agents_are_found_as_plugins_and_own_something_to_check() -> None:
    """The check has teeth: the installed agents are found, and their words include names and types."""
    words = _agent_words()
    assert {"deploy", "rollback", "LedgerEntry", "DeploySettings"} <= words
    assert inspect.getfile(agents).startswith(str(ROOT))


def test_core_never_imports_or_names_an_agent() -> None:
    """No module of bot/, storage/ or channels/ imports agents/ or names an agent, its actions or its types."""
    words = _agent_words()
    violations = [v for path in _core_files() for v in _violations(path, words)]
    assert violations == []


def test_the_check_catches_a_leak(tmp_path: Path) -> None:
    """A core module importing the deploy ledger or naming the deploy action is reported."""
    leak = tmp_path / "probe.py"
    leak.write_text('"""A docstring may say deploy."""\nfrom agents.deploy.ledger import ledger\nKIND = "deploy"\n'
                    "def f(x):\n    return x.LedgerEntry\n", encoding="utf-8")
    assert _violations(leak, _agent_words()) == [
        "probe.py:2 imports from agents.deploy.ledger", "probe.py:3 names 'deploy' in 'deploy'",
        "probe.py:5 uses .LedgerEntry",
    ]
