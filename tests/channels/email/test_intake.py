"""Inbound mail through the real service and store: threads, continuations, decisions and every refusal.

No model runs: requests are explicit ``!deploy`` commands, advanced one step with the engine. Approval mails are
really sent (aiosmtpd) and replies are built from what was received, as a mail client would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bot.config import Settings, load_settings
from bot.errors import DeliveryFailed, DeliveryRetry
from bot.events import (
    ActionProposed,
    AgentSelected,
    ApprovalDecided,
    ApprovalRequested,
    DecisionRefused,
    HumanInputReceived,
    UserMessage,
    Via,
    new_id,
)
from bot.runtime import Runtime
from bot.thread import Thread
from bot.triggers import Triggers
from bot.wiring import build_registry
from channels.email import EmailChannel
from channels.email.inbound import Oversize, parse_mail
from channels.email.intake import Intake, IntakeResult
from channels.email.outbound import OutgoingMail
from channels.email.tokens import TOKEN_TTL
from storage import ensure_schema, store_for
from tests.channels.email.conftest import raw_message
from tests.channels.email.replies import AUTHSERV, auth_results, gmail_reply, new_mail
from tests.support.databases import sqlite_url
from tests.support.mail_servers import SmtpRecorder, smtp_env
from tests.support.old_rows import old_id, write_old_thread

ALICE, BOB, CAROL, MALLORY = "alice@example.com", "bob@example.com", "carol@corp.example.org", "mallory@example.com"
WATCHER = "watch@example.com"
DEPLOY = "!deploy service=api version=1.4.2 environment=production"


def _settings(tmp_path: Path, smtp: SmtpRecorder, **extra: str) -> Settings:
    return load_settings({
        "DATABASE_URL": sqlite_url(tmp_path / "opsgate.db"), "OPSGATE_EMAIL_ADDRESS": "opsgate@example.com",
        "OPSGATE_APPROVERS": f"{BOB},{CAROL}", "IMAP_HOST": "127.0.0.1", "IMAP_USERNAME": "agent",
        "IMAP_PASSWORD": "secret", **smtp_env(smtp), **extra,
    })


class Mailroom:
    """The runtime, the email channel, its intake, and helpers to deliver the outbox to the SMTP recorder."""

    def __init__(self, runtime: Runtime, channel: EmailChannel, intake: Intake, smtp: SmtpRecorder) -> None:
        self.runtime, self.channel, self.intake, self.smtp = runtime, channel, intake, smtp

    async def receive(self, raw: bytes) -> IntakeResult:
        return await self.intake.handle(parse_mail(raw))

    async def flush(self) -> list[OutgoingMail]:
        """Deliver every pending email outbox row through the channel (as the dispatcher would)."""
        rows = await self.runtime.store.claim_outbox("email", 100, 60)
        for row in rows:
            await self.channel.deliver(row)
            await self.runtime.store.outbox_sent(row.id)
        return [OutgoingMail.model_validate(r.payload) for r in rows]

    async def thread(self, thread_id: str) -> Thread:
        return await self.runtime.service.get_thread(thread_id)

    async def waiting_deploy(self, requester: str = ALICE) -> Thread:
        """A mailed !deploy to production, advanced to waiting_for_approval, its mails delivered."""
        result = await self.receive(new_mail(requester, "deploy please", DEPLOY))
        assert result.outcome == "started" and result.thread_id
        thread = await self.runtime.engine.advance(result.thread_id)
        assert thread is not None and thread.status == "waiting_for_approval", thread
        await self.flush()
        return thread

    def approval_mail(self, approver: str) -> EmailMessage:
        return [m for m in self.smtp.to(approver) if "Approval needed" in str(m.message["Subject"])][-1].message


async def _mailroom(settings: Settings, smtp: SmtpRecorder) -> AsyncIterator[Mailroom]:
    await ensure_schema(settings.database_url)
    store = store_for(settings.database_url)
    channel = EmailChannel(settings)
    runtime = Runtime(settings=settings, store=store, registry=build_registry(settings), channels=[channel],
                      model=None)
    intake = Intake(runtime.service, channel.config, settings.email_trusted_authserv_id, await channel.secret())
    yield Mailroom(runtime, channel, intake, smtp)
    await runtime.aclose()


@pytest.fixture
async def room(tmp_path: Path, smtp_server: SmtpRecorder) -> AsyncIterator[Mailroom]:
    """Email channel without authentication checks (OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID unset)."""
    async for built in _mailroom(_settings(tmp_path, smtp_server), smtp_server):
        yield built


@pytest.fixture
async def strict_room(tmp_path: Path, smtp_server: SmtpRecorder) -> AsyncIterator[Mailroom]:
    """Email channel that trusts Authentication-Results from mx.example.com only."""
    settings = _settings(tmp_path, smtp_server, OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID=AUTHSERV)
    async for built in _mailroom(settings, smtp_server):
        yield built


def _decisions(thread: Thread) -> list[ApprovalDecided]:
    return [e for e in thread.events if isinstance(e, ApprovalDecided)]


def _refusals(thread: Thread) -> list[DecisionRefused]:
    return [e for e in thread.events if isinstance(e, DecisionRefused)]


async def test_new_mail_starts_a_thread_and_approval_mails_reach_each_approver(room: Mailroom) -> None:
    """A mailed request becomes a thread (requester = From, via = its Message-ID); each approver gets a mail
    whose Reply-To carries a personal token; the requester hears that approval is needed, in their thread."""
    thread = await room.waiting_deploy()
    first = thread.first_message
    assert first is not None and first.user == ALICE and first.text == DEPLOY
    assert first.via.channel == "email" and first.via.message == first.via.conversation
    assert thread.agent == "deploy"
    bob, carol = room.approval_mail(BOB), room.approval_mail(CAROL)
    assert bob["Subject"] == "[opsgate] Approval needed: deploy api 1.4.2 to production"
    assert str(bob["Reply-To"]).startswith("opsgate <opsgate+") and bob["Reply-To"] != carol["Reply-To"]
    assert bob["Auto-Submitted"] == "auto-generated" and bob["X-Auto-Response-Suppress"] == "All"
    [notice] = room.smtp.to(ALICE)
    assert notice.message["In-Reply-To"] == first.via.message and notice.message["Subject"] == "Re: deploy please"
    assert "needs approval" in notice.message.get_content()


async def test_approve_reply_decides_once_and_a_replay_is_a_duplicate(room: Mailroom) -> None:
    """Bob's Gmail reply approves; the same message processed again changes nothing."""
    thread = await room.waiting_deploy()
    reply = gmail_reply(room.approval_mail(BOB), BOB, "APPROVE\n\nGo ahead.", name="Bob")
    assert (await room.receive(reply)).outcome == "decided"
    assert (await room.receive(reply)).outcome == "duplicate"
    [decision] = _decisions(await room.thread(thread.id))
    assert decision.approved and decision.by == BOB and decision.via.channel == "email"
    await room.flush()
    confirmation = [m for m in room.smtp.to(BOB) if "Recorded your decision" in m.message.get_content()]
    assert len(confirmation) == 1


async def test_reject_with_reason_is_recorded(room: Mailroom) -> None:
    """"REJECT: reason" rejects with that reason as the comment."""
    thread = await room.waiting_deploy()
    reply = gmail_reply(room.approval_mail(CAROL), CAROL, "REJECT: change freeze until Friday\n\nCarol")
    assert (await room.receive(reply)).detail == "rejected"
    [decision] = _decisions(await room.thread(thread.id))
    assert not decision.approved and decision.comment == "change freeze until Friday"


async def test_non_approver_with_a_forwarded_approval_is_refused(room: Mailroom) -> None:
    """Mallory replies to Bob's approval mail (forwarded to her): refused, recorded, answered, nothing decided."""
    thread = await room.waiting_deploy()
    with capture_logs() as logs:
        result = await room.receive(gmail_reply(room.approval_mail(BOB), MALLORY, "APPROVE"))
    assert (result.outcome, result.detail) == ("refused", "not-approver")
    after = await room.thread(thread.id)
    assert _decisions(after) == [] and after.status == "waiting_for_approval"
    assert [r.by for r in _refusals(after)] == [MALLORY]
    assert any(r["event"] == "email_decision_refused" and r["audit"] for r in logs)
    await room.flush()
    [answer] = room.smtp.to(MALLORY)
    assert "is not one of the approvers" in answer.message.get_content()


async def test_token_of_another_approver_is_refused(room: Mailroom) -> None:
    """Carol answering with Bob's token is refused: tokens are personal."""
    thread = await room.waiting_deploy()
    result = await room.receive(gmail_reply(room.approval_mail(BOB), CAROL, "APPROVE"))
    assert (result.outcome, result.detail) == ("refused", "bad-token")
    assert _decisions(await room.thread(thread.id)) == []


async def test_reply_without_token_is_refused(room: Mailroom) -> None:
    """A reply to the approval mail sent to the plain address (Reply-To dropped) cannot decide."""
    thread = await room.waiting_deploy()
    result = await room.receive(gmail_reply(room.approval_mail(BOB), BOB, "APPROVE", to="opsgate@example.com"))
    assert (result.outcome, result.detail) == ("refused", "no-token")
    assert _decisions(await room.thread(thread.id)) == []


async def test_unclear_reply_gets_the_format_and_changes_nothing(room: Mailroom) -> None:
    """A first line that is neither APPROVE nor REJECT: reason is answered with the expected format."""
    thread = await room.waiting_deploy()
    result = await room.receive(gmail_reply(room.approval_mail(BOB), BOB, "Sure, why not\nAPPROVE"))
    assert (result.outcome, result.detail) == ("refused", "unclear")
    assert _decisions(await room.thread(thread.id)) == []
    await room.flush()
    answer = [m for m in room.smtp.to(BOB) if "could not read a decision" in m.message.get_content()]
    assert len(answer) == 1 and "REJECT: <your reason>" in answer[0].message.get_content()


async def test_second_decision_is_told_who_decided_first(room: Mailroom) -> None:
    """After Bob approved, Carol's approval is refused as already decided."""
    thread = await room.waiting_deploy()
    await room.receive(gmail_reply(room.approval_mail(BOB), BOB, "APPROVE"))
    result = await room.receive(gmail_reply(room.approval_mail(CAROL), CAROL, "APPROVE"))
    assert (result.outcome, result.detail) == ("refused", "AlreadyDecided")
    after = await room.thread(thread.id)
    assert len(_decisions(after)) == 1 and "already decided" in _refusals(after)[0].reason


async def test_requester_cannot_approve_their_own_production_deploy_by_mail(room: Mailroom) -> None:
    """Four-eyes: Bob asked, so Bob gets no approval mail, and a reply with Carol's token is refused."""
    thread = await room.waiting_deploy(requester=BOB)
    assert not [m for m in room.smtp.to(BOB) if "Approval needed" in str(m.message["Subject"])]
    result = await room.receive(gmail_reply(room.approval_mail(CAROL), BOB, "APPROVE"))
    assert result.outcome == "refused"
    assert _decisions(await room.thread(thread.id)) == []


async def test_forged_from_fails_authentication(strict_room: Mailroom) -> None:
    """With a trusted authserv-id, a reply whose DMARC failed is refused even with the right token: recorded as
    decision_refused with the specific reason, and audited with the raw header it was judged on."""
    thread = await strict_room.waiting_deploy()
    forged = gmail_reply(strict_room.approval_mail(BOB), BOB, "APPROVE", dmarc="fail")
    with capture_logs() as logs:
        result = await strict_room.receive(forged)
    assert (result.outcome, result.detail) == ("refused", "authentication")
    after = await strict_room.thread(thread.id)
    assert _decisions(after) == [] and [r.by for r in _refusals(after)] == [BOB]
    [record] = [r for r in logs if r["event"] == "email_decision_refused"]
    assert record["audit"] is True and "dmarc=fail for example.com in the topmost" in record["detail"]
    assert record["authentication_results"] == auth_results(BOB, "fail")
    genuine = gmail_reply(strict_room.approval_mail(BOB), BOB, "APPROVE")
    assert (await strict_room.receive(genuine)).outcome == "decided"


async def test_unreadable_header_from_our_server_refuses_despite_a_forged_pass_below(strict_room: Mailroom) -> None:
    """Fail closed: the topmost header claiming our authserv-id cannot be parsed, so the decision is refused and
    the well-formed "dmarc=pass" a sender put further down is never read."""
    thread = await strict_room.waiting_deploy()
    broken = f"{AUTHSERV}; dkim=pass (unclosed header.d=example.com; dmarc=fail header.from=example.com"
    reply = gmail_reply(strict_room.approval_mail(BOB), BOB, "APPROVE", dmarc=None)
    forged_pass = f"Authentication-Results: {auth_results(BOB)}"
    raw = f"Authentication-Results: {broken}\r\n{forged_pass}\r\n".encode() + reply
    with capture_logs() as logs:
        result = await strict_room.receive(raw)
    assert (result.outcome, result.detail) == ("refused", "authentication")
    after = await strict_room.thread(thread.id)
    assert _decisions(after) == [] and "cannot be read (unclosed comment" in _refusals(after)[0].reason
    [record] = [r for r in logs if r["event"] == "email_decision_refused"]
    assert record["authentication_results"] == broken and "headers below it are not consulted" in record["detail"]


async def test_replies_continue_their_thread_by_headers_not_subject(room: Mailroom) -> None:
    """A reply to our mail continues the thread; a new mail with the same subject starts another one."""
    started = await room.receive(new_mail(ALICE, "status?", "what is deployed on staging?"))
    thread_id = started.thread_id
    assert thread_id is not None
    # the same subject in a new conversation is a new thread
    assert (await room.receive(new_mail(ALICE, "status?", "and production?"))).thread_id != thread_id
    first = (await room.thread(thread_id)).first_message
    assert first is not None and first.via.message
    ours = EmailMessage()
    ours["From"], ours["Subject"] = "opsgate <opsgate@example.com>", "Re: status?"
    ours["Message-ID"] = f"<opsgate.{thread_id}.r.0123abcd@example.com>"
    ours["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    ours.set_content("Which service?")
    result = await room.receive(gmail_reply(ours, ALICE, "the api service"))
    assert (result.outcome, result.thread_id) == ("continued", thread_id)
    texts = [e.text for e in (await room.thread(thread_id)).events if isinstance(e, UserMessage)]
    assert texts[-1] == "the api service"
    # a reply to the requester's own first mail (e.g. a colleague on Cc) finds the thread through our refs
    theirs = EmailMessage()
    theirs["From"], theirs["Subject"], theirs["Message-ID"] = ALICE, "status?", first.via.message
    theirs["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    theirs.set_content("what is deployed on staging?")
    result = await room.receive(gmail_reply(theirs, "dave@example.com", "me too"))
    assert (result.outcome, result.thread_id) == ("continued", thread_id)


async def test_message_while_waiting_for_approval_is_answered_not_lost(room: Mailroom) -> None:
    """The requester writing while a decision is pending is told so (via the outbox), and nothing changes."""
    thread = await room.waiting_deploy()
    [notice] = room.smtp.to(ALICE)
    result = await room.receive(gmail_reply(notice.message, ALICE, "any news?"))
    assert (result.outcome, result.thread_id) == ("answered", thread.id)
    after = await room.thread(thread.id)
    assert not [e for e in after.events if isinstance(e, HumanInputReceived)] and after.seq == thread.seq
    await room.flush()
    assert "waiting for an approval decision" in room.smtp.to(ALICE)[-1].message.get_content()


async def test_agent_is_chosen_by_plus_tag(room: Mailroom) -> None:
    """opsgate+deploy@ selects the deploy agent; an unknown tag falls back to the default agent."""
    for to in ("opsgate+deploy@example.com", "opsgate+nosuchagent@example.com"):
        result = await room.receive(new_mail(ALICE, "hi", "list deployments", to=to))
        assert result.thread_id is not None
        assert (await room.thread(result.thread_id)).agent == "deploy"


@pytest.mark.parametrize("name", ["bounce", "out_of_office", "list_mail"])
async def test_noise_is_ignored_and_nothing_is_stored_or_sent(room: Mailroom, name: str) -> None:
    """Bounces, auto-replies and list mail create nothing and get no answer."""
    result = await room.receive(raw_message(name))
    assert result.outcome == "ignored"
    assert await room.runtime.store.list_threads() == [] and await room.flush() == []


async def test_empty_mail_is_answered(room: Mailroom) -> None:
    """A mail without subject or text gets a short answer (and is not processed twice)."""
    raw = new_mail(ALICE, "", "")
    assert (await room.receive(raw)).outcome == "answered"
    assert (await room.receive(raw)).outcome == "duplicate"
    [answer] = await room.flush()
    assert answer.to == ALICE and "no text" in answer.text


async def test_approval_mail_older_than_the_token_lifetime_cannot_decide(room: Mailroom) -> None:
    """A token stops working TOKEN_TTL after its approval was requested (decide elsewhere then)."""
    old = datetime.now(UTC) - TOKEN_TTL - timedelta(hours=1)
    first = UserMessage(text="deploy api", user=ALICE, via=Via(channel="email", conversation="<r@x>", message="<r@x>"))
    proposal = ActionProposed(name="deploy", arguments={"service": "api", "version": "1.4.2",
                                                         "environment": "production"}, source="command")
    request = ApprovalRequested(action_id=proposal.action_id, name="deploy", arguments=proposal.arguments,
                                approvers=[BOB], requester=ALICE, at=old)
    thread = Thread(id=new_id(), events=[]).with_events(
        [first, AgentSelected(agent="deploy"), proposal, request])
    await room.runtime.journal.create(thread)
    await room.flush()
    result = await room.receive(gmail_reply(room.approval_mail(BOB), BOB, "APPROVE"))
    assert (result.outcome, result.detail) == ("refused", "expired")
    assert _decisions(await room.thread(thread.id)) == []


async def test_a_reply_to_the_approval_mail_of_a_thread_with_32_hex_ids_decides_it(room: Mailroom) -> None:
    """A thread made before ids got short (32-hex thread, action and approval ids, whole-JSON rows): its approval
    mail's Message-ID and token carry those ids, and Bob's reply to it finds the thread and approves."""
    first = UserMessage(id=old_id(), text=DEPLOY, user=ALICE,
                        via=Via(channel="email", conversation="<r@x>", message="<r@x>"))
    proposal = ActionProposed(id=old_id(), action_id=old_id(), name="deploy", source="command",
                              arguments={"service": "api", "version": "1.4.2", "environment": "production"})
    request = ApprovalRequested(id=old_id(), approval_id=old_id(), action_id=proposal.action_id, name="deploy",
                                arguments=proposal.arguments, approvers=[BOB], requester=ALICE)
    thread = Thread(id=old_id(), events=[]).with_events(
        [first, AgentSelected(id=old_id(), agent="deploy"), proposal, request])
    await write_old_thread(room.runtime.settings.database_url, thread, "waiting_for_approval")
    await room.runtime.store.add_outbox(room.channel.outbound(thread, thread.events))  # the mails sent back then
    await room.flush()
    mail = room.approval_mail(BOB)
    assert str(mail["Message-ID"]).strip().startswith(f"<opsgate.{thread.id}.a.")
    assert request.approval_id in str(mail["Reply-To"])
    assert (await room.receive(gmail_reply(mail, BOB, "APPROVE"))).outcome == "decided"
    [decision] = _decisions(await room.thread(thread.id))
    assert decision.approved and decision.approval_id == request.approval_id and decision.by == BOB


async def test_delivery_sorts_smtp_answers_into_retry_and_failure(room: Mailroom) -> None:
    """The channel's deliver(): a 451 is a DeliveryRetry (the row is kept), a 550 a DeliveryFailed."""
    await room.receive(new_mail(ALICE, "", ""))  # queues one answer
    [row] = await room.runtime.store.claim_outbox("email", 10, 60)
    room.smtp.refuse("451 4.7.1 greylisted, try again later")
    with pytest.raises(DeliveryRetry, match="451"):
        await room.channel.deliver(row)
    room.smtp.refuse("550 5.1.1 user unknown")
    with pytest.raises(DeliveryFailed, match="550"):
        await room.channel.deliver(row)
    room.smtp.refuse(None)
    await room.channel.deliver(row)
    [sent] = room.smtp.to(ALICE)
    assert sent.message["Auto-Submitted"] == "auto-generated" and sent.message["In-Reply-To"]


async def test_an_oversized_mail_from_a_person_is_answered_briefly_and_not_read(room: Mailroom) -> None:
    """A mail over the size cap (only its headers were fetched) starts nothing; the sender is told the limit."""
    raw = new_mail(ALICE, "deploy please", "")
    mail = parse_mail(raw, Oversize(size=12 * 1024 * 1024, limit=5 * 1024 * 1024))
    result = await room.intake.handle(mail)
    assert (result.outcome, result.detail) == ("answered", "too-large")
    assert (await room.intake.handle(mail)).outcome == "duplicate"
    assert await room.runtime.store.list_threads() == []
    [answer] = await room.flush()
    assert answer.to == ALICE and "12.0 MB" in answer.text and "5.0 MB" in answer.text


async def test_an_oversized_automatic_mail_is_ignored_without_an_answer(room: Mailroom) -> None:
    """The noise rules run on the headers of an oversized mail: an auto-reply gets no answer."""
    mail = parse_mail(raw_message("out_of_office"), Oversize(size=9_000_000, limit=5_000_000))
    assert (await room.intake.handle(mail)).outcome == "ignored"
    assert await room.flush() == []


async def test_cancel_from_the_requester_withdraws_the_request(room: Mailroom) -> None:
    """``CANCEL: reason`` in the requester's reply withdraws the pending request; they hear the outcome."""
    thread = await room.waiting_deploy()
    [notice] = room.smtp.to(ALICE)
    result = await room.receive(gmail_reply(notice.message, ALICE, "CANCEL: wrong version\n\nsorry"))
    assert (result.outcome, result.thread_id) == ("continued", thread.id)
    after = await room.thread(thread.id)
    assert (after.status, after.outcome) == ("done", "cancelled")
    assert [d.closed_by for d in _decisions(after)] == ["withdrawal"]
    await room.flush()
    text = room.smtp.to(ALICE)[-1].message.get_content()
    assert "Cancelled by alice@example.com: wrong version" in text and "Outcome: cancelled." in text


async def test_cancel_from_someone_else_changes_nothing(room: Mailroom) -> None:
    """Only the requester may cancel: anyone else's CANCEL is answered and the request stays pending."""
    thread = await room.waiting_deploy()
    [notice] = room.smtp.to(ALICE)
    result = await room.receive(gmail_reply(notice.message, MALLORY, "CANCEL"))
    assert result.outcome == "answered"
    assert (await room.thread(thread.id)).pending is not None
    await room.flush()
    assert "Nothing was cancelled: only the requester" in room.smtp.to(MALLORY)[-1].message.get_content()


async def test_a_reminder_mail_carries_its_own_token_and_its_reply_decides(
    tmp_path: Path, smtp_server: SmtpRecorder,
) -> None:
    """A reminder is an approval mail again (subject says so, Reply-To token): replying APPROVE to it decides."""
    settings = _settings(tmp_path, smtp_server, OPSGATE_APPROVAL_REMINDER="1s")
    async for room in _mailroom(settings, smtp_server):
        thread = await room.waiting_deploy()
        await asyncio.sleep(1.1)
        assert await room.runtime.timers.fire_due() == 1
        await room.flush()
        reminder = [m for m in room.smtp.to(BOB) if "Reminder 1" in str(m.message["Subject"])]
        assert len(reminder) == 1
        mail = reminder[0].message
        assert mail["Subject"] == "[opsgate] Reminder 1: Approval needed: deploy api 1.4.2 to production"
        assert str(mail["Reply-To"]).startswith("opsgate <opsgate+")
        assert "still waiting for a decision" in mail.get_content()
        result = await room.receive(gmail_reply(mail, BOB, "APPROVE"))
        assert result.outcome == "decided"
        assert [d.by for d in _decisions(await room.thread(thread.id))] == [BOB]


async def test_a_triggered_thread_is_followed_and_answered_by_mail(tmp_path: Path, smtp_server: SmtpRecorder) -> None:
    """OPSGATE_TRIGGER_EMAIL: a hook's thread is mailed to its followers (the opening message, then the agent's
    words, threaded under one root), and a follower's reply continues the thread; a person's mailed thread is
    not sent to them."""
    settings = _settings(tmp_path, smtp_server, OPSGATE_TRIGGER_EMAIL="Watch@example.com")
    async for room in _mailroom(settings, smtp_server):
        triggers = Triggers(settings, room.runtime.service)
        accepted = await triggers.deliver(agent="deploy", source="hook:deploy", text="disk almost full on db-1",
                                          delivery="d-1", group=None)
        assert accepted.thread_id is not None
        [opening] = [m for m in await room.flush() if m.to == WATCHER]
        assert opening.subject == "[opsgate] disk almost full on db-1" and opening.in_reply_to is None
        assert "hook:deploy wrote:" in opening.text and "> disk almost full on db-1" in opening.text
        await room.runtime.engine.advance(accepted.thread_id)  # no model: the agent says how to go on
        [update] = [m for m in await room.flush() if m.to == WATCHER]
        assert update.in_reply_to == opening.message_id and update.subject.startswith("Re: [opsgate] disk")

        sent = room.smtp.to(WATCHER)
        assert [str(m.message["Message-ID"]).strip() for m in sent] == [opening.message_id, update.message_id]
        result = await room.receive(gmail_reply(sent[-1].message, WATCHER, "freed 20 GB, all good now"))
        assert (result.outcome, result.thread_id) == ("continued", accepted.thread_id)
        thread = await room.thread(accepted.thread_id)
        said = [(e.user, e.text) for e in thread.events if isinstance(e, UserMessage)]
        assert said[-1] == (WATCHER, "freed 20 GB, all good now")

        await room.waiting_deploy()  # a person's mailed thread: its mails go to the person and approvers only
        assert len(room.smtp.to(WATCHER)) == 2  # nothing more: not their own reply, not the person's thread
