"""Settings from the environment: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import ConfigError


def test_defaults_are_a_working_first_run() -> None:
    """With nothing set: local SQLite, port 8080, 20 steps, four-eyes on, open mode, no model, no API."""
    settings = load_settings({})
    assert settings.database_url == "sqlite+aiosqlite:///./opsgate.db"
    assert settings.port == 8080
    assert settings.max_steps == 20
    assert settings.four_eyes is True
    assert settings.open_mode is True
    assert settings.model_configured is False
    assert settings.api_token is None
    assert settings.approvers == [] and settings.approver_groups == {}


def test_approvers_are_split_trimmed_and_grouped() -> None:
    """OPSGATE_APPROVERS is comma-separated; OPSGATE_APPROVERS_<GROUP> makes a lower-case group."""
    settings = load_settings({
        "OPSGATE_APPROVERS": " U012ABC , alice@example.com,,W0XYZ12 ",
        "OPSGATE_APPROVERS_DEPLOYERS": "bob@example.com",
        "OPSGATE_APPROVERS_DB_ADMINS": "carol@example.com, U0DBA",
        "OPSGATE_APPROVERS_": "ignored@example.com",
    })
    assert settings.approvers == ["U012ABC", "alice@example.com", "W0XYZ12"]
    assert settings.approver_groups == {"deployers": ["bob@example.com"], "db_admins": ["carol@example.com", "U0DBA"]}
    assert settings.open_mode is False


def test_a_group_alone_ends_open_mode() -> None:
    """Configuring only a group is enough to leave open mode."""
    assert load_settings({"OPSGATE_APPROVERS_DEPLOYERS": "bob@example.com"}).open_mode is False


def test_the_process_environment_is_read_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings() reads os.environ, including approver groups."""
    monkeypatch.setenv("OPSGATE_APPROVERS_OPS", "dave@example.com")
    monkeypatch.setenv("OPSGATE_MAX_STEPS", "7")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    settings = load_settings()
    assert settings.approver_groups["ops"] == ["dave@example.com"]
    assert settings.max_steps == 7
    assert settings.model_configured is True


def test_overrides_win_over_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyword overrides (CLI options such as --port) replace environment values."""
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("OPSGATE_HOST", "10.0.0.1")
    settings = load_settings(port=9100, host="0.0.0.0")
    assert (settings.port, settings.host) == (9100, "0.0.0.0")


def test_overrides_win_over_a_given_mapping() -> None:
    """Overrides also win when the environment is passed as a mapping."""
    assert load_settings({"PORT": "9000"}, port=9100).port == 9100


def test_booleans_and_numbers_are_parsed() -> None:
    """Typed variables are converted: OPSGATE_FOUR_EYES=false, OPSGATE_POLL_INTERVAL=0.05."""
    settings = load_settings({"OPSGATE_FOUR_EYES": "false", "OPSGATE_POLL_INTERVAL": "0.05", "PORT": "8443"})
    assert settings.four_eyes is False
    assert settings.poll_interval == 0.05
    assert settings.port == 8443


@pytest.mark.parametrize(("env", "variable"), [
    ({"PORT": "abc"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://localhost/db"}, "DATABASE_URL"),
    ({"OPSGATE_APPROVERS": "not valid"}, "OPSGATE_APPROVERS"),
    ({"OPSGATE_APPROVERS": "alice@example.com,@nobody"}, "OPSGATE_APPROVERS"),
    ({"OPSGATE_APPROVERS_DEPLOYERS": "bob smith"}, "OPSGATE_APPROVERS_DEPLOYERS"),
    ({"OPSGATE_MAX_STEPS": "0"}, "OPSGATE_MAX_STEPS"),
    ({"OPSGATE_MODEL_RETRIES": "many"}, "OPSGATE_MODEL_RETRIES"),
    ({"OPSGATE_FOUR_EYES": "perhaps"}, "OPSGATE_FOUR_EYES"),
    ({"OPSGATE_LEASE_SECONDS": "1"}, "OPSGATE_LEASE_SECONDS"),
    ({"IMAP_HOST": "imap.example.com"}, "IMAP_USERNAME"),
    ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET"),
    ({"OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID": "*"}, "OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID"),
    ({"OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID": "mx.example.com,*.com"}, "OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID"),
    ({"OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID": " , "}, "OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID"),
    ({"OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID": "mx example com"}, "OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID"),
    ({"OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID": "mx..example.com"}, "OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID"),
    ({"OPSGATE_PEOPLE": "alice=a@example.com; bob=a@example.com"}, "OPSGATE_PEOPLE"),
    ({"OPSGATE_PEOPLE": "alice"}, "OPSGATE_PEOPLE"),
    ({"OPSGATE_TRIGGER_EMAIL": "oncall"}, "OPSGATE_TRIGGER_EMAIL"),
    ({"OPSGATE_TRIGGER_EMAIL": "a@example.com; b@example.com"}, "OPSGATE_TRIGGER_EMAIL"),
])
def test_bad_configuration_names_the_variable(env: dict[str, str], variable: str) -> None:
    """Every configuration mistake raises ConfigError whose message names the variable."""
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert variable in str(info.value)


def test_trigger_followers_are_a_list_of_addresses() -> None:
    """OPSGATE_TRIGGER_EMAIL: comma-separated, lower-cased, each once."""
    settings = load_settings({"OPSGATE_TRIGGER_EMAIL": "Oncall@Example.com, ops@example.com,oncall@example.com"})
    assert settings.trigger_email == ["oncall@example.com", "ops@example.com"]


def test_trusted_authserv_ids_accept_host_names_and_provider_wildcards() -> None:
    """A list of host names and ``*.domain`` patterns is kept as written; a bad one is quoted in the error."""
    value = "mx.example.com, *.messagingengine.com,localhost"
    assert load_settings({"OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID": value}).email_trusted_authserv_id == value
    with pytest.raises(ConfigError, match=r"OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID: .*\*\.com is not a host name"):
        load_settings({"OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID": "mx.example.com,*.com"})


def test_bad_approver_is_quoted_in_the_message() -> None:
    """The message shows which identity is wrong and what is expected."""
    with pytest.raises(ConfigError, match=r"OPSGATE_APPROVERS: not valid is not a Slack user id"):
        load_settings({"OPSGATE_APPROVERS": "alice@example.com,not valid"})


def test_several_problems_are_reported_together() -> None:
    """Two bad variables are both named in one error."""
    with pytest.raises(ConfigError) as info:
        load_settings({"PORT": "abc", "OPSGATE_MAX_STEPS": "-1"})
    assert "PORT" in str(info.value) and "OPSGATE_MAX_STEPS" in str(info.value)


def test_a_missing_multiprocess_metrics_directory_stops_the_start(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR must be an existing directory: a typo would fail on the hot path otherwise."""
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR: .* is not a directory"):
        load_settings({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")})
    assert load_settings({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}).prometheus_multiproc_dir == str(tmp_path)


def test_per_agent_model_settings_override_the_agents_defaults() -> None:
    """OPSGATE_MODEL_TEMPERATURE_<AGENT> / _TIMEOUT_<AGENT> beat the agent's own values; bad ones name the variable."""
    from agents.deploy import AGENT

    default = AGENT.model_options(load_settings({}))
    assert (default.temperature, default.timeout) == (0.0, 60.0)
    tuned = AGENT.model_options(load_settings({"OPSGATE_MODEL_TEMPERATURE_DEPLOY": "0.7",
                                               "OPSGATE_MODEL_TIMEOUT_DEPLOY": "15"}))
    assert (tuned.temperature, tuned.timeout) == (0.7, 15.0)
    with pytest.raises(ConfigError, match="OPSGATE_MODEL_TEMPERATURE_DEPLOY: 'hot' is not a number from 0 to 2"):
        load_settings({"OPSGATE_MODEL_TEMPERATURE_DEPLOY": "hot"})
    with pytest.raises(ConfigError, match="OPSGATE_MODEL_TIMEOUT_DEPLOY"):
        load_settings({"OPSGATE_MODEL_TIMEOUT_DEPLOY": "-1"})
