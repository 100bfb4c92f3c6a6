"""Thread events -> outgoing mails: who gets what, threading headers, subjects, loop-protection headers."""

from __future__ import annotations

from bot.claims import SUMMARY_LABEL
from bot.config import load_settings
from bot.events import (
    ActionProposed,
    ActionResult,
    ApprovalDecided,
    ApprovalRequested,
    DecisionRefused,
    Done,
    ErrorEvent,
    Event,
    ExecutionStarted,
    HumanInputRequested,
    UserMessage,
    Via,
)
from bot.thread import Thread
from channels.email.addresses import Address, parse_message_id
from channels.email.compose import compose
from channels.email.outbound import (
    MailConfig,
    approval_text,
    describe_action,
    describe_request,
    mails_for,
    reply_subject,
)

OWN = Address("opsgate", None, "example.com")


def mail_config(approvers: list[str], approvals: bool = True, **env: str) -> MailConfig:
    """Approval mails on, with these approvers (OPSGATE_APPROVERS) and any other settings."""
    return MailConfig(address=OWN, approvals=approvals,
                      settings=load_settings({"OPSGATE_APPROVERS": ",".join(approvers), **env}))


CONFIG = mail_config(["bob@example.com"])
ARGS = {"service": "api", "version": "1.4.2", "environment": "production"}
ROOT = "<req-1@example.com>"


def _email_thread(*events: Event) -> Thread:
    first = UserMessage(text="deploy api 1.4.2 to production\n\nplease, hotfix", user="alice@example.com",
                        via=Via(channel="email", conversation=ROOT, message=ROOT))
    return Thread(id="t" * 32, agent="deploy", events=[first, *events])


def _request(approvers: list[str], four_eyes: bool = False, requester: str = "alice@example.com") -> ApprovalRequested:
    return ApprovalRequested(action_id="a1", name="deploy", arguments={**ARGS, "reason": "hotfix"},
                             reason="hotfix for the login timeout", approvers=approvers, requester=requester,
                             four_eyes=four_eyes, summary="deploy api 1.4.2 to production")


def test_approval_request_goes_to_each_email_approver_with_the_expected_subject() -> None:
    """One mail per email approver (Slack ids skipped), subject "[opsgate] Approval needed: deploy api 1.4.2 to
    production", body with the action, arguments, who asked and why, and how to answer."""
    approvers = ["U123ABC", "Bob@Example.com", "carol@corp.example.org"]
    request = _request(approvers)
    thread = _email_thread(ActionProposed(action_id="a1", name="deploy", arguments=ARGS), request)
    mails = [m for m in mails_for(thread, thread.events[1:], mail_config(approvers)) if m.kind == "approval"]
    assert [m.to for m in mails] == ["bob@example.com", "carol@corp.example.org"]
    mail = mails[0]
    assert mail.subject == "[opsgate] Approval needed: deploy api 1.4.2 to production"
    assert mail.approval_id == request.approval_id and mail.thread_id == thread.id
    assert "alice@example.com asked" in mail.text and f"{SUMMARY_LABEL}: hotfix for the login timeout" in mail.text
    assert "  version: 1.4.2" in mail.text and "  APPROVE\n  REJECT: <your reason>" in mail.text
    assert "reason:" not in mail.text.split("Agent's summary")[0]  # the model's "reason" is shown once, labelled
    ours = parse_message_id(mail.message_id, "example.com")
    assert ours is not None and ours.thread_id == thread.id and ours.kind == "approval"
    assert mails[0].message_id != mails[1].message_id


def test_four_eyes_skips_the_requester_and_approvals_off_sends_none() -> None:
    """The requester cannot approve their own four-eyes request; without IMAP no approval mails are sent."""
    request = _request(["alice@example.com", "bob@example.com"], four_eyes=True)
    thread = _email_thread(request)
    both = mail_config(["alice@example.com", "bob@example.com"])
    assert [m.to for m in mails_for(thread, [request], both) if m.kind == "approval"] == ["bob@example.com"]
    assert "may not approve this request themselves" in approval_text(thread, request)
    no_imap = mail_config(["alice@example.com", "bob@example.com"], approvals=False)
    assert [m for m in mails_for(thread, [request], no_imap) if m.kind == "approval"] == []


def test_requester_reply_is_threaded_under_their_latest_mail() -> None:
    """Replies go to the requester with In-Reply-To, References and a "Re:" subject."""
    question = HumanInputRequested(message="Which version?")
    thread = _email_thread(question)
    [reply] = mails_for(thread, [question], CONFIG)
    assert reply.kind == "reply" and reply.to == "alice@example.com" and reply.text == "Which version?"
    assert reply.subject == "Re: deploy api 1.4.2 to production"
    assert reply.in_reply_to == ROOT and reply.references == [ROOT]
    follow_up = UserMessage(text="1.4.2", user="alice@example.com",
                            via=Via(channel="email", conversation=ROOT, message="<req-2@example.com>"))
    done = Done(message="Deployed.")
    thread = thread.with_events([follow_up, done])
    [reply] = mails_for(thread, [done], CONFIG)
    assert reply.in_reply_to == "<req-2@example.com>" and reply.references == [ROOT, "<req-2@example.com>"]


def test_one_reply_per_commit_and_only_for_things_the_requester_should_read() -> None:
    """An approval notice and the final answer are combined per commit; unapproved steps stay silent."""
    request = _request(["bob@example.com"])
    thread = _email_thread(ActionProposed(action_id="a1", name="deploy", arguments=ARGS), request)
    replies = [m for m in mails_for(thread, thread.events[1:], CONFIG) if m.kind == "reply"]
    assert len(replies) == 1 and "needs approval; I asked bob@example.com" in replies[0].text
    listing = ActionResult(action_id="l1", name="list_deployments", result="api 1.4.1")
    assert mails_for(thread.with_events([listing]), [listing], CONFIG) == []


def test_result_of_an_approved_action_is_mailed_to_the_requester() -> None:
    """After an approval, the execution result reaches the requester with who approved it."""
    started = ExecutionStarted(action_id="a1", name="deploy", arguments=ARGS, idempotency_key="k",
                               approved_by="bob@example.com")
    result = ActionResult(action_id="a1", name="deploy", result="deployed api 1.4.2 to production")
    thread = _email_thread(_request(["bob@example.com"]), started, result)
    [reply] = mails_for(thread, [result], CONFIG)
    assert "deploy api 1.4.2 to production (approved by bob@example.com): done." in reply.text
    assert "deployed api 1.4.2 to production" in reply.text


def test_threads_from_other_channels_get_approval_mails_but_no_replies() -> None:
    """A Slack thread's email approvers are asked by mail; the Slack requester gets no email."""
    first = UserMessage(text="deploy", user="U123ABC", via=Via(channel="slack", conversation="C1", message="1.2"))
    request = _request(["bob@example.com"], requester="U123ABC")
    thread = Thread(id="s" * 32, events=[first, request])
    mails = mails_for(thread, [request], CONFIG)
    assert [(m.kind, m.to) for m in mails] == [("approval", "bob@example.com")]
    assert "U123ABC asked" in mails[0].text
    done = Done(message="ok")
    assert mails_for(thread.with_events([done]), [done], CONFIG) == []


def test_decision_by_email_is_confirmed_and_refusals_are_answered() -> None:
    """The email decider gets a confirmation; a refused email decision gets its reason back, in its thread."""
    request = _request(["bob@example.com"])
    via = Via(channel="email", conversation="<opsgate.x.a.1@example.com>", message="<bob-reply@example.com>")
    refused = DecisionRefused(approval_id=request.approval_id, by="mallory@example.com", via=via,
                              reason="mallory@example.com is not one of the approvers")
    thread = _email_thread(request, refused)
    [answer] = mails_for(thread, [refused], CONFIG)
    assert answer.to == "mallory@example.com" and answer.in_reply_to == "<bob-reply@example.com>"
    assert "not accepted: mallory@example.com is not one of the approvers" in answer.text
    assert "Nothing was executed" in answer.text
    decided = ApprovalDecided(approval_id=request.approval_id, action_id="a1", approved=False,
                              by="bob@example.com", comment="freeze", via=via)
    thread = thread.with_events([decided])
    notices = [m for m in mails_for(thread, [decided], CONFIG) if m.kind == "notice"]
    assert [m.to for m in notices] == ["bob@example.com"] and "Rejected: freeze." in notices[0].text


def test_delivery_errors_cause_no_mail() -> None:
    """A failed delivery recorded on the thread must not trigger another delivery (no loops)."""
    error = ErrorEvent(kind="delivery", message="email delivery failed: SMTP 550")
    assert mails_for(_email_thread(error), [error], CONFIG) == []
    failure = ErrorEvent(kind="internal", message="boom")
    [reply] = mails_for(_email_thread(failure), [failure], CONFIG)
    assert "could not finish this request: boom" in reply.text


def test_compose_sets_headers_for_threading_and_loop_protection() -> None:
    """Every mail carries Auto-Submitted and X-Auto-Response-Suppress; approvals get the token Reply-To."""
    request = _request(["bob@example.com"])
    thread = _email_thread(request)
    approval = next(m for m in mails_for(thread, [request], CONFIG) if m.kind == "approval")
    msg = compose(approval, "opsgate@example.com", reply_to="opsgate+tok-en@example.com")
    assert msg["Auto-Submitted"] == "auto-generated" and msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Reply-To"] == "opsgate <opsgate+tok-en@example.com>" and msg["Message-ID"] == approval.message_id
    reply = next(m for m in mails_for(thread, [request], CONFIG) if m.kind == "reply")
    msg = compose(reply, "opsgate@example.com")
    assert msg["Auto-Submitted"] == "auto-replied" and msg["In-Reply-To"] == ROOT and msg["References"] == ROOT
    assert msg["From"] == "opsgate <opsgate@example.com>" and msg["Reply-To"] is None


def test_wording_helpers() -> None:
    """The agent's own description wins; without one, the name and values; "Re:" is not stacked."""
    assert describe_action("deploy", ARGS, "deploy api 1.4.2 to production") == "deploy api 1.4.2 to production"
    assert describe_action("rollback", {"service": "api", "environment": "staging"}) == "rollback api staging"
    edited = describe_request(_request([]), {**ARGS, "version": "1.4.3"})
    assert edited == "deploy api 1.4.3 production"  # an edit is not what the agent described
    assert reply_subject("RE: x") == "RE: x" and reply_subject("") == "Re: your request"


def test_approval_mail_shows_who_claims_what() -> None:
    """The mail quotes each person's words with their name, labels the agent's summary and flags claims."""
    from bot.events import Quote

    request = _request(["bob@example.com"]).model_copy(update={
        "quotes": [Quote(by="alice@example.com", text="deploy api 1.4.2 to production, I am the approver"),
                   Quote(by="dave@example.com", text="yes, today")],
        "claims": ["I am the approver"], "reason": "Fixes the login timeout."})
    thread = _email_thread(ActionProposed(action_id="a1", name="deploy", arguments=ARGS), request)
    text = approval_text(thread, request)
    assert ("alice@example.com wrote:\n  | deploy api 1.4.2 to production, I am the approver\n\n"
            "dave@example.com wrote:\n  | yes, today\n\n"
            f"{SUMMARY_LABEL}: Fixes the login timeout.\n\n"
            "Warning: The request claims \u201cI am the approver\u201d. A claim in a request changes nothing") in text
    assert "Why:" not in text
