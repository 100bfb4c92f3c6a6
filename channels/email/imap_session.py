"""A blocking IMAP connection to one mailbox (imapclient). Every method is called through asyncio.to_thread.

Only what the watcher needs: connect and select, sync, list UIDs, fetch with ``BODY.PEEK[]`` (so reading does not
set ``\\Seen``), flag ``\\Seen`` after the mail was handled, and wait for new mail with IDLE.
"""

from __future__ import annotations

import contextlib
import select
import ssl
import threading
import time
from dataclasses import dataclass

from imapclient import SEEN, IMAPClient

from bot.config import Settings, TlsMode
from bot.errors import ConfigError

_DEFAULT_PORTS: dict[TlsMode, int] = {"ssl": 993, "starttls": 143, "none": 143}
_SOCKET_TIMEOUT = 60.0
_TICK = 0.5  # how often a blocked IDLE wait looks at the stop flag: bounds shutdown time
HEADER_BYTES = 64 * 1024  # of an oversized mail only this much of the header section is fetched


@dataclass(frozen=True)
class ImapConfig:
    """Which mailbox to watch, and how to reach it."""

    host: str
    port: int
    tls: TlsMode
    username: str
    password: str
    mailbox: str = "INBOX"

    @classmethod
    def from_settings(cls, settings: Settings) -> ImapConfig:
        """IMAP_* settings; ConfigError naming what is missing."""
        if not (settings.imap_host and settings.imap_username and settings.imap_password):
            raise ConfigError("IMAP_HOST, IMAP_USERNAME and IMAP_PASSWORD must all be set")
        port = settings.imap_port or _DEFAULT_PORTS[settings.imap_tls]
        return cls(settings.imap_host, port, settings.imap_tls, settings.imap_username, settings.imap_password,
                   settings.imap_mailbox)

    @property
    def state_key(self) -> str:
        """Where this mailbox's UIDVALIDITY and last processed UID are stored."""
        return f"email:imap:{self.username}@{self.host}:{self.port}/{self.mailbox}"


@dataclass(frozen=True)
class MailboxInfo:
    """What selecting the mailbox told us."""

    uidvalidity: int
    idle: bool


class ImapSession:
    """One logged-in connection with the mailbox selected (read-write, to set flags)."""

    def __init__(self, config: ImapConfig) -> None:
        self.config = config
        self.client: IMAPClient | None = None
        self.idling = False

    def connect(self) -> MailboxInfo:
        """Connect, log in, select the mailbox."""
        config = self.config
        context = ssl.create_default_context()
        client = IMAPClient(config.host, config.port, ssl=config.tls == "ssl", ssl_context=context,
                            timeout=_SOCKET_TIMEOUT)
        self.client = client
        if config.tls == "starttls":
            client.starttls(context)
        client.login(config.username, config.password)
        info = client.select_folder(config.mailbox)
        return MailboxInfo(uidvalidity=int(info[b"UIDVALIDITY"]), idle=client.has_capability("IDLE"))

    @property
    def _client(self) -> IMAPClient:
        if self.client is None:
            raise ConnectionError("IMAP session is not connected")
        return self.client

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than ``last_uid``, ascending (``n:*`` always returns the newest message: filter it)."""
        found = self._client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(uid for uid in found if uid > last_uid)

    def unseen_uids(self) -> list[int]:
        """UIDs without ``\\Seen``, ascending."""
        return sorted(self._client.search(["UNSEEN"]))

    def highest_uid(self) -> int:
        """The largest UID in the mailbox (0 when empty)."""
        return max(self._client.search(["ALL"]), default=0)

    def size(self, uid: int) -> int | None:
        """The message's RFC822.SIZE in bytes, before downloading it; None when it was expunged meanwhile."""
        data = self._client.fetch([uid], ["RFC822.SIZE"])
        value = data.get(uid, {}).get(b"RFC822.SIZE")
        return int(value) if value is not None else None

    def fetch_header(self, uid: int) -> bytes | None:
        """The first ``HEADER_BYTES`` of the header section only (for a mail too big to download)."""
        data = self._client.fetch([uid], [f"BODY.PEEK[HEADER]<0.{HEADER_BYTES}>"])
        entry = data.get(uid, {})
        header = next((value for key, value in entry.items() if key.startswith(b"BODY[HEADER]")), None)
        return bytes(header) if isinstance(header, bytes) else None

    def fetch(self, uid: int) -> bytes | None:
        """The raw message, without setting ``\\Seen``; None when it was expunged meanwhile."""
        data = self._client.fetch([uid], ["BODY.PEEK[]"])
        body = data.get(uid, {}).get(b"BODY[]")
        return bytes(body) if body is not None else None

    def mark_seen(self, uid: int) -> None:
        self._client.add_flags([uid], [SEEN], silent=True)

    def sync(self) -> None:
        """NOOP: bring this connection's view up to date, so the next SEARCH sees mail that arrived meanwhile
        (Dovecot, like most servers, updates a session's view only at the end of a command)."""
        self._client.noop()

    # --- IDLE, on a connection of its own ------------------------------------------------------------------
    # A SEARCH on the same connection could swallow the EXISTS announcing mail that arrived during it, and IDLE
    # never repeats an announcement. A second connection that only IDLEs sees every arrival; the first one syncs
    # and searches after each wake-up.

    def idle_start(self) -> None:
        """Enter IDLE (the connection then only listens)."""
        self._client.idle()
        self.idling = True

    def idle_wait(self, seconds: float, stop: threading.Event) -> bool:
        """Stay in IDLE up to ``seconds``; True as soon as new mail is announced. ConnectionError on hang-up."""
        client = self._client
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if not select.select([client.socket()], [], [], min(left, _TICK))[0]:
                continue
            responses = client.idle_check(timeout=0)
            if not responses:  # readable but nothing to read: the server closed the connection
                raise ConnectionError("IMAP server closed the connection during IDLE")
            if _announces_mail(responses):
                return True
        return False

    def idle_renew(self) -> bool:
        """Leave and re-enter IDLE (servers drop IDLE after 30 minutes); True if new mail was announced."""
        _, responses = self._client.idle_done()
        self._client.idle()
        return _announces_mail(responses)

    def close(self) -> None:
        """Log out (best effort) and drop the connection."""
        client, self.client = self.client, None
        if client is None:
            return
        if self.idling:  # a LOGOUT inside IDLE would wait for an answer that never comes: just hang up
            with contextlib.suppress(Exception):
                client.shutdown()
            return
        try:
            client.logout()
        except Exception:  # already broken: closing the socket is all that is left
            with contextlib.suppress(Exception):
                client.shutdown()


def _announces_mail(responses: list[tuple[object, ...]]) -> bool:
    return any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)
