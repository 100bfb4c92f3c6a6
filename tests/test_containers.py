"""The image and the compose file, checked with what runs here (no Docker engine): parsed, and held against Settings.

docker-compose.yml is read with PyYAML (merge keys resolved) and its ``${VAR}`` references interpolated the way
Compose does; the Dockerfile's stages are read line by line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

import agents  # noqa: F401  (registers the agents and their own settings)
from bot.app import startup_warnings
from bot.cli import main
from bot.config import AgentSettings, Settings, load_settings
from bot.wiring import build_registry

ROOT = Path(__file__).resolve().parents[1]
OPSGATE_SERVICES = ("migrate", "serve", "worker")
SECRETS = {"POSTGRES_PASSWORD": "pg-secret", "OPSGATE_API_TOKEN": "t" * 40, "OPSGATE_WEB_SECRET": "w" * 40}
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class MissingVariable(Exception):
    """A ``${VAR:?message}`` whose variable is unset: Compose refuses to start with the message."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` in every string of ``value``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        found = env.get(name)
        if op in (":?", "?") and not found:
            raise MissingVariable(f"{name}: {arg}")
        if op in (":-", "-") and not found:
            return arg
        return found or ""

    return _REFERENCE.sub(one, value)


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    return interpolate(yaml.safe_load((ROOT / "docker-compose.yml").read_text()), env if env is not None else
                       SECRETS)


def _known_variables() -> set[str]:
    models = [Settings, *AgentSettings.__subclasses__()]
    return {f.alias for model in models for f in model.model_fields.values() if f.alias}


def test_compose_has_postgres_migrations_serve_and_one_worker() -> None:
    """Four services; the opsgate ones run the CLI commands that exist, from the image built here."""
    services = compose()["services"]
    assert set(services) == {"postgres", *OPSGATE_SERVICES}
    commands = {name: services[name]["command"] for name in OPSGATE_SERVICES}
    assert commands == {"migrate": ["opsgate", "db", "upgrade"], "serve": ["opsgate", "serve"],
                        "worker": ["opsgate", "worker"]}
    with click.Context(main) as ctx:
        for argv in commands.values():
            group: Any = main
            for word in argv[1:]:
                group = group.get_command(ctx, word)
                assert group is not None, argv
    assert {services[n]["build"] for n in OPSGATE_SERVICES} == {"."}
    assert services["worker"].get("deploy", {}).get("replicas", 1) == 1


def test_the_worker_serves_metrics_and_is_checked_on_them() -> None:
    """The worker listens for /metrics and /healthz on OPSGATE_METRICS_PORT, and its health check asks there."""
    worker = compose()["services"]["worker"]
    port = worker["environment"]["OPSGATE_METRICS_PORT"]
    assert worker["expose"] == [port] and worker["environment"]["OPSGATE_HOST"] == "0.0.0.0"
    assert f"127.0.0.1:{port}/healthz" in " ".join(worker["healthcheck"]["test"])
    assert load_settings({k: str(v) for k, v in worker["environment"].items()}).metrics_port == int(port)


def test_the_example_prometheus_config_scrapes_serve_and_every_worker() -> None:
    """docs/prometheus.yml targets serve's published port and the workers' metrics port by service name."""
    config = yaml.safe_load((ROOT / "docs" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    services = compose()["services"]
    assert job["static_configs"][0]["targets"] == [f"serve:{services['serve']['environment']['PORT']}"]
    [dns] = job["dns_sd_configs"]
    assert dns["names"] == ["worker"] and str(dns["port"]) == services["worker"]["environment"]["OPSGATE_METRICS_PORT"]
    assert config["rule_files"] == ["alerts.yml"] and (ROOT / "docs" / "alerts.yml").exists()


def test_migrations_run_first_and_alone() -> None:
    """migrate waits for a healthy PostgreSQL; serve and worker wait for migrate to finish successfully."""
    services = compose()["services"]
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("serve", "worker"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}


@pytest.mark.parametrize("service", OPSGATE_SERVICES)
def test_every_variable_is_one_opsgate_reads_and_the_settings_load(service: str) -> None:
    """No misspelt variable; with the secrets set, Settings (and the agents' settings) accept the environment."""
    env = {k: str(v) for k, v in compose()["services"][service]["environment"].items()}
    assert set(env) <= _known_variables() | {"OPSGATE_APPROVERS_DEPLOYERS"}
    settings = load_settings(env)
    build_registry(settings)  # the agents check their own settings the way a start does
    assert settings.database_url == "postgresql+asyncpg://opsgate:pg-secret@postgres:5432/opsgate"
    assert settings.api_token and settings.web_secret


def test_the_database_url_matches_the_postgres_service() -> None:
    """User, password and database in DATABASE_URL are the ones the postgres service is created with."""
    services = compose()["services"]
    pg = services["postgres"]["environment"]
    url = services["serve"]["environment"]["DATABASE_URL"]
    assert url == f"postgresql+asyncpg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/" \
                  f"{pg['POSTGRES_DB']}"


def test_serve_listens_on_all_interfaces_and_publishes_its_port_on_loopback_by_default() -> None:
    """Inside the container 0.0.0.0:8080; on the host only 127.0.0.1:8080 unless OPSGATE_PUBLISH says otherwise."""
    serve = compose()["services"]["serve"]
    assert serve["environment"]["OPSGATE_HOST"] == "0.0.0.0" and serve["environment"]["PORT"] == "8080"
    assert serve["ports"] == ["127.0.0.1:8080:8080"]
    wider = compose({**SECRETS, "OPSGATE_PUBLISH": "8443"})["services"]["serve"]
    assert wider["ports"] == ["8443:8080"]


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_a_secret(missing: str) -> None:
    """Each secret is required (${VAR:?…}): without it Compose stops with a message naming it."""
    env = {k: v for k, v in SECRETS.items() if k != missing}
    with pytest.raises(MissingVariable, match=f"^{missing}: set {missing} in .env"):
        compose(env)


def test_without_a_token_a_container_says_why_nothing_works() -> None:
    """The image's defaults (0.0.0.0, no token): start-up warnings explain how the API and the inbox are reached."""
    env = dict(_dockerfile_env(_stages()[-1]))
    settings = load_settings(env)
    notes = " ".join(startup_warnings(settings, build_registry(settings)))
    assert "OPSGATE_API_TOKEN is not set" in notes
    assert "listening on 0.0.0.0: the first-run login URL is only offered on 127.0.0.1" in notes
    assert "opsgate tokens create --user YOU" in notes


# --- the Dockerfile ---------------------------------------------------------------------------------------------


def _stages() -> list[tuple[str, list[str]]]:
    """(name, instructions) per stage; continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            found = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?$", line, re.I)
            assert found, line
            stages.append((found.group(2) or "", [line]))
        else:
            assert stages, "an instruction before FROM"
            stages[-1][1].append(line)
    return stages


def _dockerfile_env(stage: tuple[str, list[str]]) -> list[tuple[str, str]]:
    pairs = []
    for line in stage[1]:
        if line.upper().startswith("ENV "):
            pairs += re.findall(r"(\w+)=(\S+)", line[4:])
    return pairs


def test_the_image_is_built_in_two_stages_and_runs_unprivileged() -> None:
    """build installs into a venv; runtime copies only the venv, runs as uid 10001, checks /healthz, serves."""
    stages = _stages()
    assert [name for name, _ in stages] == ["build", "runtime"]
    build, runtime = stages[0][1], stages[1][1]
    assert any("pip install ." in line for line in build)
    assert not any("pip install" in line or line.startswith("COPY bot") for line in runtime)
    assert "COPY --from=build /opt/opsgate /opt/opsgate" in runtime
    assert "USER 10001" in runtime and "EXPOSE 8080" in runtime
    assert any(line.startswith("HEALTHCHECK") and "/healthz" in line for line in runtime)
    assert runtime[-1] == 'CMD ["opsgate", "serve"]'


def test_every_copied_path_exists_and_the_context_leaves_out_local_state() -> None:
    """COPY sources are in the repository; .dockerignore keeps .venv, .git, databases and .env out."""
    for _, lines in _stages():
        for line in lines:
            if line.startswith("COPY ") and "--from=" not in line:
                for source in line.split()[1:-1]:
                    assert (ROOT / source).exists(), source
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", "*.db", ".env", "tests"} <= ignored


def test_the_images_defaults_are_valid_settings() -> None:
    """The runtime stage's ENV (SQLite in /data, 0.0.0.0, 8080) loads as Settings."""
    env = dict(_dockerfile_env(_stages()[-1]))
    settings = load_settings({k: v for k, v in env.items() if k in _known_variables()})
    assert (settings.database_url, settings.host, settings.port) == (
        "sqlite+aiosqlite:////data/opsgate.db", "0.0.0.0", 8080)
