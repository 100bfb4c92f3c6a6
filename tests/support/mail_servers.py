"""Real mail servers on loopback for tests: a throwaway Dovecot (IMAP) and an aiosmtpd recorder (SMTP).

Dovecot comes from the Debian package ``dovecot-imapd`` (CI installs it; this module installs nothing). It runs
with a private configuration under a temporary directory: any user name logs in with the password ``secret`` and
gets an empty maildir, so each test can take a fresh mailbox from one server. It needs root (imap-login drops
privileges to dovenull). Mail is seeded with IMAP APPEND.

``SmtpRecorder`` is an aiosmtpd ``Controller`` that records every message, can answer 4xx/5xx on demand, and can be
stopped and started again on the same port (an outage).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from imapclient import IMAPClient

from tests.support.servers import free_port

PASSWORD = "secret"
_INSTALL_HINT = "apt-get install -y dovecot-imapd"
_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
default_internal_group = dovecot
mail_location = maildir:{root}/mail/%u
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/home/%u
}}
first_valid_uid = 1
"""


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Dovecot:
    """A private Dovecot 2.3 IMAP server on 127.0.0.1 (IDLE, UIDPLUS, MOVE); ``start()`` waits until it listens."""

    def __init__(self, root: Path | None = None, port: int | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="opsgate-dovecot-"))
        self.port = port or free_port()
        self.config = self.root / "dovecot.conf"
        self._users = 0

    def start(self, timeout: float = 15.0) -> Dovecot:
        """Write the configuration and start the server; RuntimeError with a hint when Dovecot is missing."""
        binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
        if binary is None:
            raise RuntimeError(f"dovecot is not installed; CI must run: {_INSTALL_HINT}")
        if os.geteuid() != 0:
            raise RuntimeError("the test Dovecot must start as root (imap-login drops privileges to dovenull)")
        self.root.chmod(0o755)  # mkdtemp makes it 0700; the mail processes run as dovecot
        for sub in ("run", "state", "mail", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("mail", "home"):
            shutil.chown(self.root / sub, "dovecot", "dovecot")
        self.config.write_text(_CONFIG.format(root=self.root, port=self.port, password=PASSWORD))
        # Dovecot daemonizes; its children inherit stdout/stderr, so no pipes (they would never reach EOF).
        with (self.root / "start.log").open("wb") as out:
            result = subprocess.run([binary, "-c", str(self.config)], stdout=out, stderr=out,
                                    stdin=subprocess.DEVNULL, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"dovecot failed to start ({result.returncode}):\n"
                               f"{(self.root / 'start.log').read_text(errors='replace')}")
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if time.monotonic() > deadline:
                raise TimeoutError(f"dovecot did not listen on {self.port}:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop the server (all connections drop)."""
        self.doveadm("stop", check=False)
        deadline = time.monotonic() + 10
        while _accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def doveadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``doveadm -c <our config> ...``."""
        return subprocess.run(["doveadm", "-c", str(self.config), *args], check=check, capture_output=True,
                              text=True, timeout=30)

    def kick(self, user: str) -> None:
        """Disconnect every session of ``user`` (the server "drops" the client)."""
        self.doveadm("kick", user)

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / "dovecot.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def new_user(self, prefix: str = "agent") -> str:
        """A user name nobody used yet on this server: an empty mailbox."""
        self._users += 1
        return f"{prefix}{self._users}-{os.getpid()}"

    def client(self, user: str) -> IMAPClient:
        """A logged-in IMAPClient (caller logs out)."""
        client = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=10)
        client.login(user, PASSWORD)
        return client

    def append(self, user: str, raw: bytes, mailbox: str = "INBOX", flags: tuple[bytes, ...] = ()) -> int:
        """Deliver ``raw`` into the mailbox with IMAP APPEND; returns its UID."""
        client = self.client(user)
        try:
            if mailbox != "INBOX" and not client.folder_exists(mailbox):
                client.create_folder(mailbox)
            response = client.append(mailbox, raw, flags=flags)
        finally:
            client.logout()
        match = re.search(rb"APPENDUID \d+ (\d+)", response)
        if match is None:
            raise RuntimeError(f"APPEND gave no APPENDUID: {response!r}")
        return int(match.group(1))

    def flags(self, user: str, mailbox: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """UID -> flags of every message in the mailbox."""
        client = self.client(user)
        try:
            client.select_folder(mailbox, readonly=True)
            uids = client.search(["ALL"])
            data = client.fetch(uids, ["FLAGS"]) if uids else {}
        finally:
            client.logout()
        return {uid: tuple(item[b"FLAGS"]) for uid, item in data.items()}

    def uidvalidity(self, user: str, mailbox: str = "INBOX") -> int:
        client = self.client(user)
        try:
            return int(client.select_folder(mailbox, readonly=True)[b"UIDVALIDITY"])
        finally:
            client.logout()


# --- SMTP ---------------------------------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    """One message the SMTP recorder accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class _Handler:
    received: list[ReceivedMail] = field(default_factory=list)
    refusal: str | None = None  # e.g. "451 4.3.0 try again later" or "550 5.1.1 no such user"
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.refusal is not None:
                self.refused += 1
                return self.refusal
            content = envelope.original_content or envelope.content or b""
            raw = content.encode() if isinstance(content, str) else bytes(content)
            message = message_from_bytes(raw, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.received.append(ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message, raw))
        return "250 OK"


class SmtpRecorder:
    """An SMTP server on 127.0.0.1 that records messages; stop()/start() keep the port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.handler = _Handler()
        self._controller: Controller | None = None

    def start(self) -> SmtpRecorder:
        """Listen (again) on the same port."""
        if self._controller is None:
            self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
            self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until start()."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def refuse(self, reply: str | None) -> None:
        """Answer DATA with ``reply`` (``"451 ..."`` temporary, ``"550 ..."`` permanent); None accepts again."""
        with self.handler.lock:
            self.handler.refusal = reply

    @property
    def refused(self) -> int:
        """How many deliveries were answered with the refusal."""
        return self.handler.refused

    @property
    def messages(self) -> list[ReceivedMail]:
        with self.handler.lock:
            return list(self.handler.received)

    def to(self, address: str) -> list[ReceivedMail]:
        """The messages delivered to ``address``."""
        return [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_tos)]

    async def wait_for(
        self,
        match: Callable[[ReceivedMail], bool] = lambda m: True,
        count: int = 1,
        timeout: float = 15.0,  # noqa: ASYNC109 (a deadline in the failure message)
    ) -> list[ReceivedMail]:
        """Wait until ``count`` recorded messages match; return them (TimeoutError listing what arrived)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages if match(m)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = [(m.rcpt_tos, m.message["Subject"]) for m in self.messages]
                raise TimeoutError(f"{len(found)}/{count} matching mails within {timeout}s; received: {seen}")
            await asyncio.sleep(0.05)


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[Dovecot]:
    """One Dovecot for the whole session; tests take fresh mailboxes with ``mailbox_user``."""
    server = Dovecot().start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def mailbox_user(dovecot_server: Dovecot) -> str:
    """A user with an empty INBOX on the session's Dovecot."""
    return dovecot_server.new_user()


@pytest.fixture
def smtp_server() -> Iterator[SmtpRecorder]:
    """A started SMTP recorder, stopped after the test."""
    recorder = SmtpRecorder().start()
    try:
        yield recorder
    finally:
        recorder.stop()


def imap_env(server: Dovecot, user: str, **extra: Any) -> dict[str, str]:
    """IMAP_* variables pointing opsgate at ``user``'s mailbox on ``server``."""
    env = {"IMAP_HOST": "127.0.0.1", "IMAP_PORT": str(server.port), "IMAP_USERNAME": user,
           "IMAP_PASSWORD": PASSWORD, "IMAP_TLS": "none"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def smtp_env(recorder: SmtpRecorder) -> dict[str, str]:
    """SMTP_* variables pointing opsgate at the recorder (plain SMTP, no auth)."""
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(recorder.port), "SMTP_TLS": "none"}
