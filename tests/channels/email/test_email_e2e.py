"""The email channel end to end: a real `opsgate serve` process, Dovecot (IMAP), aiosmtpd (SMTP), the scripted
model server and the deploy webhook receiver. Mail is "delivered" by IMAP APPEND, as an MTA would."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bot.claims import SUMMARY_LABEL
from tests.channels.email.conftest import raw_message
from tests.channels.email.replies import AUTHSERV, gmail_reply, new_mail
from tests.support.api_client import TOKEN, ApiClient
from tests.support.databases import sqlite_url
from tests.support.mail_servers import Dovecot, ReceivedMail, SmtpRecorder, imap_env, smtp_env
from tests.support.model_replies import slow, tool_call
from tests.support.model_server import ScriptedModelServer
from tests.support.processes import OpsgateProcess
from tests.support.webhook_receiver import WebhookReceiver

AGENT = "opsgate@example.com"
REQUESTER, APPROVER, MALLORY = "alice@example.com", "approver@example.com", "mallory@example.com"
SUBJECT = "[opsgate] Approval needed: deploy api 1.4.2 to production"

ServerFactory = Callable[..., Any]


class Mailbox:
    """The agent's mailbox on Dovecot plus the SMTP recorder: what people send and what opsgate sent."""

    def __init__(self, dovecot: Dovecot, user: str, smtp: SmtpRecorder) -> None:
        self.dovecot, self.user, self.smtp = dovecot, user, smtp

    def deliver(self, raw: bytes) -> int:
        return self.dovecot.append(self.user, raw)

    async def approval_for(self, approver: str = APPROVER) -> EmailMessage:
        [mail] = await self.smtp.wait_for(lambda m: m.rcpt_tos == [approver] and m.message["Subject"] == SUBJECT)
        return mail.message

    async def replies_to(
        self, who: str, count: int, contains: str = "", timeout: float = 15.0  # noqa: ASYNC109
    ) -> list[ReceivedMail]:
        """Wait for ``count`` mails to ``who`` whose text contains ``contains``."""
        return await self.smtp.wait_for(
            lambda m: m.rcpt_tos == [who] and contains in m.message.get_content(), count, timeout)


@pytest.fixture
def mailbox(dovecot_server: Dovecot, mailbox_user: str, smtp_server: SmtpRecorder) -> Mailbox:
    return Mailbox(dovecot_server, mailbox_user, smtp_server)


@pytest.fixture
async def start_server(
    tmp_path: Path, tmp_workdir: Path, mailbox: Mailbox, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> AsyncIterator[ServerFactory]:
    """Starts `opsgate serve` with the email channel on this test's mailbox; extra variables as keywords."""
    started: list[OpsgateProcess] = []

    async def start(**extra: str) -> OpsgateProcess:
        env = {
            "DATABASE_URL": sqlite_url(tmp_path / "opsgate.db"), "OPENAI_BASE_URL": model_server.base_url,
            "OPENAI_API_KEY": "test-key", "OPSGATE_API_TOKEN": TOKEN, "OPSGATE_APPROVERS": APPROVER,
            "OPSGATE_DEPLOY_WEBHOOK_URL": webhook.url, "OPSGATE_WEBHOOK_SECRET": "whsecret",
            "OPSGATE_POLL_INTERVAL": "0.05", "OPSGATE_MODEL_RETRIES": "1", "OPSGATE_EMAIL_ADDRESS": AGENT,
            "OPSGATE_EMAIL_POLL_INTERVAL": "0.2",
            **imap_env(mailbox.dovecot, mailbox.user), **smtp_env(mailbox.smtp), **extra,
        }
        process = OpsgateProcess(env, cwd=tmp_workdir)
        started.append(process)
        return await process.start()

    yield start
    for process in started:
        await process.kill()


def deploy_call() -> Any:
    return tool_call("deploy", reason="hotfix for the login timeout", service="api", version="1.4.2",
                     environment="production")


async def _thread(server: OpsgateProcess, thread_id: str) -> dict[str, Any]:
    api = ApiClient(server.url)
    try:
        return await api.thread(thread_id)
    finally:
        await api.aclose()


def _processed(server: OpsgateProcess, outcome: str) -> list[dict[str, Any]]:
    return [r for r in server.log_records() if r.get("event") == "email_processed" and r.get("outcome") == outcome]


async def test_approve_by_reply_executes_once_and_the_result_is_mailed_in_the_thread(
    start_server: ServerFactory, mailbox: Mailbox, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """New mail -> approval mail to the approver; a realistic APPROVE reply -> the deploy runs once (a replayed
    reply changes nothing) and the requester's mails all stay in their thread."""
    model_server.script(deploy_call(), tool_call("done_for_now", message="api 1.4.2 is live in production"))
    server = await start_server()
    request = new_mail(REQUESTER, "deploy api 1.4.2 to production", "Hi, please ship the login hotfix.",
                       message_id="<req-1@example.com>")
    mailbox.deliver(request)
    approval = await mailbox.approval_for()
    body = approval.get_content()
    assert "alice@example.com asked" in body and f"{SUMMARY_LABEL}: hotfix for the login timeout" in body
    assert str(approval["Reply-To"]).startswith("opsgate <opsgate+")
    assert webhook.calls == []

    reply = gmail_reply(approval, APPROVER, "APPROVE\n\nThanks,\nApprover", name="The Approver")
    mailbox.deliver(reply)
    await webhook.wait_for_calls(1, accepted=True)
    done = await mailbox.replies_to(REQUESTER, 1, contains="api 1.4.2 is live in production")
    mailbox.deliver(reply)  # the same message again (a re-delivery): a duplicate
    await server.wait_for_log(lambda r: len(_processed(server, "duplicate")) >= 1, timeout=10)
    assert len(webhook.calls) == 1 and webhook.calls[0].json["approved_by"] == APPROVER

    to_requester = mailbox.smtp.to(REQUESTER)
    subjects = {str(m.message["Subject"]) for m in to_requester}
    assert subjects == {"Re: deploy api 1.4.2 to production"}
    assert all(m.message["In-Reply-To"] == "<req-1@example.com>" for m in to_requester)
    assert all("<req-1@example.com>" in str(m.message["References"]) for m in to_requester)
    assert any("(approved by approver@example.com): done." in m.message.get_content() for m in to_requester)
    assert done[0].message["Auto-Submitted"] == "auto-replied"
    assert done[0].message["X-Auto-Response-Suppress"] == "All"


async def test_reject_reason_reaches_the_model_and_nothing_runs(
    start_server: ServerFactory, mailbox: Mailbox, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """"REJECT: reason" (an Outlook-style reply) is recorded and its reason is in the next model request."""
    model_server.script(deploy_call(), tool_call("done_for_now", message="Not deploying: the freeze holds."))
    await start_server()
    mailbox.deliver(new_mail(REQUESTER, "deploy api 1.4.2 to production", "please"))
    approval = await mailbox.approval_for()
    mailbox.deliver(gmail_reply(approval, APPROVER, "REJECT: change freeze until Monday\n\nKind regards,\nA."))
    await mailbox.replies_to(REQUESTER, 1, contains="the freeze holds")
    assert "change freeze until Monday" in model_server.last_user_content()
    assert webhook.calls == []


async def test_non_approver_reply_is_refused_and_nothing_runs(
    start_server: ServerFactory, mailbox: Mailbox, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """Someone who got the approval mail forwarded replies APPROVE: refused with an explanation, still waiting."""
    model_server.script(deploy_call())
    server = await start_server()
    mailbox.deliver(new_mail(REQUESTER, "deploy api 1.4.2 to production", "please"))
    approval = await mailbox.approval_for()
    mailbox.deliver(gmail_reply(approval, MALLORY, "APPROVE"))
    [refusal] = await mailbox.replies_to(MALLORY, 1)
    assert "not accepted" in refusal.message.get_content() and "is not one of the approvers" in (
        refusal.message.get_content())
    record = await server.wait_for_log(event="email_decision_refused")
    assert record["reason"] == "not-approver" and record["audit"] is True
    thread = await _thread(server, record["thread_id"])
    assert thread["status"] == "waiting_for_approval" and webhook.calls == []


async def test_forged_approver_with_failed_dmarc_is_refused(
    start_server: ServerFactory, mailbox: Mailbox, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """With OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID set, a reply "from" the approver whose DMARC failed is refused;
    the genuine reply afterwards approves."""
    model_server.script(deploy_call(), tool_call("done_for_now", message="deployed"))
    server = await start_server(OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID=AUTHSERV)
    mailbox.deliver(new_mail(REQUESTER, "deploy api 1.4.2 to production", "please"))
    approval = await mailbox.approval_for()
    mailbox.deliver(gmail_reply(approval, APPROVER, "APPROVE", dmarc="fail"))
    record = await server.wait_for_log(event="email_decision_refused")
    assert record["reason"] == "authentication" and "dmarc=fail" in record["detail"]
    assert webhook.calls == []
    mailbox.deliver(gmail_reply(approval, APPROVER, "APPROVE"))
    await webhook.wait_for_calls(1, accepted=True)
    assert not any("startup_warning" == r.get("event") and "AUTHSERV" in r.get("message", "")
                   for r in server.log_records())


async def test_auto_replies_and_bounces_are_ignored_without_answer(
    start_server: ServerFactory, mailbox: Mailbox
) -> None:
    """An out-of-office reply and a bounce are logged as ignored and answered with nothing."""
    server = await start_server()
    mailbox.deliver(raw_message("out_of_office"))
    mailbox.deliver(raw_message("bounce"))
    await server.wait_for_log(lambda r: len(_processed(server, "ignored")) == 2)
    reasons = sorted(r["reason"] for r in server.log_records() if r.get("event") == "email_ignored")
    assert reasons == ["auto-submitted", "auto-submitted"]
    warning = [r for r in server.log_records() if r.get("event") == "startup_warning"
               and "OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID" in r.get("message", "")]
    assert len(warning) == 1  # From addresses are trusted as-is: said clearly at start-up
    assert mailbox.smtp.messages == []


async def test_crash_mid_mailbox_then_restart_processes_each_mail_once(
    start_server: ServerFactory, mailbox: Mailbox, model_server: ScriptedModelServer
) -> None:
    """Killed (SIGKILL) in the middle of a mailbox while the model is thinking, one more mail arriving while it is
    down, restarted: every request gets exactly one thread and one answer. (A short worker lease, so the killed
    worker's claims expire quickly; the model is slow before the crash, so no answer is in flight.)"""
    phase = {"slow": True}
    model_server.responder = lambda _: (slow(30, tool_call("done_for_now", message="never sent"))
                                        if phase["slow"] else tool_call("done_for_now", message="here you go"))
    users = [f"user{n}@example.com" for n in range(4)]
    for user in users[:3]:
        mailbox.deliver(new_mail(user, "what can you do?", "hi"))
    server = await start_server(OPSGATE_LEASE_SECONDS="3")
    await server.wait_for_log(event="email_processed")
    await server.kill()
    phase["slow"] = False
    mailbox.deliver(new_mail(users[3], "what can you do?", "hi"))
    await server.start()
    for user in users:
        await mailbox.replies_to(user, 1, contains="here you go", timeout=20)
    # a mail committed just before the kill is replayed after it and found to be a duplicate
    await server.wait_for_log(lambda r: len(_processed(server, "started")) + len(_processed(server, "duplicate")) >= 4)
    assert len(_processed(server, "started")) <= 4
    api = ApiClient(server.url)
    try:
        listed = (await api.http.get("/threads")).json()
    finally:
        await api.aclose()
    assert len(listed["threads"] if isinstance(listed, dict) else listed) == 4
    assert all(len(mailbox.smtp.to(user)) == 1 for user in users)
    assert all(b"\\Seen" in flags for flags in mailbox.dovecot.flags(mailbox.user).values())


async def test_smtp_outage_then_recovery_delivers_exactly_once(start_server: ServerFactory, mailbox: Mailbox) -> None:
    """With the SMTP server down the answer waits in the outbox; once it is back it is delivered once."""
    mailbox.smtp.stop()
    server = await start_server()
    mailbox.deliver(new_mail(REQUESTER, "help", "!help"))
    await server.wait_for_log(event="outbox_retry", channel="email", timeout=15)
    mailbox.smtp.start()
    await mailbox.replies_to(REQUESTER, 1, timeout=20)
    await server.wait_for_log(event="outbox_sent", channel="email")
    assert len(mailbox.smtp.to(REQUESTER)) == 1


async def test_opsgate_email_runs_the_watcher_alone(mailbox: Mailbox, tmp_path: Path) -> None:
    """`opsgate email` turns mail into threads without serving HTTP or running the worker."""
    env = {"DATABASE_URL": sqlite_url(tmp_path / "alone.db"), "OPSGATE_EMAIL_ADDRESS": AGENT,
           **imap_env(mailbox.dovecot, mailbox.user)}
    env = OpsgateProcess(env, cwd=tmp_path).env  # the same clean environment as every opsgate test process
    log_path = tmp_path / "email.log"
    with log_path.open("wb") as log:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "email", cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        mailbox.deliver(new_mail(REQUESTER, "help", "!help"))
        deadline = time.monotonic() + 20
        while "email_thread_started" not in log_path.read_text():
            assert child.returncode is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.1)
        records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        started = next(r for r in records if r["event"] == "email_thread_started")
        assert started["sender"] == REQUESTER
        assert not any(r["event"] in ("worker_started", "opsgate_started") for r in records)
    finally:
        child.kill()
        await child.wait()
