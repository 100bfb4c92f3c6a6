"""People across Slack and email, through the real service, store and SMTP server: who may approve by email is
who gets the approval mail, and a Slack requester stays the same person when they answer by email."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.errors import NotAuthorized
from bot.events import ApprovalDecided, DecisionRefused, Via
from bot.people import Actor
from tests.channels.email.replies import gmail_reply
from tests.channels.email.test_intake import BOB, CAROL, DEPLOY, Mailroom, _mailroom, _settings
from tests.support.mail_servers import SmtpRecorder

SLACK = Via(channel="slack", conversation="C0OPS0001", message="1732270000.000100")


@pytest.fixture
async def room(tmp_path: Path, smtp_server: SmtpRecorder) -> AsyncIterator[Mailroom]:
    """Email channel with Bob and Carol as approvers; Bob's Slack id is mapped explicitly."""
    settings = _settings(tmp_path, smtp_server, OPSGATE_PEOPLE=f"bob=U0BOB,{BOB}")
    async for built in _mailroom(settings, smtp_server):
        yield built


async def slack_request(room: Mailroom, actor: Actor) -> str:
    """A production deploy asked from Slack by ``actor``, waiting for approval, its mails delivered."""
    thread = await room.runtime.service.start_thread(DEPLOY, user=actor, via=SLACK)
    advanced = await room.runtime.engine.advance(thread.id)
    assert advanced is not None and advanced.status == "waiting_for_approval"
    await room.flush()
    return thread.id


@pytest.mark.parametrize("actor", [Actor(id="U0BOB"), Actor(id="U0BOBNEW", email=BOB)],
                         ids=["mapped-slack-id", "slack-reported-email"])
async def test_a_slack_requester_gets_no_approval_mail_and_cannot_approve_by_email(
    room: Mailroom, actor: Actor
) -> None:
    """Bob asks from Slack (mapped id, or a Slack account reporting his address): only Carol is mailed, and
    Bob answering with Carol's forwarded mail is refused while his own request waits."""
    thread_id = await slack_request(room, actor)
    thread = await room.thread(thread_id)
    assert thread.requester_person == "bob"
    assert [m for m in room.smtp.to(BOB) if "Approval needed" in str(m.message["Subject"])] == []
    result = await room.receive(gmail_reply(room.approval_mail(CAROL), BOB, "APPROVE"))
    assert result.outcome == "refused"
    after = await room.thread(thread_id)
    assert after.status == "waiting_for_approval"
    assert not any(isinstance(e, ApprovalDecided) for e in after.events)
    assert [(r.by, r.by_person) for r in after.events if isinstance(r, DecisionRefused)] == [(BOB, "bob")]
    # Past the token check too: the decision itself, as the intake makes it, is four-eyes.
    pending = after.pending
    assert pending is not None
    with pytest.raises(NotAuthorized, match="four-eyes rule: bob"):
        await room.runtime.service.decide(thread_id, pending.approval_id, approved=True, user=BOB,
                                          via=Via(channel="email", message="<r1@example.com>"))


async def test_the_other_approver_approves_by_email_as_a_person(room: Mailroom) -> None:
    """Carol's mail names Bob as person and Slack id; her emailed approval counts and records her person."""
    thread_id = await slack_request(room, Actor(id="U0BOB"))
    text = room.approval_mail(CAROL).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "bob (U0BOB) asked" in text and "Four-eyes rule: bob (U0BOB) may not approve" in text
    result = await room.receive(gmail_reply(room.approval_mail(CAROL), CAROL, "APPROVE"))
    assert result.outcome == "decided"
    [decision] = [e for e in (await room.thread(thread_id)).events if isinstance(e, ApprovalDecided)]
    assert (decision.by, decision.by_person, decision.via.channel) == (CAROL, CAROL, "email")
