"""Approval policy in code (bot.policy) and decisions on pending approvals (bot.approvals)."""

from __future__ import annotations

from typing import Any

import pytest

from agents.deploy import AGENT
from agents.deploy.actions import Deploy, ListDeployments, Rollback
from bot.actions import Action, DoneForNow, RequestMoreInformation
from bot.approvals import decide
from bot.authorization import LOCAL_CHANNELS, Refusal, may_decide
from bot.config import Settings, load_settings
from bot.errors import AlreadyDecided, InvalidArguments, NotAuthorized, NotWaiting
from bot.events import (
    ActionProposed,
    ApprovalDecided,
    ApprovalRequested,
    Done,
    Event,
    HumanInputRequested,
    UserMessage,
    Via,
)
from bot.people import Actor
from bot.policy import approvers_for, gate
from bot.thread import PendingApproval, Thread

ALICE, BOB, CAROL, MALLORY = "alice@example.com", "bob@example.com", "U0CAROL", "mallory@example.com"
PROD = {"service": "api", "version": "1.4.2", "environment": "production"}
SLACK, API = Via(channel="slack"), Via(channel="api")


def settings(**env: str) -> Settings:
    return load_settings(env)


def authorize(
    user: Actor | str | None, pending: PendingApproval, channel: str, config: Settings, approving: bool = True
) -> None:
    """may_decide's answer as the signal service.decide raises for it."""
    answer = may_decide(user, pending, channel, config, approving=approving)
    if isinstance(answer, Refusal):
        raise answer.error()


CONFIGURED = settings(OPSGATE_APPROVERS=f"{ALICE},{BOB}", OPSGATE_APPROVERS_DEPLOYERS=f"{ALICE}, {BOB} ,{CAROL}")
GLOBAL_ONLY = settings(OPSGATE_APPROVERS=f"{ALICE},{BOB},{CAROL}")
OPEN = settings()


def proposal_for(action: Action) -> ActionProposed:
    return ActionProposed(name=action.name, arguments=action.model_dump(mode="json"))


def gated(action: Action, config: Settings = CONFIGURED, requester: str | None = BOB) -> list[Event]:
    return gate(proposal_for(action), action, config, requester)


def waiting_thread(action: Action, config: Settings = CONFIGURED, requester: str = BOB) -> Thread:
    """A thread that proposed ``action`` and waits for its approval."""
    events = [UserMessage(text="please", user=requester, via=SLACK), *gated(action, config, requester)]
    thread = Thread(id="t1", agent="deploy", events=events)
    assert thread.status == "waiting_for_approval", [e.type for e in events]
    return thread


def decide_on(thread: Thread, config: Settings = CONFIGURED, *, user: str | None = ALICE, approved: bool = True,
              via: Via = SLACK, **fields: Any) -> ApprovalDecided:
    pending = thread.pending
    assert pending is not None
    return decide(thread, AGENT, pending.approval_id, approved=approved, user=user, via=via, settings=config,
                  **fields)


# --- approvers from the environment -------------------------------------------------------------------


def test_group_members_come_from_opsgate_approvers_group() -> None:
    """OPSGATE_APPROVERS_DEPLOYERS is the deployers group; other groups fall back to OPSGATE_APPROVERS."""
    assert approvers_for("deployers", CONFIGURED) == [ALICE, BOB, CAROL]
    assert approvers_for("dba", CONFIGURED) == [ALICE, BOB]
    assert approvers_for(None, CONFIGURED) == [ALICE, BOB]
    assert approvers_for("deployers", GLOBAL_ONLY) == [ALICE, BOB, CAROL]
    assert approvers_for("deployers", OPEN) == []


def test_deploy_actions_belong_to_the_deployers_group() -> None:
    """deploy and rollback declare the deployers group in code."""
    assert Deploy.approval.group == "deployers"
    assert Rollback.approval.group == "deployers"


# --- gate: what follows a proposal ---------------------------------------------------------------------


def test_production_deploy_needs_deployers_with_four_eyes() -> None:
    """A production deploy asks the deployers group, names the requester, and applies four-eyes."""
    events = gated(Deploy(**PROD))  # type: ignore[arg-type]
    assert [e.type for e in events] == ["action_proposed", "approval_requested"]
    request = events[1]
    assert isinstance(request, ApprovalRequested)
    assert (request.group, request.approvers, request.requester, request.four_eyes) == (
        "deployers", [ALICE, BOB, CAROL], BOB, True)
    assert request.action_id == events[0].action_id  # type: ignore[union-attr]
    assert request.arguments == PROD


def test_staging_deploy_and_listing_run_without_approval() -> None:
    """Staging deploys and read-only listing are just proposed, then executed."""
    assert [e.type for e in gated(Deploy(service="api", version="1", environment="staging"))] == ["action_proposed"]
    assert [e.type for e in gated(ListDeployments())] == ["action_proposed"]


def test_rollback_always_needs_approval_and_four_eyes_only_in_production() -> None:
    """Rollback needs approval in every environment; the four-eyes rule only on production."""
    staging = gated(Rollback(service="api", environment="staging"))
    production = gated(Rollback(service="api", environment="production"))
    assert isinstance(staging[1], ApprovalRequested) and staging[1].four_eyes is False
    assert isinstance(production[1], ApprovalRequested) and production[1].four_eyes is True


def test_four_eyes_can_be_turned_off_and_is_off_in_open_mode() -> None:
    """OPSGATE_FOUR_EYES=false and open mode (no approvers) request approval without four-eyes."""
    action = Deploy(**PROD)  # type: ignore[arg-type]
    off = settings(OPSGATE_APPROVERS=ALICE, OPSGATE_FOUR_EYES="false")
    for config in (off, OPEN):
        request = gated(action, config)[1]
        assert isinstance(request, ApprovalRequested) and request.four_eyes is False
    open_request = gated(action, OPEN)[1]
    assert isinstance(open_request, ApprovalRequested) and open_request.approvers == []


def test_intents_become_a_question_or_a_reply() -> None:
    """request_more_information asks a person; done_for_now replies and finishes."""
    ask = gated(RequestMoreInformation(message="which version?"))
    assert isinstance(ask[1], HumanInputRequested) and ask[1].message == "which version?"
    assert ask[1].action_id == ask[0].action_id  # type: ignore[union-attr]
    done = gated(DoneForNow(message="bye"))
    assert isinstance(done[1], Done) and done[1].message == "bye"


# --- authorize: who may decide ------------------------------------------------------------------------


def pending_of(action: Action, config: Settings = CONFIGURED, requester: str = BOB) -> Any:
    return waiting_thread(action, config, requester).pending


def test_only_group_members_may_decide() -> None:
    """Members of the group decide (case-insensitively); others are refused, naming the group."""
    pending = pending_of(Deploy(**PROD))  # type: ignore[arg-type]
    authorize(ALICE, pending, "slack", CONFIGURED)
    authorize("ALICE@Example.com", pending, "email", CONFIGURED)
    authorize(CAROL, pending, "slack", CONFIGURED)
    with pytest.raises(NotAuthorized, match="not one of the group deployers for deploy"):
        authorize(MALLORY, pending, "slack", CONFIGURED)


def test_a_global_approver_outside_a_configured_group_is_refused() -> None:
    """When the group is configured, OPSGATE_APPROVERS alone does not allow deciding its actions."""
    config = settings(OPSGATE_APPROVERS=f"{ALICE},{MALLORY}", OPSGATE_APPROVERS_DEPLOYERS=CAROL)
    pending = pending_of(Deploy(**PROD), config)  # type: ignore[arg-type]
    with pytest.raises(NotAuthorized):
        authorize(MALLORY, pending, "slack", config)
    authorize(CAROL, pending, "slack", config)


def test_anonymous_decisions_are_refused() -> None:
    """A decision needs an identified user, even in open mode."""
    for config in (CONFIGURED, OPEN):
        with pytest.raises(NotAuthorized, match="identified user"):
            authorize(None, pending_of(Deploy(**PROD), config), "web", config)  # type: ignore[arg-type]


def test_four_eyes_forbids_approving_own_production_request_but_allows_rejecting_it() -> None:
    """The requester may not approve their production deploy; they may cancel (reject) it."""
    pending = pending_of(Deploy(**PROD), requester=BOB)  # type: ignore[arg-type]
    with pytest.raises(NotAuthorized, match="four-eyes"):
        authorize(BOB, pending, "slack", CONFIGURED)
    with pytest.raises(NotAuthorized, match="four-eyes"):
        authorize("Bob@Example.COM", pending, "slack", CONFIGURED)
    authorize(BOB, pending, "slack", CONFIGURED, approving=False)
    authorize(ALICE, pending, "slack", CONFIGURED)


def test_requester_may_approve_own_staging_rollback() -> None:
    """Outside production there is no four-eyes rule: an approver may approve their own rollback."""
    pending = pending_of(Rollback(service="api", environment="staging"), requester=BOB)
    authorize(BOB, pending, "slack", CONFIGURED)


@pytest.mark.parametrize("channel", sorted(LOCAL_CHANNELS))
def test_open_mode_accepts_local_channels(channel: str) -> None:
    """With no approvers configured, anyone identified on web, cli or api may decide, even their own request."""
    pending = pending_of(Deploy(**PROD), OPEN, requester=BOB)  # type: ignore[arg-type]
    authorize(BOB, pending, channel, OPEN)
    authorize(MALLORY, pending, channel, OPEN)


@pytest.mark.parametrize("channel", ["slack", "email", "telegram"])
def test_open_mode_refuses_remote_channels(channel: str) -> None:
    """With no approvers configured, Slack and email decisions are refused with how to fix it."""
    pending = pending_of(Deploy(**PROD), OPEN)  # type: ignore[arg-type]
    with pytest.raises(NotAuthorized, match="OPSGATE_APPROVERS"):
        authorize(ALICE, pending, channel, OPEN)


def test_local_channels_are_exactly_web_cli_api() -> None:
    """The open-mode channels are the locally authenticated ones."""
    assert frozenset({"web", "cli", "api"}) == LOCAL_CHANNELS


# --- decide: the decision event ----------------------------------------------------------------------


def test_approval_records_who_how_and_the_comment() -> None:
    """An approval becomes an ApprovalDecided with the approver, the channel and a trimmed comment."""
    thread = waiting_thread(Deploy(**PROD))  # type: ignore[arg-type]
    event = decide_on(thread, comment="  go ahead \n")
    pending = thread.pending
    assert pending is not None
    assert (event.approval_id, event.action_id, event.approved, event.by, event.comment, event.via) == (
        pending.approval_id, pending.action_id, True, ALICE, "go ahead", SLACK)
    assert event.arguments is None and event.changes == []
    assert decide_on(thread, comment="   ").comment is None


def test_requester_may_reject_own_request_with_a_comment() -> None:
    """Rejecting one's own production request is allowed (it cancels it)."""
    thread = waiting_thread(Deploy(**PROD), requester=BOB)  # type: ignore[arg-type]
    event = decide_on(thread, user=BOB, approved=False, comment="wrong version")
    assert (event.approved, event.by, event.comment) == (False, BOB, "wrong version")
    with pytest.raises(NotAuthorized, match="four-eyes"):
        decide_on(thread, user=BOB)


def test_edits_are_validated_and_recorded_as_changes() -> None:
    """Edited arguments are merged, validated, and recorded field by field."""
    thread = waiting_thread(Deploy(**PROD))  # type: ignore[arg-type]
    event = decide_on(thread, arguments={"version": "1.4.3"})
    assert event.arguments == {**PROD, "version": "1.4.3"}
    assert [c.model_dump() for c in event.changes] == [{"field": "version", "old": "1.4.2", "new": "1.4.3"}]


def test_edit_that_changes_nothing_is_a_plain_approval() -> None:
    """Re-sending the same values records no edit."""
    thread = waiting_thread(Deploy(**PROD))  # type: ignore[arg-type]
    event = decide_on(thread, arguments={"version": "1.4.2", "environment": "production"})
    assert event.arguments is None and event.changes == []


@pytest.mark.parametrize(("edit", "named"), [
    ({"environment": "moon"}, "environment"),
    ({"colour": "red"}, "colour: unknown argument"),
    ({"version": "1.4.3; curl evil"}, "version"),
    ({"service": None}, "service"),
])
def test_invalid_edits_are_refused_with_the_field(edit: dict[str, Any], named: str) -> None:
    """Edits that break the action's schema raise InvalidArguments naming the field."""
    thread = waiting_thread(Deploy(**PROD))  # type: ignore[arg-type]
    with pytest.raises(InvalidArguments, match=named):
        decide_on(thread, arguments=edit)


def test_edits_only_apply_to_approvals() -> None:
    """A rejection cannot carry edited arguments."""
    thread = waiting_thread(Deploy(**PROD))  # type: ignore[arg-type]
    with pytest.raises(InvalidArguments, match="only apply to an approval"):
        decide_on(thread, approved=False, arguments={"version": "1.4.3"})


def test_non_approver_is_refused_before_edits_are_looked_at() -> None:
    """Authorization comes first: a non-approver's edit is NotAuthorized, not InvalidArguments."""
    thread = waiting_thread(Deploy(**PROD))  # type: ignore[arg-type]
    with pytest.raises(NotAuthorized):
        decide_on(thread, user=MALLORY, arguments={"environment": "moon"})


def test_edit_into_production_applies_four_eyes_to_the_requester() -> None:
    """Editing one's own staging rollback into a production rollback cannot bypass the four-eyes rule."""
    thread = waiting_thread(Rollback(service="api", environment="staging"), requester=BOB)
    with pytest.raises(NotAuthorized, match="four-eyes"):
        decide_on(thread, user=BOB, arguments={"environment": "production"})


def test_edit_into_production_is_allowed_to_the_requester_when_four_eyes_is_off() -> None:
    """With OPSGATE_FOUR_EYES=false the requester may approve their edited production rollback."""
    config = settings(OPSGATE_APPROVERS=f"{ALICE},{BOB}", OPSGATE_FOUR_EYES="false")
    thread = waiting_thread(Rollback(service="api", environment="staging"), config, requester=BOB)
    event = decide_on(thread, config, user=BOB, arguments={"environment": "production"})
    assert event.arguments == {"service": "api", "environment": "production"}


def test_edit_into_production_by_another_approver_is_fine() -> None:
    """Four-eyes after an edit only bars the requester."""
    thread = waiting_thread(Rollback(service="api", environment="staging"), requester=BOB)
    assert decide_on(thread, user=ALICE, arguments={"environment": "production"}).approved


def test_already_decided_names_the_decider() -> None:
    """A second decision raises AlreadyDecided with who decided and how, and a readable message."""
    thread = waiting_thread(Deploy(**PROD))  # type: ignore[arg-type]
    first = decide_on(thread, user=CAROL, approved=False, comment="not today")
    decided = thread.with_events([first])
    with pytest.raises(AlreadyDecided) as info:
        decide(decided, AGENT, first.approval_id, approved=True, user=ALICE, via=SLACK, settings=CONFIGURED)
    assert (info.value.by, info.value.approved) == (CAROL, False)
    assert str(info.value) == f"already decided: rejected by {CAROL}"


def test_unknown_or_superseded_approval_is_not_waiting() -> None:
    """An approval id the thread never asked for, or an older request, raises NotWaiting."""
    thread = waiting_thread(Deploy(**PROD))  # type: ignore[arg-type]
    with pytest.raises(NotWaiting):
        decide(thread, AGENT, "no-such-approval", approved=True, user=ALICE, via=SLACK, settings=CONFIGURED)
    old = thread.pending
    assert old is not None
    newer = gated(Rollback(service="api", environment="production"))
    superseded = thread.with_events(newer)
    with pytest.raises(NotWaiting):
        decide(superseded, AGENT, old.approval_id, approved=True, user=ALICE, via=SLACK, settings=CONFIGURED)


def test_open_mode_decision_from_the_api_is_accepted_and_from_slack_refused() -> None:
    """decide applies the open-mode channel rule."""
    thread = waiting_thread(Deploy(**PROD), OPEN)  # type: ignore[arg-type]
    assert decide_on(thread, OPEN, user=BOB, via=API).approved
    with pytest.raises(NotAuthorized):
        decide_on(thread, OPEN, user=BOB, via=SLACK)
