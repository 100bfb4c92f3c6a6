"""Pure parts of the inbox: session cookies, the timeline converter, and the Edit form from a schema."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import ClassVar, Literal

import pytest
from pydantic import Field as PydanticField

from bot.actions import Action
from bot.config import load_settings
from bot.events import (
    ActionProposed,
    ActionResult,
    AgentSelected,
    ApprovalDecided,
    ApprovalRequested,
    ArgumentChange,
    Done,
    ErrorEvent,
    Event,
    ExecutionStarted,
    HumanInputRequested,
    ModelCall,
    UserMessage,
    Via,
)
from bot.thread import Thread
from channels.web.auth import SESSION_SECONDS, Auth, Session, is_loopback, valid_identity
from channels.web.forms import edit_fields, submitted_arguments
from channels.web.timeline import timeline

# --- sessions -----------------------------------------------------------------------------------------------


def _auth(**env: str) -> Auth:
    return Auth(load_settings({"OPSGATE_HOST": "127.0.0.1", **env}))


async def test_anonymous_cookie_round_trip_and_tampering() -> None:
    """A pre-login cookie gives back its CSRF token; any change to payload or signature is rejected."""
    auth = _auth(OPSGATE_WEB_SECRET="k" * 32)
    cookie, session = auth.anonymous()
    assert await auth.current(cookie, None, None) == session
    payload, signature = cookie.rsplit(".", 1)
    assert await auth.current(payload + "x." + signature, None, None) is None
    assert await auth.current(payload + "." + signature[:-1] + ("A" if signature[-1] != "A" else "B"),
                              None, None) is None
    assert await auth.current("garbage", None, None) is None
    assert await auth.current(None, None, None) is None
    assert await _auth().current(cookie, None, None) is None  # another process's random secret


def test_cookie_carries_its_expiry() -> None:
    """A cookie is refused after SESSION_SECONDS even before the server looks up its session."""
    auth = _auth()
    cookie, _ = auth.anonymous()
    assert auth._decode(cookie, now=time.time() + SESSION_SECONDS - 60) is not None
    assert auth._decode(cookie, now=time.time() + SESSION_SECONDS + 60) is None


def test_login_url_only_on_loopback_without_token() -> None:
    """The printed login URL exists on loopback without OPSGATE_API_TOKEN, and is random per process."""
    first, second = _auth(), _auth()
    assert first.login_url("http://127.0.0.1:8080") == f"http://127.0.0.1:8080/login?token={first.login_token}"
    assert first.login_token != second.login_token
    assert _auth(OPSGATE_API_TOKEN="t").login_token is None
    assert _auth(OPSGATE_HOST="0.0.0.0").login_token is None
    assert _auth(OPSGATE_APPROVERS="alice@example.com").login_token is None  # approvers need proof, not a URL


def test_csrf_check() -> None:
    """Cookie sessions must echo their token; bearer sessions have none to echo."""
    session = Session(user="a", csrf="tok")
    assert Auth.csrf_ok(session, "tok")
    assert not Auth.csrf_ok(session, "other")
    assert not Auth.csrf_ok(session, None)
    assert not Auth.csrf_ok(None, "tok")
    assert Auth.csrf_ok(Session(user="a", csrf="", bearer=True), None)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("10.0.0.5", False), ("example.com", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    """Only loopback addresses count as local."""
    assert is_loopback(host) is loopback


def test_identities() -> None:
    """Identities are user names, Slack ids or emails: no spaces, no markup."""
    assert all(map(valid_identity, ["local", "U024BE7LH", "alice@example.com", "ci-bot"]))
    assert not any(map(valid_identity, ["", "two words", "<b>", "a" * 101, "-x"]))


# --- timeline -----------------------------------------------------------------------------------------------

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_timeline_tells_who_did_what() -> None:
    """Each event becomes a readable line: request, proposal, approval, decision with changes, result, errors."""
    call = ModelCall(model="m", prompt_hash="h", latency_ms=12)
    events: list[Event] = [
        UserMessage(text="ship it", user="alice", via=Via(channel="slack"), at=AT),
        AgentSelected(agent="deploy", reason="only agent", at=AT),
        ActionProposed(action_id="a1", name="deploy", arguments={"service": "api", "note": None},
                       reason="asked", call=call, at=AT),
        ApprovalRequested(action_id="a1", name="deploy", arguments={}, approvers=["bob"], group="ops",
                          requester="alice", four_eyes=True, at=AT),
        ApprovalDecided(approval_id="x", action_id="a1", approved=True, by="bob", comment="ok",
                        changes=[ArgumentChange(field="version", old="1", new="2")], via=Via(channel="web"), at=AT),
        ExecutionStarted(action_id="a1", name="deploy", arguments={}, idempotency_key="k", approved_by="bob", at=AT),
        ActionResult(action_id="a1", name="deploy", ok=False, result="boom", latency_ms=7, at=AT),
        ErrorEvent(kind="delivery", message="slack down", at=AT),
        HumanInputRequested(message="which version?", at=AT),
        Done(message="bye", at=AT),
    ]
    lines = timeline(Thread(id="t", agent="deploy", events=events))
    assert [(i.tone, i.who, i.headline) for i in lines] == [
        ("person", "alice", "asked via slack"),
        ("note", "opsgate", "agent deploy (only agent)"),
        ("agent", "deploy", "proposed deploy (by the model)"),
        ("approval", "opsgate", "deploy needs approval"),
        ("approved", "bob", "approved with changes via web"),
        ("note", "opsgate", "running deploy (approved by bob)"),
        ("failed", "opsgate", "deploy failed in 7 ms"),
        ("error", "opsgate", "error (delivery)"),
        ("agent", "deploy", "asks"),
        ("agent", "deploy", "replied"),
    ]
    assert lines[2].details == [("service", "api"), ("model", "m, 12 ms")]
    assert lines[3].details == [("approvers", "bob"), ("group", "ops"), ("four-eyes", "alice may not approve")]
    assert lines[4].details == [("version", "1 → 2")]
    assert lines[4].body == "ok"


def test_rejection_line() -> None:
    """A rejection shows its reason."""
    event = ApprovalDecided(approval_id="x", action_id="a", approved=False, by="bob", comment="not now")
    [line] = timeline(Thread(id="t", events=[event]))
    assert (line.tone, line.headline, line.body) == ("rejected", "rejected via api", "not now")


# --- the Edit form ------------------------------------------------------------------------------------------


class Tune(Action):
    """Tune a service."""

    name: ClassVar[str] = "tune"
    service: str = PydanticField(description="which service")
    environment: Literal["staging", "production"]
    replicas: int = 1
    ratio: float | None = None
    dry_run: bool = False
    note: str | None = None


def test_edit_fields_follow_the_schema() -> None:
    """Enums become selects, numbers number inputs, booleans checkboxes, the rest text; values prefilled."""
    fields = edit_fields(Tune, {"service": "api", "environment": "production", "dry_run": True})
    assert [(f.name, f.widget, f.value, f.required) for f in fields] == [
        ("service", "text", "api", True),
        ("environment", "select", "production", True),
        ("replicas", "number", "1", False),
        ("ratio", "number", "", False),
        ("dry_run", "checkbox", "true", False),
        ("note", "text", "", False),
    ]
    assert fields[1].choices == ["staging", "production"]
    assert fields[0].help == "which service"
    assert (fields[2].step, fields[3].step) == ("1", "any")


def test_submitted_arguments_validate_through_the_action() -> None:
    """The form reads back into arguments the action validates; cleared optionals become None."""
    form = {"arg.service": " web ", "arg.environment": "staging", "arg.replicas": "3", "arg.ratio": "",
            "arg.note": "", "csrf": "ignored"}
    arguments = submitted_arguments(Tune, form)
    assert arguments == {"service": "web", "environment": "staging", "replicas": "3", "ratio": None,
                         "dry_run": "false", "note": None}
    assert Tune.model_validate(arguments) == Tune(service="web", environment="staging", replicas=3)
    assert submitted_arguments(Tune, {"arg.dry_run": "true"})["dry_run"] == "true"
