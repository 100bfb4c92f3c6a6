"""The approval lifecycle as policy: durations, the environment's overrides, and which setting wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.actions import Timing
from bot.config import load_settings
from bot.errors import ConfigError
from bot.lifecycle import BUILT_IN, NEVER, describe, parse_duration, parse_overrides, resolve

AT = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("15m", 900), ("4h", 14400), ("2d", 172800), ("1h30m", 5400), ("2.5", 2.5), ("1.5s", 1.5),
])
def test_durations_from_seconds_to_days(text: str, seconds: float) -> None:
    """Durations read as seconds, minutes, hours, days, combined, or plain seconds."""
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["off", "never", "0"])
def test_off_means_never(text: str) -> None:
    """off, never and 0 switch a timer off."""
    assert parse_duration(text) is None


@pytest.mark.parametrize("text", ["4x", "h", "1h 30m", "-5s", "0.5s", "91d", ""])
def test_bad_durations_are_refused_with_the_text(text: str) -> None:
    """Anything else (or outside 1s..90d) is a ValueError that quotes the input."""
    with pytest.raises(ValueError, match="duration|outside"):
        parse_duration(text)


def test_describe_reads_like_a_person_writes() -> None:
    """Durations in messages: 3s, 4h, 1h 30m, 2d."""
    assert [describe(timedelta(seconds=s)) for s in (3, 14400, 5400, 172800)] == ["3s", "4h", "1h 30m", "2d"]


def test_overrides_apply_to_every_agent_and_per_agent() -> None:
    """``4h,incident=15m``: 4 h for every agent, 15 min for the incident agent; per-agent values win."""
    overrides = parse_overrides("4h,incident=15m", "off", None, "deploy=oncall")
    assert overrides.for_agent("deploy") == Timing(timedelta(hours=4), NEVER, None, "oncall")
    assert overrides.for_agent("incident").expire_after == timedelta(minutes=15)


def test_an_override_given_twice_names_the_variable() -> None:
    """The same agent twice in one variable is a configuration mistake naming the variable."""
    with pytest.raises(ValueError, match="OPSGATE_APPROVAL_REMINDER: agent deploy is given twice"):
        parse_overrides(None, "deploy=1h,deploy=2h", None, None)


def test_the_action_beats_the_environment_which_beats_the_agent_default() -> None:
    """Action policy > environment (agent entry, then the bare value) > agent default > built in."""
    env = parse_overrides("2h", None, None, None)
    agent = Timing(expire_after=timedelta(hours=8), remind_every=timedelta(minutes=10))
    resolved = resolve(None, agent, env, "deploy", AT)
    assert resolved.expires_at == AT + timedelta(hours=2) and resolved.remind_every == timedelta(minutes=10)
    action = Timing(expire_after=timedelta(minutes=30), on_expiry="stop")
    resolved = resolve(action, agent, env, "deploy", AT)
    assert (resolved.expires_at, resolved.on_expiry) == (AT + timedelta(minutes=30), "stop")
    built_in = resolve(None, None, parse_overrides(None, None, None, None), "x", AT)
    assert built_in.expires_at == AT + BUILT_IN.expire_after  # type: ignore[operator]
    assert built_in.escalate_at is None and built_in.on_expiry == "reject"


def test_never_switches_off_expiry_and_escalation_needs_a_group() -> None:
    """An expiry of 0 means the request waits for a person; escalation without a group is off."""
    resolved = resolve(Timing(expire_after=NEVER, escalate_after=timedelta(hours=1)), None,
                       parse_overrides(None, None, None, None), "x", AT)
    assert resolved.expires_at is None and resolved.escalate_at is None


def test_settings_refuse_bad_durations_and_unknown_escalation_groups() -> None:
    """A typo or an escalation group without members stops the start, naming the variable."""
    with pytest.raises(ConfigError, match="OPSGATE_APPROVAL_EXPIRY: '4 hours' is not a duration"):
        load_settings({"OPSGATE_APPROVAL_EXPIRY": "4 hours"})
    with pytest.raises(ConfigError, match="OPSGATE_APPROVAL_ESCALATE_TO: group oncall has no members"):
        load_settings({"OPSGATE_APPROVAL_ESCALATE_TO": "oncall"})
    settings = load_settings({"OPSGATE_APPROVAL_ESCALATE_TO": "oncall", "OPSGATE_APPROVERS_ONCALL": "c@example.com"})
    assert settings.approval_timing.every.escalate_to == "oncall"


def test_audit_rows_say_expired_withdrawn_escalated_and_cancelled() -> None:
    """The audit export names how a request closed, escalations and cancellations, with the thread's outcome."""
    from bot.audit import audit_row
    from bot.events import ApprovalDecided, ApprovalEscalated, ThreadCancelled, Via
    from bot.store import AuditRecord

    def row(event: object) -> dict[str, object]:
        return audit_row(AuditRecord(thread_id="t1", agent="deploy", event=event, outcome="expired"))  # type: ignore[arg-type]

    expired = row(ApprovalDecided(approval_id="a", action_id="x", approved=False, by="opsgate", closed_by="expiry"))
    withdrawn = row(ApprovalDecided(approval_id="a", action_id="x", approved=False, by="bob", closed_by="withdrawal"))
    escalated = row(ApprovalEscalated(approval_id="a", group="oncall", approvers=["carol@example.com"]))
    cancelled = row(ThreadCancelled(by="bob", reason="wrong", via=Via(channel="email")))
    assert [r["decision"] for r in (expired, withdrawn, escalated, cancelled)] == [
        "expired", "withdrawn", "escalated", "cancelled"]
    assert expired["outcome"] == "expired" and cancelled["detail"] == "wrong | via email"
    assert escalated["detail"] == "group oncall: carol@example.com"
