"""Hostile mail end to end: a real `opsgate serve`, Dovecot and aiosmtpd. Huge and odd mail never stalls the
server, oversized mail is answered without being read, and a NUL Subject on PostgreSQL blocks nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import subprocess
import sys
import time

from storage.migrate import upgrade
from tests.channels.email.replies import new_mail
from tests.channels.email.test_email_e2e import Mailbox, ServerFactory, _processed, mailbox, start_server
from tests.support.api_client import ApiClient
from tests.support.databases import postgres_database
from tests.support.model_replies import tool_call
from tests.support.model_server import ScriptedModelServer
from tests.support.processes import OpsgateProcess

__all__ = ["mailbox", "start_server"]  # the fixtures

HEALTHZ_BOUND = 0.1  # seconds per /healthz round trip while hostile mail is processed (issue 10.1)


def _raw(sender: str, subject: str, body: bytes, encoding: str = "8bit") -> bytes:
    return (f"From: {sender}\r\nTo: opsgate@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{os.urandom(6).hex()}@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode() + body


def _hostile_mails() -> list[bytes]:
    blank_lines = _raw("blank@example.org", "blank lines", b"deploy api\r\n" + b"\r\n" * 20_000 + b"thanks\r\n")
    long_line = _raw("line@example.org", "one long line", b"deploy " + b"x" * 1_000_000 + b"\r\n")
    # Seeded: random bytes decode to ~40,000 typed characters or far fewer, depending on where a stray line looks
    # like a quote header; the test is about the work, so it is the same every run.
    noise = random.Random(2).randbytes(2_900_000)
    payload = base64.encodebytes(b"deploy api to staging\n" + noise).replace(b"\n", b"\r\n")
    big_base64 = _raw("base64@example.org", "base64 body", payload, "base64")
    return [blank_lines, long_line, big_base64]


# Polls /healthz back to back until stdin closes, then prints the round-trip times (JSON). A process of its own: in
# the test's process the poller would share the GIL with the scripted model and SMTP servers, and measure them.
_POLLER = """
import json, sys, threading, time
import httpx
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
times = []
with httpx.Client(base_url=sys.argv[1], timeout=10) as client:
    client.get("/healthz")
    print("ready", flush=True)
    while len(times) < 20 or not stop.is_set():
        started = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        times.append(time.perf_counter() - started)
        time.sleep(0.01)
print(json.dumps(times), flush=True)
"""


class HealthPoller:
    """The /healthz poller process: started, then stopped to collect its round-trip times."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", _POLLER, url], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    async def ready(self) -> None:
        assert self.process.stdout is not None
        assert (await asyncio.to_thread(self.process.stdout.readline)).strip() == "ready"

    async def stop(self) -> list[float]:
        output, _ = await asyncio.to_thread(self.process.communicate, "", 60)
        assert self.process.returncode == 0, output
        times: list[float] = json.loads(output.strip().splitlines()[-1])
        return times


def _move_to_inbox(mailbox: Mailbox) -> None:
    client = mailbox.dovecot.client(mailbox.user)
    try:
        client.select_folder("Staging")
        client.move(client.search(["ALL"]), "INBOX")
    finally:
        client.logout()


async def _hostile_run(start: ServerFactory, mailbox: Mailbox, **env: str) -> tuple[OpsgateProcess, list[float]]:
    """A warmed-up server (the first agent step of a process sets up the model client, which is not what these
    tests are about) is sent the hostile mails; /healthz is polled until all of them became threads."""
    server = await start(**env)
    mailbox.deliver(new_mail("warm@example.org", "hello", "what can you do?"))
    first = await server.wait_for_log(event="email_processed", outcome="started", timeout=30)
    api = ApiClient(server.url)
    try:
        await api.wait(first["thread_id"], "done", timeout=30)
    finally:
        await api.aclose()
    # Staged in another folder first (the test's own 4 MB APPEND would compete with the poller), then moved into
    # the inbox in one server-side command once the poller runs: all of the processing happens while it polls.
    for raw in _hostile_mails():
        mailbox.dovecot.append(mailbox.user, raw, mailbox="Staging")
    poller = HealthPoller(server.url)
    try:
        await poller.ready()
        await asyncio.sleep(0.2)
        await asyncio.to_thread(_move_to_inbox, mailbox)
        deadline = time.monotonic() + 60
        while len(_processed(server, "started")) < 4:
            assert time.monotonic() < deadline, "the mails were not processed within a minute"
            await asyncio.sleep(0.1)
    finally:
        times = await poller.stop()
    assert len({r["thread_id"] for r in _processed(server, "started")}) == 4
    return server, times


async def test_healthz_keeps_answering_while_hostile_mail_is_processed(
    start_server: ServerFactory, mailbox: Mailbox, model_server: ScriptedModelServer
) -> None:
    """20,000 blank lines, a 1 MB line and a 4 MB base64 body (the first froze the server for a minute): each
    becomes a thread, and /healthz answers every poll meanwhile in under 100 ms."""
    model_server.responder = lambda _: tool_call("done_for_now", message="noted")
    # The base64 body keeps ~40,000 typed characters: allowed here, so that it becomes a thread like the others.
    _, times = await _hostile_run(start_server, mailbox, OPSGATE_MAX_MESSAGE_CHARS="100000")
    assert max(times) < HEALTHZ_BOUND, f"slowest /healthz {max(times) * 1000:.0f} ms of {len(times)}"


async def test_an_oversized_mail_is_answered_without_being_read(
    start_server: ServerFactory, mailbox: Mailbox
) -> None:
    """Over OPSGATE_EMAIL_MAX_BYTES the body is never downloaded: no thread, and the sender learns the limit."""
    server = await start_server(OPSGATE_EMAIL_MAX_BYTES="65536")
    mailbox.deliver(new_mail("alice@example.com", "logs attached", "deploy api\n" + "log line\n" * 40_000))
    [answer] = await mailbox.replies_to("alice@example.com", 1, contains="not read")
    assert "0.1 MB" in answer.message.get_content()
    assert [r["detail"] for r in _processed(server, "answered")] == ["too-large"]
    assert any(r.get("event") == "email_too_large" for r in server.log_records())


async def test_a_nul_subject_on_postgresql_blocks_nothing(
    start_server: ServerFactory, mailbox: Mailbox, model_server: ScriptedModelServer
) -> None:
    """On PostgreSQL (which refuses U+0000 and keys over 255 characters) a mail whose Subject decodes to NUL and
    one with a 1,000-character Message-ID are handled, and the normal mail behind them becomes a thread: the
    mailbox is not stuck."""
    model_server.responder = lambda _: tool_call("done_for_now", message="noted")
    async with postgres_database() as url:
        await upgrade(url)
        server = await start_server(DATABASE_URL=url)
        mailbox.deliver(_raw("nul@example.org", "=?utf-8?b?AA==?=", b"what is deployed?\r\n"))
        long_id = new_mail("long@example.org", "long id", "status?", message_id=f"<{'x' * 1_000}@example.org>")
        mailbox.deliver(long_id)
        mailbox.deliver(new_mail("alice@example.com", "deploy status", "what is deployed on staging?"))
        await server.wait_for_log(lambda r: len(_processed(server, "started")) == 3, timeout=30)
        started = _processed(server, "started")
        assert len({r["thread_id"] for r in started}) == 3
        events = {r.get("event") for r in server.log_records()}
        assert not events & {"email_failed", "email_quarantined", "imap_watcher_error"}
        mailbox.deliver(long_id)  # the same mail again: found by its (long) Message-ID, not a second thread
        await server.wait_for_log(lambda r: bool(_processed(server, "duplicate")), timeout=30)
        await server.kill()
