"""The mailbox watcher against a real Dovecot: order, \\Seen only after handling, restarts, IDLE, polling,
reconnects and UIDVALIDITY changes. The handler here records mails (the intake is tested on its own)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bot.store import Store
from channels.email.imap_session import ImapConfig
from channels.email.imap_watcher import ImapWatcher, MailboxState
from channels.email.inbound import InboundMail
from channels.email.intake import IntakeResult
from storage import SqlStore, ensure_schema, store_for
from tests.channels.email.replies import new_mail
from tests.support.databases import sqlite_url
from tests.support.mail_servers import PASSWORD, Dovecot

SEEN = b"\\Seen"


class Recorder:
    """A handler that records subjects; ``fail_on`` makes it raise once for that subject (a crash mid-mail)."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.subjects: list[str] = []
        self.times: dict[str, float] = {}
        self.fail_on = fail_on

    async def __call__(self, mail: InboundMail) -> IntakeResult:
        if mail.subject == self.fail_on:
            self.fail_on = None
            raise RuntimeError("database went away")
        self.subjects.append(mail.subject)
        self.times[mail.subject] = time.monotonic()
        return IntakeResult("started")

    async def wait(self, count: int, timeout: float = 10.0) -> list[str]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while len(self.subjects) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.subjects} within {timeout}s")
            await asyncio.sleep(0.02)
        return self.subjects


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real SQLite store for the mailbox state."""
    url = sqlite_url(tmp_path / "opsgate.db")
    await ensure_schema(url)
    sql = store_for(url)
    yield sql
    await sql.close()


def _config(server: Dovecot, user: str, mailbox: str = "INBOX") -> ImapConfig:
    return ImapConfig("127.0.0.1", server.port, "none", user, PASSWORD, mailbox)


def _mail(subject: str) -> bytes:
    return new_mail("alice@example.com", subject, "text")


async def settled(watcher: ImapWatcher, last_uid: int, timeout: float = 10.0) -> MailboxState:  # noqa: ASYNC109
    """Wait until the stored state says everything up to ``last_uid`` was handled."""
    deadline = time.monotonic() + timeout
    while True:
        state = await watcher.load_state()
        if state is not None and state.last_uid >= last_uid and not state.pending:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"state {state} did not reach UID {last_uid}")
        await asyncio.sleep(0.02)


class Running:
    """A watcher task that is cancelled (and awaited) on exit."""

    def __init__(self, watcher: ImapWatcher) -> None:
        self.watcher = watcher
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.watcher.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_mail_is_handled_in_order_and_flagged_seen_after_handling(
    dovecot_server: Dovecot, mailbox_user: str, store: Store
) -> None:
    """Unseen mail present at the first start and mail arriving later (IDLE) are handled in UID order, each
    flagged \\Seen once handled; the last UID and UIDVALIDITY are stored."""
    for subject in ("one", "two"):
        dovecot_server.append(mailbox_user, _mail(subject))
    recorder = Recorder()
    watcher = ImapWatcher(_config(dovecot_server, mailbox_user), store, recorder, idle_renew=30)
    async with Running(watcher):
        assert await recorder.wait(2) == ["one", "two"]
        await asyncio.sleep(0.3)  # let the watcher enter IDLE
        appended = time.monotonic()
        uid = dovecot_server.append(mailbox_user, _mail("three"))
        assert await recorder.wait(3) == ["one", "two", "three"]
        idle_latency = recorder.times["three"] - appended
        await asyncio.sleep(0.2)
    assert idle_latency < 2.0, f"IDLE took {idle_latency:.2f}s to deliver"
    assert all(SEEN in flags for flags in dovecot_server.flags(mailbox_user).values())
    state = await watcher.load_state()
    assert state == MailboxState(uidvalidity=dovecot_server.uidvalidity(mailbox_user), last_uid=uid)


async def test_first_start_takes_seen_mail_as_handled(dovecot_server: Dovecot, mailbox_user: str, store: Store) -> None:
    """Pointing opsgate at a mailbox that people already read: only unseen mail is handled at the first start."""
    dovecot_server.append(mailbox_user, _mail("old and read"), flags=(SEEN,))
    dovecot_server.append(mailbox_user, _mail("unread"))
    recorder = Recorder()
    async with Running(ImapWatcher(_config(dovecot_server, mailbox_user), store, recorder)):
        await recorder.wait(1)
        await asyncio.sleep(0.3)
    assert recorder.subjects == ["unread"]


async def test_restart_never_repeats_and_never_skips(dovecot_server: Dovecot, mailbox_user: str, store: Store) -> None:
    """Mail handled before a stop is not handed over again; mail that arrived while stopped is, even if someone
    read it meanwhile (after the first start the last UID counts, not \\Seen)."""
    uid = dovecot_server.append(mailbox_user, _mail("before"))
    first = Recorder()
    watcher = ImapWatcher(_config(dovecot_server, mailbox_user), store, first)
    async with Running(watcher):
        await settled(watcher, uid)
    dovecot_server.append(mailbox_user, _mail("while stopped"))
    dovecot_server.append(mailbox_user, _mail("read by a person"), flags=(SEEN,))
    second = Recorder()
    async with Running(ImapWatcher(_config(dovecot_server, mailbox_user), store, second)):
        await second.wait(2)
        await asyncio.sleep(0.3)
    assert first.subjects == ["before"] and second.subjects == ["while stopped", "read by a person"]


async def test_a_failure_while_handling_is_retried_in_order(
    dovecot_server: Dovecot, mailbox_user: str, store: Store
) -> None:
    """A mail whose handling fails once is neither flagged nor skipped: the watcher counts the failure in its
    stored state, backs off, and handles it again before the mail behind it; the count goes once it is handled."""
    for subject in ("ok", "boom", "after"):
        dovecot_server.append(mailbox_user, _mail(subject))
    recorder = Recorder(fail_on="boom")
    watcher = ImapWatcher(_config(dovecot_server, mailbox_user), store, recorder)
    with capture_logs() as logs:
        async with Running(watcher):
            await recorder.wait(3)
            state = await settled(watcher, 3)
    assert recorder.subjects == ["ok", "boom", "after"]
    assert state.failures == {}
    assert [r["attempts"] for r in logs if r["event"] == "email_retry"] == [1]
    assert all(SEEN in flags for flags in dovecot_server.flags(mailbox_user).values())


async def test_polling_when_idle_is_off(dovecot_server: Dovecot, mailbox_user: str, store: Store) -> None:
    """With IDLE disabled the mailbox is polled at OPSGATE_EMAIL_POLL_INTERVAL."""
    recorder = Recorder()
    watcher = ImapWatcher(_config(dovecot_server, mailbox_user), store, recorder, idle=False, poll_interval=0.2)
    async with Running(watcher):
        await asyncio.sleep(0.3)
        dovecot_server.append(mailbox_user, _mail("polled"))
        assert await recorder.wait(1) == ["polled"]


async def test_reconnects_after_the_server_drops_the_connection(
    dovecot_server: Dovecot, mailbox_user: str, store: Store
) -> None:
    """When the server kicks the session, the watcher reconnects with backoff and keeps handling mail."""
    recorder = Recorder()
    with capture_logs() as logs:
        async with Running(ImapWatcher(_config(dovecot_server, mailbox_user), store, recorder, idle_renew=30)):
            dovecot_server.append(mailbox_user, _mail("first"))
            await recorder.wait(1)
            await asyncio.sleep(0.3)
            dovecot_server.kick(mailbox_user)
            await asyncio.sleep(0.3)
            dovecot_server.append(mailbox_user, _mail("after the drop"))
            await recorder.wait(2, timeout=15)
    assert recorder.subjects == ["first", "after the drop"]
    assert [r["event"] for r in logs if r["event"].startswith("imap_")].count("imap_connected") == 2
    assert any(r["event"] == "imap_disconnected" for r in logs)


async def test_uidvalidity_change_hands_over_unseen_mail_again(
    dovecot_server: Dovecot, mailbox_user: str, store: Store
) -> None:
    """A recreated mailbox (new UIDVALIDITY) makes the stored UIDs meaningless: its unseen mail is handed over
    (the intake's Message-ID refs drop what was already handled) and the new UIDVALIDITY is stored."""
    folder = "Requests"
    dovecot_server.append(mailbox_user, _mail("handled"), mailbox=folder)
    recorder = Recorder()
    watcher = ImapWatcher(_config(dovecot_server, mailbox_user, folder), store, recorder)
    async with Running(watcher):
        old = await settled(watcher, 1)
    client = dovecot_server.client(mailbox_user)
    client.delete_folder(folder)
    client.create_folder(folder)
    client.logout()
    await asyncio.sleep(1.1)  # Dovecot derives UIDVALIDITY from the clock
    dovecot_server.append(mailbox_user, _mail("in the new mailbox"), mailbox=folder)
    with capture_logs() as logs:
        async with Running(watcher):
            await recorder.wait(2)
    new = await watcher.load_state()
    assert recorder.subjects == ["handled", "in the new mailbox"]
    assert old is not None and new is not None and new.uidvalidity != old.uidvalidity and new.last_uid == 1
    assert any(r["event"] == "imap_uidvalidity_changed" for r in logs)


async def test_cancelling_during_idle_stops_promptly(dovecot_server: Dovecot, mailbox_user: str, store: Store) -> None:
    """Shutdown does not wait for the IDLE renewal: a blocked IDLE notices the stop within about a second."""
    watcher = ImapWatcher(_config(dovecot_server, mailbox_user), store, Recorder(), idle_renew=300)
    task = asyncio.create_task(watcher.run())
    await asyncio.sleep(0.5)
    started = time.monotonic()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert time.monotonic() - started < 3.0


class ArrivalOnSave(SqlStore):
    """A real store that, right after the watcher saves its state the first time, lets a new mail arrive: the
    moment between two IMAP commands when a server announces mail the next SEARCH does not yet see."""

    arrival: Any = None

    async def set_state(self, key: str, value: Any) -> None:
        await super().set_state(key, value)
        if self.arrival is not None:
            arrive, self.arrival = self.arrival, None
            await asyncio.to_thread(arrive)


async def test_mail_arriving_between_commands_is_not_missed(
    dovecot_server: Dovecot, mailbox_user: str, tmp_path: Path
) -> None:
    """Regression: a mail delivered just before a SEARCH is announced in that SEARCH's response but is not in
    its results, and IDLE on the same connection never repeats the announcement; the listening connection
    sees it and the synced search picks it up at once."""
    url = sqlite_url(tmp_path / "arrival.db")
    await ensure_schema(url)
    store = ArrivalOnSave.from_url(url)
    assert isinstance(store, ArrivalOnSave)
    store.arrival = lambda: dovecot_server.append(mailbox_user, _mail("squeezed in"))
    dovecot_server.append(mailbox_user, _mail("first"))
    recorder = Recorder()
    try:
        async with Running(ImapWatcher(_config(dovecot_server, mailbox_user), store, recorder, idle_renew=60)):
            assert await recorder.wait(2, timeout=5) == ["first", "squeezed in"]
    finally:
        await store.close()
