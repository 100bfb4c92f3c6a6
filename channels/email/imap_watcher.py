"""The mailbox watcher: new mail in, one message at a time, in UID order, never twice and never skipped.

Per mailbox we persist UIDVALIDITY and the last processed UID. A message counts as processed once its thread
events are committed (or it was ignored/answered); only then is it flagged ``\\Seen`` and the UID advanced. A
crash in between replays the message, and its Message-ID ref turns the replay into a no-op (DuplicateRef).

On the very first start, and when the server reports a new UIDVALIDITY (the old UIDs mean nothing any more),
the unseen messages are queued (``pending``, stored) and everything else is taken as already handled.

Waiting uses IDLE when the server offers it, on a second connection that does nothing else (renewed well before
the 29-minute limit), else polling. Before every search the working connection is synced with NOOP: a server
updates a session's view only at the end of a command, and an arrival announced in a SEARCH response would
otherwise be neither in its results nor announced again. A dropped connection is re-opened with backoff.
imapclient blocks, so every call runs in a thread; parsing (CPU work) runs in a worker process (parser_process).

Bounded work: the size (RFC822.SIZE) is fetched first; a mail over ``max_bytes`` is not downloaded, only the start
of its header section, and it reaches the handler with ``oversize`` set (answered briefly, or ignored if automatic).

Poison mail: when reading or handling a mail fails (anything but a dropped connection), the failure is counted per
UID in the stored state and the watcher retries after a backoff; the ``max_attempts``-th failure quarantines the
mail (``Store.quarantine``: recorded with the reason, logged, listed in the web inbox), flags it ``\\Seen`` and
moves on, so one bad mail never blocks the ones behind it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from imapclient.exceptions import IMAPClientError
from pydantic import BaseModel

from bot import telemetry
from bot.store import QuarantineItem, Store
from channels.email.imap_session import ImapConfig, ImapSession, MailboxInfo
from channels.email.inbound import InboundMail, Oversize
from channels.email.intake import IntakeResult
from channels.email.parser_process import parse_in_worker

log = structlog.get_logger("opsgate.email")

T = TypeVar("T")
_MAX_BACKOFF = 60.0
_STOP_WAIT = 3.0
MAX_ATTEMPTS = 3  # failed attempts at one mail before it is quarantined
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
Handler = Callable[[InboundMail], Awaitable[IntakeResult]]


def _backoff(failures: int) -> float:
    """1, 2, 4, … seconds after consecutive connection failures, at most a minute."""
    return min(2.0 ** max(failures - 1, 0), _MAX_BACKOFF)


class MailboxState(BaseModel):
    """What is stored per mailbox: UIDs up to ``last_uid`` are handled, except those still ``pending``."""

    uidvalidity: int
    last_uid: int
    pending: list[int] = []  # unseen UIDs found by a catch-up, not yet handled
    failures: dict[int, int] = {}  # UID -> failed attempts so far (a UID leaves once handled or quarantined)

    def handled(self, uid: int, *, last_uid: int | None = None) -> MailboxState:
        """The state after ``uid`` was handled: out of ``pending`` and ``failures``, ``last_uid`` moved if given."""
        return self.model_copy(update={
            "pending": [p for p in self.pending if p != uid],
            "failures": {u: n for u, n in self.failures.items() if u != uid},
            "last_uid": self.last_uid if last_uid is None else last_uid,
        })


class MailFailed(Exception):
    """Reading or handling one mail failed (not the connection); retried after a backoff, then quarantined."""

    def __init__(self, uid: int, attempts: int) -> None:
        super().__init__(f"mail UID {uid} failed {attempts} time(s)")
        self.uid = uid
        self.attempts = attempts


class ImapWatcher:
    """Runs forever: connect, catch up, handle new mail, wait (IDLE or poll), reconnect on failure."""

    def __init__(
        self, config: ImapConfig, store: Store, handle: Handler, *, idle: bool = True,
        idle_renew: float = 540.0, poll_interval: float = 30.0, max_bytes: int = DEFAULT_MAX_BYTES,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.config = config
        self.store = store
        self.handle = handle
        self.idle = idle
        self.idle_renew = idle_renew
        self.poll_interval = poll_interval
        self.max_bytes = max_bytes
        self.max_attempts = max_attempts
        self._stop = threading.Event()
        self._errors = 0  # unexpected errors in a row (reset by a handled mail): sets the backoff

    async def run(self) -> None:
        """The background loop (cancel it to stop; an IMAP call in progress ends within a second)."""
        self._stop.clear()
        failures = 0
        while True:
            session, listener = ImapSession(self.config), ImapSession(self.config)
            pause = _backoff(1)
            try:
                info = await self._call(session.connect)
                use_idle = info.idle and self.idle
                if use_idle:  # listening first: from now on no arrival can go unannounced
                    await self._call(listener.connect)
                    await self._call(listener.idle_start)
                failures = 0
                log.info("imap_connected", host=self.config.host, mailbox=self.config.mailbox,
                         uidvalidity=info.uidvalidity, idle=use_idle)
                await self._watch(session, info, listener if use_idle else None)
            except (IMAPClientError, OSError) as exc:
                failures += 1
                pause = _backoff(failures)
                log.warning("imap_disconnected", host=self.config.host, error=f"{type(exc).__name__}: {exc}",
                            retry_in_s=pause)
            except MailFailed as exc:
                pause = _backoff(exc.attempts)
                log.warning("email_retry", uid=exc.uid, attempts=exc.attempts, retry_in_s=pause)
            except Exception:  # e.g. the database is down: the watcher must outlive it, backing off
                self._errors += 1
                pause = _backoff(self._errors)
                log.exception("imap_watcher_error", mailbox=self.config.mailbox, retry_in_s=pause)
            finally:
                await asyncio.to_thread(listener.close)
                await asyncio.to_thread(session.close)
            await asyncio.sleep(pause)

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        """Run a blocking IMAP call in a thread; on cancellation, stop it and wait so the connection is free."""
        future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self._stop.set()
            await asyncio.wait([future], timeout=_STOP_WAIT)  # an IDLE wait notices the flag within a second
            raise

    # --- state ------------------------------------------------------------------------------------------------

    async def load_state(self) -> MailboxState | None:
        """The stored UIDVALIDITY and last UID of this mailbox, if any."""
        value = await self.store.get_state(self.config.state_key)
        return MailboxState.model_validate(value) if value is not None else None

    async def _save(self, state: MailboxState) -> None:
        await self.store.set_state(self.config.state_key, state.model_dump())

    # --- the loop ---------------------------------------------------------------------------------------------

    async def _watch(self, session: ImapSession, info: MailboxInfo, listener: ImapSession | None) -> None:
        state = await self.load_state()
        if state is None or state.uidvalidity != info.uidvalidity:
            state = await self._catch_up(session, info, state)
        renew_at = time.monotonic() + self.idle_renew
        while True:
            while state.pending:
                uid = state.pending[0]
                await self._process(session, uid, state)
                state = state.handled(uid)
                await self._save(state)
            await self._call(session.sync)
            for uid in await self._call(session.uids_after, state.last_uid):
                await self._process(session, uid, state)
                state = state.handled(uid, last_uid=uid)
                await self._save(state)
            if listener is None:
                await asyncio.sleep(self.poll_interval)
                continue
            # Wait for an announcement; renew IDLE on time, and search anyway after a renewal (belt and braces).
            left = renew_at - time.monotonic()
            if left <= 0 or not await self._call(listener.idle_wait, left, self._stop):
                await self._call(listener.idle_renew)
                renew_at = time.monotonic() + self.idle_renew

    async def _catch_up(self, session: ImapSession, info: MailboxInfo, old: MailboxState | None) -> MailboxState:
        highest = await self._call(session.highest_uid)
        unseen = [uid for uid in await self._call(session.unseen_uids) if uid <= highest]
        if old is None:
            log.info("imap_first_start", mailbox=self.config.mailbox, unseen=len(unseen), highest_uid=highest)
        else:
            log.warning("imap_uidvalidity_changed", mailbox=self.config.mailbox, old=old.uidvalidity,
                        new=info.uidvalidity, unseen=len(unseen))
        # Saved before any is handled, so a crash mid-way resumes with what is left (never the whole list).
        state = MailboxState(uidvalidity=info.uidvalidity, last_uid=highest, pending=unseen)
        await self._save(state)
        return state

    async def _process(self, session: ImapSession, uid: int, state: MailboxState) -> None:
        """Read, parse and handle one mail, then flag it; a failure is counted (MailFailed) or quarantines it."""
        mail: InboundMail | None = None
        try:
            mail = await self._read(session, uid)
            if mail is None:
                log.info("email_vanished", uid=uid)  # expunged between SEARCH and FETCH
                return
            result = await self.handle(mail)
        except (IMAPClientError, OSError):  # the connection, not the mail: reconnect and try again
            raise
        except Exception as exc:
            await self._failed(session, uid, state, mail, exc)
            return
        telemetry.inbound_mail(result.outcome)
        await self._call(session.mark_seen, uid)
        self._errors = 0
        log.info("email_processed", uid=uid, outcome=result.outcome, thread_id=result.thread_id,
                 detail=result.detail or None, message_id=mail.message_id)

    async def _read(self, session: ImapSession, uid: int) -> InboundMail | None:
        """The parsed mail; only its headers when it is bigger than ``max_bytes``. Parsing runs in a process."""
        size = await self._call(session.size, uid)
        if size is None:
            return None
        if size > self.max_bytes:
            header = await self._call(session.fetch_header, uid)
            if header is None:
                return None
            log.warning("email_too_large", uid=uid, size=size, limit=self.max_bytes)
            return await parse_in_worker(header, Oversize(size=size, limit=self.max_bytes))
        raw = await self._call(session.fetch, uid)
        return None if raw is None else await parse_in_worker(raw)

    async def _failed(
        self, session: ImapSession, uid: int, state: MailboxState, mail: InboundMail | None, exc: Exception
    ) -> None:
        """Count a failure in the stored state and raise MailFailed; the last allowed one quarantines the mail."""
        attempts = state.failures.get(uid, 0) + 1
        error = f"{type(exc).__name__}: {exc}"
        log.error("email_failed", uid=uid, attempts=attempts, error=error, exc_info=exc,
                  message_id=mail.message_id if mail is not None else None)
        if attempts < self.max_attempts:
            await self._save(state.model_copy(update={"failures": {**state.failures, uid: attempts}}))
            raise MailFailed(uid, attempts) from exc
        about = (f"from {mail.sender or '(no sender)'}, subject {mail.subject!r}, Message-ID {mail.message_id}"
                 if mail is not None else "could not be read")
        item = QuarantineItem(
            channel="email", key=f"{self.config.state_key}#{state.uidvalidity}/{uid}",
            reason=f"failed {attempts} times: {type(exc).__name__}", detail=f"IMAP UID {uid} {about}: {error}",
            attempts=attempts,
        )
        await self.store.quarantine(item)
        await self._call(session.mark_seen, uid)
        log.error("email_quarantined", uid=uid, attempts=attempts, key=item.key, reason=item.reason)
