"""The email channel: mail to the agent address starts threads, approvers answer by authenticated reply, and
every outbound mail goes through the outbox.

Errors: configuration mistakes (missing OPSGATE_EMAIL_ADDRESS, half-set SMTP credentials) raise ConfigError
at construction; delivery problems become DeliveryRetry (4xx, connection) or DeliveryFailed (5xx); refused
decisions are signals answered by mail and audited in the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

import structlog

from bot.channel import BackgroundTask, Channel
from bot.config import Settings
from bot.errors import ConfigError, DeliveryFailed
from bot.events import Event, new_id
from bot.service import Service
from bot.store import OutboxItem, OutboxRow, Ref
from bot.thread import Thread
from channels.email.addresses import Address, make_message_id, normalize, ref_key
from channels.email.compose import compose
from channels.email.followers import follower_mails
from channels.email.imap_session import ImapConfig
from channels.email.imap_watcher import ImapWatcher
from channels.email.intake import APPROVAL_REF_CHANNEL, REF_CHANNEL, Intake
from channels.email.outbound import MailConfig, OutgoingMail, mails_for, reply_subject
from channels.email.smtp_sender import SmtpConfig, send
from channels.email.tokens import SECRET_REF_CHANNEL, make_token, new_secret

log = structlog.get_logger("opsgate.email")

__all__ = ["EmailChannel"]


class EmailChannel(Channel):
    """IMAP in (a background watcher), SMTP out (outbox delivery)."""

    name: ClassVar[str] = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        address = Address.parse(settings.email_address or "")
        if address is None:
            raise ConfigError("OPSGATE_EMAIL_ADDRESS must be set to the agent's address when IMAP_HOST or "
                              f"SMTP_HOST is set (got {settings.email_address!r})")
        self.address = address
        self.imap = ImapConfig.from_settings(settings) if settings.imap_enabled else None
        self.smtp = SmtpConfig.from_settings(settings) if settings.smtp_enabled else None
        # Approval requests only make sense when the replies can be read.
        self.config = MailConfig(
            address=address, approvals=self.imap is not None and self.smtp is not None, settings=settings,
        )
        self._secret: str | None = None
        self._secret_lock = asyncio.Lock()

    # --- outbound ---------------------------------------------------------------------------------------------

    def outbound(self, thread: Thread, new: Sequence[Event]) -> list[OutboxItem]:
        """Mails caused by the new events (nothing when SMTP is not configured)."""
        if self.smtp is None:
            return []
        mails = [*mails_for(thread, new, self.config), *follower_mails(thread, new, self.config)]
        return [OutboxItem(channel=self.name, thread_id=thread.id, payload=mail.model_dump(mode="json"))
                for mail in mails]

    def direct_message(self, identity: str, subject: str, text: str) -> OutboxItem | None:
        """A notice mail to an email address (sign-in links), when SMTP is configured."""
        address = normalize(identity)
        if self.smtp is None or address != identity.lower() or "@" not in address or address == self.address.base:
            return None
        mail = OutgoingMail(kind="notice", to=identity, subject=subject, text=text,
                            message_id=make_message_id(new_id(), "notice", self.address.domain))
        return OutboxItem(channel=self.name, payload=mail.model_dump(mode="json"))

    async def deliver(self, row: OutboxRow) -> None:
        """Send one outbox row by SMTP; approval requests get their token Reply-To here."""
        if self.smtp is None:
            raise DeliveryFailed("SMTP_HOST is not set: email cannot be sent")
        mail = OutgoingMail.model_validate(row.payload)
        reply_to = None
        if mail.kind == "approval" and mail.approval_id:
            token = make_token(await self.secret(), mail.approval_id, mail.to)
            reply_to = self.address.with_tag(token)
            # Lets a reply find its thread even when the mail client drops In-Reply-To.
            await self.service.store.put_ref(
                Ref(channel=APPROVAL_REF_CHANNEL, key=mail.approval_id, thread_id=mail.thread_id)
            )
        if mail.kind == "reply" and mail.in_reply_to:
            mail = mail.model_copy(update={"subject": await self._reply_subject(mail)})
        await send(compose(mail, self.address.base, reply_to), self.smtp)
        log.info("email_sent", kind=mail.kind, to=mail.to, thread_id=mail.thread_id, message_id=mail.message_id)

    async def _reply_subject(self, mail: OutgoingMail) -> str:
        """"Re: " + the subject of the mail we answer, as recorded when it arrived (else the stored guess)."""
        ref = await self.service.store.get_ref(REF_CHANNEL, ref_key(mail.in_reply_to or ""))
        subject = (ref.data or {}).get("subject") if ref is not None else None
        return reply_subject(str(subject)) if subject else mail.subject

    # --- inbound ----------------------------------------------------------------------------------------------

    async def secret(self) -> str:
        """The instance secret for approval tokens: created once, kept in the store."""
        async with self._secret_lock:
            if self._secret is None:
                # A ref insert is atomic (unique key), so two processes starting at once agree on one secret.
                store = self.service.store
                await store.put_ref(Ref(channel=SECRET_REF_CHANNEL, key="token-secret", data={"secret": new_secret()}))
                stored = await store.get_ref(SECRET_REF_CHANNEL, "token-secret")
                if stored is None or not stored.data or not stored.data.get("secret"):
                    raise RuntimeError("the email token secret could not be stored")
                self._secret = str(stored.data["secret"])
            return self._secret

    def background(self, service: Service) -> list[BackgroundTask]:
        """The mailbox watcher, when IMAP is configured."""
        if self.imap is None:
            return []
        if not self.settings.email_trusted_authserv_id:
            log.warning("startup_warning", message="OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID is not set: the From "
                        "address of an approval reply is trusted as-is, so anyone who can forge an approver's "
                        "From header (and holds a token) can decide; set it to your mail server's authserv-id")
        imap = self.imap

        async def watch() -> None:
            intake = Intake(service, self.config, self.settings.email_trusted_authserv_id, await self.secret())
            watcher = ImapWatcher(
                imap, service.store, intake.handle, idle=self.settings.email_idle,
                idle_renew=self.settings.email_idle_renew, poll_interval=self.settings.email_poll_interval,
                max_bytes=self.settings.email_max_bytes,
            )
            await watcher.run()

        return [watch]
