"""Settings, read once from the environment (pydantic-settings). The only module that looks at os.environ."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import cached_property
from typing import ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError
from bot.lifecycle import TimingOverrides, parse_overrides
from bot.people import IDENTITY_HELP, People, is_identity

TlsMode = Literal["ssl", "starttls", "none"]
_GROUP_PREFIX = "OPSGATE_APPROVERS_"
_TEMPERATURE_PREFIX = "OPSGATE_MODEL_TEMPERATURE_"
_TIMEOUT_PREFIX = "OPSGATE_MODEL_TIMEOUT_"


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _authserv_pattern_ok(name: str) -> bool:
    """``mx.example.com``, ``localhost`` or ``*.messagingengine.com`` (a wildcard needs two labels after it)."""
    wildcard = name.startswith("*.")
    labels = (name[2:] if wildcard else name).split(".")
    if wildcard and len(labels) < 2:
        return False
    return all(label and all((c.isascii() and c.isalnum()) or c in "-_" for c in label) for label in labels)


class Settings(BaseSettings):
    """Every opsgate setting; each field's alias is its environment variable."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True, env_ignore_empty=True)

    # core
    database_url: str = Field("sqlite+aiosqlite:///./opsgate.db", alias="DATABASE_URL")
    host: str = Field("127.0.0.1", alias="OPSGATE_HOST")
    port: int = Field(8080, alias="PORT", ge=1, le=65535)
    api_token: str | None = Field(None, alias="OPSGATE_API_TOKEN")
    log_level: str = Field("info", alias="OPSGATE_LOG_LEVEL")

    # model
    openai_api_key: str | None = Field(None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL")
    model: str = Field("gpt-4o-mini", alias="OPSGATE_MODEL")
    model_timeout: float = Field(60.0, alias="OPSGATE_MODEL_TIMEOUT", gt=0)
    model_retries: int = Field(4, alias="OPSGATE_MODEL_RETRIES", ge=0, le=20)
    # per-agent model settings: an agent's own defaults, overridden by OPSGATE_MODEL_{TEMPERATURE,TIMEOUT}_<AGENT>
    model_temperature: float | None = Field(None, alias="OPSGATE_MODEL_TEMPERATURE", ge=0, le=2)
    agent_model_raw: dict[str, str] = Field(default_factory=dict)  # filled by load_settings

    # agents and approvals
    default_agent: str | None = Field(None, alias="OPSGATE_DEFAULT_AGENT")  # None: the first registered
    approvers_raw: str | None = Field(None, alias="OPSGATE_APPROVERS")
    max_steps: int = Field(20, alias="OPSGATE_MAX_STEPS", ge=1)
    four_eyes: bool = Field(True, alias="OPSGATE_FOUR_EYES")

    # approval lifecycle (bot/lifecycle.py): "[agent=]duration" lists overriding the agents' defaults
    approval_expiry_raw: str | None = Field(None, alias="OPSGATE_APPROVAL_EXPIRY")
    approval_reminder_raw: str | None = Field(None, alias="OPSGATE_APPROVAL_REMINDER")
    approval_escalation_raw: str | None = Field(None, alias="OPSGATE_APPROVAL_ESCALATION")
    approval_escalate_to_raw: str | None = Field(None, alias="OPSGATE_APPROVAL_ESCALATE_TO")

    # people: who is who across channels (bot/people.py)
    people_raw: str | None = Field(None, alias="OPSGATE_PEOPLE")

    # worker
    worker_concurrency: int = Field(8, alias="OPSGATE_WORKER_CONCURRENCY", ge=1, le=256)
    poll_interval: float = Field(0.5, alias="OPSGATE_POLL_INTERVAL", gt=0)
    lease_seconds: float = Field(60.0, alias="OPSGATE_LEASE_SECONDS", ge=3)

    # hostile input and faults
    max_message_chars: int = Field(20_000, alias="OPSGATE_MAX_MESSAGE_CHARS", ge=100, le=1_000_000)
    outbox_max_attempts: int = Field(8, alias="OPSGATE_OUTBOX_MAX_ATTEMPTS", ge=1, le=100)
    thread_max_failures: int = Field(6, alias="OPSGATE_THREAD_MAX_FAILURES", ge=1, le=100)

    # signs every outgoing webhook of the agents (X-Opsgate-Signature); agents' own settings are theirs
    webhook_secret: str | None = Field(None, alias="OPSGATE_WEBHOOK_SECRET")

    # triggers: hooks (bot/triggers.py) and schedules (bot/schedules.py)
    hook_token: str | None = Field(None, alias="OPSGATE_HOOK_TOKEN")  # Bearer token of POST /hooks/...
    hook_max_bytes: int = Field(256 * 1024, alias="OPSGATE_HOOK_MAX_BYTES", ge=1024, le=10 * 1024 * 1024)
    trigger_slack_channel: str | None = Field(None, alias="OPSGATE_TRIGGER_SLACK_CHANNEL")  # where they live
    trigger_email_raw: str | None = Field(None, alias="OPSGATE_TRIGGER_EMAIL")  # who follows them by mail
    alert_agent: str | None = Field(None, alias="OPSGATE_ALERT_AGENT")  # default: the agent that handles alerts
    schedules_raw: str | None = Field(None, alias="OPSGATE_SCHEDULES")  # JSON list, see bot/schedules.py

    # Slack
    slack_bot_token: str | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_api_url: str | None = Field(None, alias="SLACK_API_URL")
    # approval cards of threads that did not start in Slack (API, email, inbox) go to this channel id
    slack_approvals_channel: str | None = Field(None, alias="SLACK_APPROVALS_CHANNEL")

    # email
    imap_host: str | None = Field(None, alias="IMAP_HOST")
    imap_port: int | None = Field(None, alias="IMAP_PORT")
    imap_username: str | None = Field(None, alias="IMAP_USERNAME")
    imap_password: str | None = Field(None, alias="IMAP_PASSWORD")
    imap_tls: TlsMode = Field("ssl", alias="IMAP_TLS")
    imap_mailbox: str = Field("INBOX", alias="IMAP_MAILBOX")
    email_address: str | None = Field(None, alias="OPSGATE_EMAIL_ADDRESS")
    email_trusted_authserv_id: str | None = Field(None, alias="OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID")
    smtp_host: str | None = Field(None, alias="SMTP_HOST")
    smtp_port: int | None = Field(None, alias="SMTP_PORT")
    smtp_username: str | None = Field(None, alias="SMTP_USERNAME")
    smtp_password: str | None = Field(None, alias="SMTP_PASSWORD")
    smtp_tls: TlsMode = Field("starttls", alias="SMTP_TLS")
    email_idle: bool = Field(True, alias="OPSGATE_EMAIL_IDLE")  # use IMAP IDLE when the server offers it
    email_idle_renew: float = Field(540.0, alias="OPSGATE_EMAIL_IDLE_RENEW", gt=0, le=600)
    email_poll_interval: float = Field(30.0, alias="OPSGATE_EMAIL_POLL_INTERVAL", gt=0)
    # inbound limits: bigger mail is answered (people) or ignored (automatic) without reading its body
    email_max_bytes: int = Field(5 * 1024 * 1024, alias="OPSGATE_EMAIL_MAX_BYTES", ge=64 * 1024)

    # web inbox
    web_secret: str | None = Field(None, alias="OPSGATE_WEB_SECRET")

    # credentials: who may assert identities, where sign-in links point
    api_trusted_relay: bool = Field(False, alias="OPSGATE_API_TRUSTED_RELAY")  # shared token may assert any user
    public_url: str | None = Field(None, alias="OPSGATE_PUBLIC_URL")  # base of sign-in links (never the Host header)

    # metrics (bot/metrics.py) and traces (bot/tracing.py)
    metrics_token: str | None = Field(None, alias="OPSGATE_METRICS_TOKEN")  # unset: /metrics is open
    metrics_port: int | None = Field(None, alias="OPSGATE_METRICS_PORT", ge=1, le=65535)  # `opsgate worker` only
    # prometheus-client reads it itself at import; declared here so it is documented and checked
    prometheus_multiproc_dir: str | None = Field(None, alias="PROMETHEUS_MULTIPROC_DIR")
    otel_traces_endpoint: str | None = Field(None, alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    otel_endpoint: str | None = Field(None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otel_headers: str | None = Field(None, alias="OTEL_EXPORTER_OTLP_HEADERS")
    otel_service_name: str = Field("opsgate", alias="OTEL_SERVICE_NAME")
    otel_sdk_disabled: bool = Field(False, alias="OTEL_SDK_DISABLED")

    # named approver groups, OPSGATE_APPROVERS_<GROUP>; filled by load_settings
    approver_groups_raw: dict[str, str] = Field(default_factory=dict)
    # every other OPSGATE_* variable, for the agents' own settings (AgentSettings); filled by load_settings
    agent_environ: dict[str, str] = Field(default_factory=dict)
    _agent_settings: dict[type, AgentSettings] = PrivateAttr(default_factory=dict)

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        parts = urlsplit(value) if value is not None else None
        if parts is not None and (parts.scheme not in ("http", "https") or not parts.netloc or parts.query
                                  or parts.fragment or any(c.isspace() for c in str(value))):
            raise ValueError("must be an absolute http(s) URL without query, e.g. https://opsgate.example.com")
        return value.rstrip("/") if value else value

    @field_validator("slack_approvals_channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[CG][A-Z0-9]{2,20}", value.strip()):
            raise ValueError("must be a Slack channel id such as C0123ABCD (not a #name)")
        return value.strip() if value else value

    @field_validator("trigger_email_raw")
    @classmethod
    def _addresses(cls, value: str | None) -> str | None:
        bad = [part for part in _split(value) if part.count("@") != 1 or any(c.isspace() or c in "<>,;" for c in part)]
        if bad:
            raise ValueError(f"{', '.join(bad)} is not an email address (a comma-separated list of addresses)")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("email_trusted_authserv_id")
    @classmethod
    def _authserv_patterns(cls, value: str | None) -> str | None:
        # A slip here would trust every sender's own header ("*", "*.com") or nobody's: stop the start instead.
        names = _split(value)
        if value is not None and not names:
            raise ValueError("must name at least one authserv-id")
        bad = [name for name in names if not _authserv_pattern_ok(name)]
        if bad:
            raise ValueError(f"{', '.join(bad)} is not a host name, or *. and a domain of at least two labels")
        return value

    def agent_temperature(self, agent: str) -> float | None:
        """OPSGATE_MODEL_TEMPERATURE_<AGENT>, if set."""
        raw = self.agent_model_raw.get(f"{_TEMPERATURE_PREFIX}{agent.upper()}")
        return float(raw) if raw else None

    def agent_timeout(self, agent: str) -> float | None:
        """OPSGATE_MODEL_TIMEOUT_<AGENT>, if set."""
        raw = self.agent_model_raw.get(f"{_TIMEOUT_PREFIX}{agent.upper()}")
        return float(raw) if raw else None

    @cached_property
    def approvers(self) -> list[str]:
        """Identities allowed to approve any action without a group of its own."""
        return _split(self.approvers_raw)

    @cached_property
    def trigger_email(self) -> list[str]:
        """Addresses that follow threads started by hooks and schedules by mail (and may answer in them)."""
        return list(dict.fromkeys(part.lower() for part in _split(self.trigger_email_raw)))

    @cached_property
    def approver_groups(self) -> dict[str, list[str]]:
        return {name: _split(raw) for name, raw in self.approver_groups_raw.items()}

    @cached_property
    def approval_timing(self) -> TimingOverrides:
        """The environment's expiry, reminder and escalation settings (validated by ``check``)."""
        return parse_overrides(self.approval_expiry_raw, self.approval_reminder_raw, self.approval_escalation_raw,
                               self.approval_escalate_to_raw)

    @cached_property
    def people(self) -> People:
        """The people directory from OPSGATE_PEOPLE (validated by ``check``)."""
        return People.parse(self.people_raw)

    @property
    def open_mode(self) -> bool:
        """No approvers configured at all: the local inbox user approves everything (first run)."""
        return not self.approvers and not any(self.approver_groups.values())

    @property
    def max_body_bytes(self) -> int:
        """HTTP request bodies above this are refused unread: room for a longest message escaped as JSON."""
        return max(1 << 20, 12 * self.max_message_chars)

    @property
    def model_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token and (self.slack_signing_secret or self.slack_app_token))

    @property
    def imap_enabled(self) -> bool:
        return bool(self.imap_host)

    @property
    def smtp_enabled(self) -> bool:
        return bool(self.smtp_host)

    def agent(self, model: type[A]) -> A:
        """An agent's own settings from its ``OPSGATE_<AGENT>_*`` variables, read once; ConfigError names a bad one."""
        found = self._agent_settings.get(model)
        if found is None:
            found = self._agent_settings[model] = read_agent_settings(model, self.agent_environ)
        assert isinstance(found, model)
        return found

    def check(self) -> None:
        """Cross-field checks that a single field cannot express; raise ConfigError naming the variable."""
        for name, members in {"OPSGATE_APPROVERS": self.approvers, **{
            f"{_GROUP_PREFIX}{g.upper()}": m for g, m in self.approver_groups.items()
        }}.items():
            bad = [m for m in members if not is_identity(m)]
            if bad:
                raise ConfigError(f"{name}: {', '.join(bad)} is not {IDENTITY_HELP}")
        self.people  # noqa: B018 - parse OPSGATE_PEOPLE now, so a mistake stops the start
        if self.prometheus_multiproc_dir and not os.path.isdir(self.prometheus_multiproc_dir):
            raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR: {self.prometheus_multiproc_dir} is not a directory "
                              "(create it, empty, before the opsgate processes start)")
        for name, raw in self.agent_model_raw.items():
            low, high = (0.0, 2.0) if name.startswith(_TEMPERATURE_PREFIX) else (0.001, 3600.0)
            try:
                value = float(raw)
            except ValueError:
                value = float("nan")
            if not low <= value <= high:
                raise ConfigError(f"{name}: {raw!r} is not a number from {low:g} to {high:g}")
        try:
            timing = self.approval_timing
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        for name in {t.escalate_to for t in (timing.every, *timing.agents.values()) if t.escalate_to}:
            if not self.approver_groups.get(name):
                raise ConfigError(f"OPSGATE_APPROVAL_ESCALATE_TO: group {name} has no members "
                                  f"(set {_GROUP_PREFIX}{name.upper()})")
        if self.imap_enabled:
            missing = [v for v, ok in (("IMAP_USERNAME", self.imap_username), ("IMAP_PASSWORD", self.imap_password),
                                       ("OPSGATE_EMAIL_ADDRESS", self.email_address)) if not ok]
            if missing:
                raise ConfigError(f"IMAP_HOST is set but {', '.join(missing)} is missing")
        if self.slack_bot_token and not (self.slack_signing_secret or self.slack_app_token):
            raise ConfigError("SLACK_BOT_TOKEN is set but neither SLACK_SIGNING_SECRET nor SLACK_APP_TOKEN is")


class AgentSettings(BaseModel):
    """Base of an agent's own settings (the agent owns them, bot/ does not know them).

    A subclass sets ``env_prefix`` (e.g. ``OPSGATE_DEPLOY_``) and aliases each field by its full variable name.
    A variable with the prefix that no field claims is refused, so a typo does not pass unnoticed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    env_prefix: ClassVar[str]


A = TypeVar("A", bound=AgentSettings)


def read_agent_settings(model: type[A], environ: Mapping[str, str]) -> A:
    """An agent's settings from the variables with its prefix; ConfigError names each bad one."""
    values = {key: value for key, value in environ.items() if key.startswith(model.env_prefix)}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            known = model.model_fields.get(field)
            name = (known.alias or field) if known else field
            reason = "not a known variable" if err["type"] == "extra_forbidden" else err["msg"]
            reason = reason.removeprefix("Value error, ")
            problems.append(f"{name}: {reason}" if err["loc"] else reason)
        raise ConfigError("bad configuration: " + "; ".join(problems)) from None


T = TypeVar("T")


def read_json_setting(variable: str, raw: str, adapter: TypeAdapter[T]) -> T:
    """A JSON-valued variable validated by ``adapter``; ConfigError names the variable, where and what is wrong."""
    try:
        return adapter.validate_python(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        detail = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = ".".join(str(p) for p in detail["loc"]) if detail else ""
        why = detail["msg"].removeprefix("Value error, ") if detail else str(exc)
        raise ConfigError(f"{variable}: {where + ': ' if where else ''}{why}") from None


def _agent_environ(env: Mapping[str, str]) -> dict[str, str]:
    """OPSGATE_* variables that Settings does not read itself (approver groups excluded), non-empty only."""
    own = {f.alias for f in Settings.model_fields.values() if f.alias}
    return {key: value for key, value in env.items()
            if key.startswith("OPSGATE_") and not key.startswith((_GROUP_PREFIX, _TEMPERATURE_PREFIX, _TIMEOUT_PREFIX))
            and key not in own and value.strip()}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from the environment (or a given mapping); raise ConfigError with the variable's name."""
    env = dict(os.environ if environ is None else environ)
    groups = {
        key[len(_GROUP_PREFIX):].lower(): value
        for key, value in env.items()
        if key.startswith(_GROUP_PREFIX) and len(key) > len(_GROUP_PREFIX) and value.strip()
    }
    agent_model = {key: value.strip() for key, value in env.items()
                   if key.startswith((_TEMPERATURE_PREFIX, _TIMEOUT_PREFIX)) and value.strip()}
    # Overrides (CLI flags) are given by field name; key them by alias so they beat the environment's value.
    overrides = {(Settings.model_fields[k].alias or k) if k in Settings.model_fields else k: v
                 for k, v in overrides.items()}
    try:
        if environ is None:
            settings = Settings(approver_groups_raw=groups, agent_environ=_agent_environ(env),
                                agent_model_raw=agent_model, **overrides)  # type: ignore[arg-type]
        else:
            fields = {f.alias: env[f.alias] for f in Settings.model_fields.values() if f.alias and env.get(f.alias)}
            settings = Settings.model_validate({**fields, "approver_groups_raw": groups,
                                                "agent_environ": _agent_environ(env), "agent_model_raw": agent_model,
                                                **overrides})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            alias = Settings.model_fields[field].alias if field in Settings.model_fields else field
            problems.append(f"{alias or field}: {err['msg']}")
        raise ConfigError("bad configuration: " + "; ".join(problems)) from None
    settings.check()
    return settings
