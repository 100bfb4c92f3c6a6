"""One inbound mail -> what it means for opsgate: ignore it, start a thread, continue one, or decide an approval.

A pipeline of small steps run in order: noise rules, de-duplication, thread resolution (In-Reply-To, then
References newest first; never the Subject), then either the decision path (authenticated sender, valid token,
allowed approver, a clear first line) or a message in a thread. Every path either commits thread events with
the mail's Message-ID as a ref (so a replayed mail raises DuplicateRef and is not processed twice), or records
the ref on its own before answering.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import structlog

from bot.authorization import Refusal, may_decide
from bot.errors import (
    AlreadyDecided,
    Conflict,
    DuplicateRef,
    InvalidArguments,
    NotAuthorized,
    NotWaiting,
    Signal,
    ThreadNotFound,
)
from bot.events import Via
from bot.service import Service
from bot.store import OutboxItem, Ref
from bot.thread import Thread
from channels.email.addresses import MailKind, agent_for, parse_message_id, plus_tags, ref_key
from channels.email.authentication import check_authentication
from channels.email.decisions import UNCLEAR, Approve, Reject, Unclear, parse_cancel, parse_decision
from channels.email.inbound import InboundMail, Oversize
from channels.email.noise import ignore_reason
from channels.email.outbound import MailConfig, OutgoingMail, answer
from channels.email.tokens import TOKEN_TTL, TokenClaim, expired, read_token

log = structlog.get_logger("opsgate.email")

REF_CHANNEL = "email"  # Message-ID of every mail we handled -> its thread
APPROVAL_REF_CHANNEL = "email-approval"  # approval id -> thread, written when its approval mail is delivered

Outcome = Literal["ignored", "duplicate", "started", "continued", "decided", "refused", "answered"]


@dataclass(frozen=True)
class IntakeResult:
    """What happened to one mail."""

    outcome: Outcome
    thread_id: str | None = None
    detail: str = ""


def request_text(mail: InboundMail) -> str:
    """The text of a new request: subject and body, or the body alone when it is an explicit ``!command``."""
    body, subject = mail.text.strip(), mail.subject.strip()
    if body.startswith("!") or not subject:
        return body
    return f"{subject}\n\n{body}" if body else subject


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


@dataclass(frozen=True)
class _Target:
    thread_id: str
    kind: MailKind | None  # which of our mails it answers; None: a mail of theirs we received


class Intake:
    """Handles inbound mail for one opsgate instance."""

    def __init__(self, service: Service, config: MailConfig, authserv_id: str | None, secret: str) -> None:
        self.service = service
        self.config = config
        self.authserv_id = authserv_id
        self.secret = secret

    async def handle(self, mail: InboundMail) -> IntakeResult:
        """Run the pipeline for one mail; never processes the same Message-ID twice."""
        reason = ignore_reason(mail, self.config.address)
        if reason is not None:
            log.info("email_ignored", reason=reason.value, message_id=mail.message_id, sender=mail.sender,
                     subject=mail.subject)
            return IntakeResult("ignored", detail=reason.value)
        if await self.service.store.get_ref(REF_CHANNEL, ref_key(mail.message_id)) is not None:
            return self._duplicate(mail)
        if mail.oversize is not None:
            return await self._too_large(mail, mail.oversize)
        claim = self._token(mail)
        target = await self._resolve(mail)
        if claim is not None or (target is not None and target.kind == "approval"):
            return await self._decide(mail, claim, target)
        if target is not None:
            return await self._continue(mail, target.thread_id)
        return await self._start(mail)

    # --- steps ----------------------------------------------------------------------------------------------

    def _token(self, mail: InboundMail) -> TokenClaim | None:
        for tag in plus_tags(mail.recipients, self.config.address):
            claim = read_token(tag)
            if claim is not None:
                return claim
        return None

    async def _resolve(self, mail: InboundMail) -> _Target | None:
        for candidate in mail.thread_candidates:
            ours = parse_message_id(candidate, self.config.address.domain)
            if ours is not None:
                if await self.service.store.load_thread(ours.thread_id) is not None:
                    return _Target(ours.thread_id, ours.kind)
                continue
            ref = await self.service.store.get_ref(REF_CHANNEL, ref_key(candidate))
            if ref is not None and ref.thread_id:
                return _Target(ref.thread_id, None)
        return None

    def _via(self, mail: InboundMail) -> Via:
        return Via(channel="email", conversation=mail.root_id, message=mail.message_id)

    def _ref(self, mail: InboundMail, thread_id: str | None = None) -> Ref:
        # The subject is kept so replies can say "Re: <their subject>" (Gmail threads by subject too).
        data = {"subject": mail.subject} if mail.subject else None
        return Ref(channel=REF_CHANNEL, key=ref_key(mail.message_id), thread_id=thread_id, data=data)

    async def _start(self, mail: InboundMail) -> IntakeResult:
        text = request_text(mail)
        if not text:
            return await self._answer(mail, None, "Your email had no text, so there was nothing to do.",
                                      outcome="answered")
        registry = self.service.registry
        agent = agent_for(mail.recipients, self.config.address, registry.names) or registry.default
        try:
            thread = await self.service.start_thread(
                text, user=mail.sender, via=self._via(mail), agent=agent, refs=[self._ref(mail)]
            )
        except DuplicateRef:
            return self._duplicate(mail)
        except Conflict:  # contention, not a refusal: the watcher retries the mail
            raise
        except Signal as exc:  # a refusal meant for the person (e.g. a message over the size limit)
            return await self._not_accepted(mail, None, exc)
        log.info("email_thread_started", thread_id=thread.id, message_id=mail.message_id, sender=mail.sender,
                 agent=agent)
        return IntakeResult("started", thread.id)

    async def _too_large(self, mail: InboundMail, oversize: Oversize) -> IntakeResult:
        """A person's mail over the size limit: its body was never downloaded; say so, briefly."""
        target = await self._resolve(mail)
        text = (f"Your email was {_megabytes(oversize.size)}, more than the {_megabytes(oversize.limit)} opsgate "
                "reads, so it was not read and nothing was done. Please send the text again without attachments.")
        return await self._answer(mail, target.thread_id if target else None, text, outcome="answered",
                                  detail="too-large")

    async def _not_accepted(self, mail: InboundMail, thread_id: str | None, exc: Signal) -> IntakeResult:
        """Any other refusal of the core is told to the sender (answering beats retrying a mail that cannot pass)."""
        log.info("email_not_accepted", reason=type(exc).__name__, detail=str(exc), message_id=mail.message_id)
        return await self._answer(mail, thread_id, f"Your email was not accepted: {exc}.", outcome="answered",
                                  detail=type(exc).__name__)

    async def _continue(self, mail: InboundMail, thread_id: str) -> IntakeResult:
        if not mail.text.strip():
            return await self._answer(mail, thread_id, "Your reply had no new text (only quoted history), "
                                      "so nothing was added.", outcome="answered")
        reason = parse_cancel(mail.text)
        if reason is not None:
            return await self._cancel(mail, thread_id, reason)
        try:
            await self.service.add_message(
                thread_id, mail.text, user=mail.sender, via=self._via(mail), refs=[self._ref(mail, thread_id)]
            )
        except DuplicateRef:
            return self._duplicate(mail)
        except ThreadNotFound:
            return await self._start(mail)
        except NotWaiting as exc:
            return await self._answer(mail, thread_id, f"Your message was not added: {exc}. "
                                      "You will get an email when it is decided.", outcome="answered")
        except Conflict:
            raise
        except Signal as exc:
            return await self._not_accepted(mail, thread_id, exc)
        log.info("email_thread_continued", thread_id=thread_id, message_id=mail.message_id, sender=mail.sender)
        return IntakeResult("continued", thread_id)

    async def _cancel(self, mail: InboundMail, thread_id: str, reason: str) -> IntakeResult:
        """``CANCEL`` from the requester: withdraw the pending request or stop the thread (the reply says so)."""
        try:
            await self.service.cancel(thread_id, user=mail.sender, via=self._via(mail), reason=reason or None,
                                      refs=[self._ref(mail, thread_id)])
        except DuplicateRef:
            return self._duplicate(mail)
        except Conflict:
            raise
        except Signal as exc:  # not the requester, or already finished
            return await self._answer(mail, thread_id, f"Nothing was cancelled: {exc}.", outcome="answered",
                                      detail=type(exc).__name__)
        log.info("email_thread_cancelled", thread_id=thread_id, message_id=mail.message_id, sender=mail.sender)
        return IntakeResult("continued", thread_id)

    async def _decide(self, mail: InboundMail, claim: TokenClaim | None, target: _Target | None) -> IntakeResult:
        thread_id = target.thread_id if target is not None else None
        approval_id = claim.approval_id if claim is not None else None
        if self.authserv_id:
            verdict = check_authentication(mail, self.authserv_id)
            if not verdict.passed:
                return await self._refuse(mail, thread_id, approval_id, "authentication", "your address could "
                                          f"not be verified ({verdict.reason})", authentication_results=verdict.header)
        if claim is None:
            return await self._refuse(mail, thread_id, None, "no-token", "this reply carries no approval token; "
                                      "reply to the approval email itself (its Reply-To address holds the token)")
        ref = await self.service.store.get_ref(APPROVAL_REF_CHANNEL, claim.approval_id)
        thread_id = ref.thread_id if ref is not None and ref.thread_id else thread_id
        thread = await self._load(thread_id)
        request = thread.approval_request(claim.approval_id) if thread is not None else None
        if thread is None or request is None:
            return await self._refuse(mail, thread_id, approval_id, "unknown-approval", "its approval token "
                                      "does not match any approval request")
        if expired(request.at, datetime.now(UTC)):
            return await self._refuse(mail, thread.id, approval_id, "expired", "this approval email is more than "
                                      f"{TOKEN_TTL.days} days old; decide in the web inbox, Slack or the API")
        if not claim.valid_for(self.secret, mail.sender):
            pending = thread.pending
            if pending is not None and pending.approval_id == claim.approval_id:
                # A token forwarded to someone who may not decide at all: say that, not "wrong token".
                allowed = may_decide(mail.sender, pending, "email", self.service.settings, approving=False)
                if isinstance(allowed, Refusal) and allowed.kind == "not_an_approver":
                    return await self._refuse(mail, thread.id, approval_id, "not-approver", allowed.reason)
            return await self._refuse(mail, thread.id, approval_id, "bad-token", "the approval token in this "
                                      f"reply was not issued to {mail.sender}")
        decision = parse_decision(mail.text)
        if isinstance(decision, Unclear):
            return await self._refuse(mail, thread.id, approval_id, "unclear", f"{UNCLEAR}: {decision.problem}")
        approved = isinstance(decision, Approve)
        comment = decision.reason if isinstance(decision, Reject) else None
        try:
            await self.service.decide(
                thread.id, claim.approval_id, approved=approved, user=mail.sender, via=self._via(mail),
                comment=comment, refs=[self._ref(mail, thread.id)],
            )
        except DuplicateRef:
            return self._duplicate(mail)
        except (NotAuthorized, AlreadyDecided) as exc:  # the service already recorded the refusal
            await self.service.store.put_ref(self._ref(mail, thread.id))
            self._audit_refusal(mail, thread.id, approval_id, type(exc).__name__, str(exc))
            return IntakeResult("refused", thread.id, type(exc).__name__)
        except Conflict:
            raise
        except (NotWaiting, InvalidArguments, Signal) as exc:
            return await self._refuse(mail, thread.id, approval_id, type(exc).__name__, str(exc))
        log.info("email_decision", audit=True, thread_id=thread.id, approval_id=claim.approval_id,
                 approved=approved, by=mail.sender, message_id=mail.message_id)
        return IntakeResult("decided", thread.id, "approved" if approved else "rejected")

    async def _refuse(
        self, mail: InboundMail, thread_id: str | None, approval_id: str | None, code: str, why: str,
        authentication_results: str | None = None,
    ) -> IntakeResult:
        """Audit a refused decision; recorded in its thread (whose outbox answers the sender) when known.
        ``authentication_results``: the raw header an authentication refusal was judged on, for the audit log."""
        if not await self.service.store.put_ref(self._ref(mail, thread_id)):
            return self._duplicate(mail)
        self._audit_refusal(mail, thread_id, approval_id, code, why, authentication_results)
        if thread_id is not None and await self._load(thread_id) is not None:
            await self.service.record_refusal(thread_id, approval_id, mail.sender, why, self._via(mail))
        return IntakeResult("refused", thread_id, code)

    def _audit_refusal(
        self, mail: InboundMail, thread_id: str | None, approval_id: str | None, code: str, why: str,
        authentication_results: str | None = None,
    ) -> None:
        extra = {"authentication_results": authentication_results} if authentication_results is not None else {}
        log.warning("email_decision_refused", audit=True, reason=code, detail=why, sender=mail.sender,
                    message_id=mail.message_id, thread_id=thread_id, approval_id=approval_id, **extra)

    # --- helpers ----------------------------------------------------------------------------------------------

    async def _load(self, thread_id: str | None) -> Thread | None:
        return await self.service.store.load_thread(thread_id) if thread_id else None

    def _duplicate(self, mail: InboundMail) -> IntakeResult:
        log.info("email_duplicate", message_id=mail.message_id, sender=mail.sender)
        return IntakeResult("duplicate")

    async def _answer(
        self, mail: InboundMail, thread_id: str | None, text: str, *, outcome: Outcome, detail: str = ""
    ) -> IntakeResult:
        """Record the mail as handled, then queue a direct answer (at most once per Message-ID)."""
        if not await self.service.store.put_ref(self._ref(mail, thread_id)):
            return self._duplicate(mail)
        reply: OutgoingMail = answer(mail, text, self.config, thread_id)
        item = OutboxItem(channel="email", thread_id=thread_id, payload=reply.model_dump(mode="json"))
        await self.service.journal.enqueue([item])
        return IntakeResult(outcome, thread_id, detail)
