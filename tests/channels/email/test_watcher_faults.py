"""The mailbox watcher against a real Dovecot when mail is hostile: too big to download, or failing every time."""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from bot.store import Store
from channels.email.imap_watcher import ImapWatcher
from channels.email.inbound import InboundMail
from channels.email.intake import IntakeResult
from tests.channels.email.replies import new_mail
from tests.channels.email.test_imap_watcher import SEEN, Recorder, Running, _config, _mail, settled, store
from tests.support.mail_servers import Dovecot

__all__ = ["store"]  # the fixture


class Keeper(Recorder):
    """A recorder that keeps the mails themselves, and fails every time on ``always_fail``."""

    def __init__(self, always_fail: str | None = None) -> None:
        super().__init__()
        self.mails: list[InboundMail] = []
        self.always_fail = always_fail

    async def __call__(self, mail: InboundMail) -> IntakeResult:
        if mail.subject == self.always_fail:
            raise ValueError("a value the database refuses")
        self.mails.append(mail)
        return await super().__call__(mail)


async def test_a_mail_over_the_size_cap_is_handed_over_with_its_headers_only(
    dovecot_server: Dovecot, mailbox_user: str, store: Store
) -> None:
    """Above max_bytes only the header section is fetched: the handler gets the sender and subject, no text, and
    the size; smaller mail before and after it is read in full."""
    dovecot_server.append(mailbox_user, _mail("small"))
    dovecot_server.append(mailbox_user, new_mail("alice@example.com", "huge", "deploy api\n" + "x" * 300_000))
    dovecot_server.append(mailbox_user, _mail("small again"))
    keeper = Keeper()
    watcher = ImapWatcher(_config(dovecot_server, mailbox_user), store, keeper, max_bytes=100_000)
    with capture_logs() as logs:
        async with Running(watcher):
            await keeper.wait(3)
    small, huge, again = keeper.mails
    assert small.text == "text" and small.oversize is None and again.text == "text"
    assert huge.subject == "huge" and huge.sender == "alice@example.com" and huge.text == ""
    assert huge.oversize is not None and huge.oversize.size > 300_000 and huge.oversize.limit == 100_000
    assert [r["uid"] for r in logs if r["event"] == "email_too_large"] == [2]


async def test_a_mail_failing_every_time_is_quarantined_and_later_mail_still_read(
    dovecot_server: Dovecot, mailbox_user: str, store: Store
) -> None:
    """Poison mail: after three failed attempts it is quarantined (with the reason, listed by the store), flagged
    \\Seen, and the watcher moves on to the mail behind it; nothing is left in the failure count."""
    for subject in ("before", "poison", "after"):
        dovecot_server.append(mailbox_user, _mail(subject))
    keeper = Keeper(always_fail="poison")
    watcher = ImapWatcher(_config(dovecot_server, mailbox_user), store, keeper)
    started = time.monotonic()
    with capture_logs() as logs:
        async with Running(watcher):
            await keeper.wait(2, timeout=30)
            state = await settled(watcher, 3)
    assert keeper.subjects == ["before", "after"]
    assert state.failures == {}
    [item] = await store.list_quarantine()
    assert item.channel == "email" and item.attempts == 3 and "ValueError" in item.reason
    assert item.detail is not None and "subject 'poison'" in item.detail and "database refuses" in item.detail
    assert item.key.endswith("/2")
    assert [r["attempts"] for r in logs if r["event"] == "email_failed"] == [1, 2, 3]
    assert any(r["event"] == "email_quarantined" for r in logs)
    assert all(SEEN in flags for flags in dovecot_server.flags(mailbox_user).values())
    assert time.monotonic() - started < 30


async def test_the_failure_count_survives_a_restart(dovecot_server: Dovecot, mailbox_user: str, store: Store) -> None:
    """Attempts are counted in the stored mailbox state, so restarting opsgate does not give poison mail three
    fresh attempts each time: the count goes on where it stopped."""
    dovecot_server.append(mailbox_user, _mail("poison"))
    first = ImapWatcher(_config(dovecot_server, mailbox_user), store, Keeper(always_fail="poison"), max_attempts=3)
    async with Running(first):
        deadline = time.monotonic() + 10
        while (state := await first.load_state()) is None or not state.failures:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    counted = state.failures[1]  # 1, or 2 if the machine was slow to notice
    assert counted < 3 and await store.list_quarantine() == []
    second = ImapWatcher(_config(dovecot_server, mailbox_user), store, Keeper(always_fail="poison"),
                         max_attempts=counted + 1)
    async with Running(second):
        await settled(second, 1)
    [item] = await store.list_quarantine()
    assert item.attempts == counted + 1  # one more attempt after the restart, not a fresh count
