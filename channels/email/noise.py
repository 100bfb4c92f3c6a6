"""Mail we must never answer or act on (RFC 3834 loop protection, bounces, lists, our own mail).

``ignore_reason`` is a plain function run first on every inbound mail: a non-None reason means the mail is logged
with that reason, marked processed, and nothing else happens (no thread, no reply: replying to an auto-reply is
how mail loops start).
"""

from __future__ import annotations

from enum import StrEnum

from channels.email.addresses import Address, is_ours
from channels.email.inbound import InboundMail

_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
_DAEMON_LOCALS = frozenset({"mailer-daemon", "postmaster"})


class IgnoreReason(StrEnum):
    """Why a mail was ignored; the value is what the log says."""

    AUTO_SUBMITTED = "auto-submitted"
    AUTO_REPLY_HEADER = "x-autoreply"
    NULL_RETURN_PATH = "null-return-path"
    MAILER_DAEMON = "mailer-daemon"
    DELIVERY_REPORT = "multipart-report"
    BULK_PRECEDENCE = "precedence-bulk"
    MAILING_LIST = "list-id"
    OWN_ADDRESS = "own-address"
    NO_SENDER = "no-sender"


def ignore_reason(mail: InboundMail, own: Address) -> IgnoreReason | None:
    """The first RFC 3834 / noise rule the mail matches, or None when a person wrote it to us."""
    if not mail.sender:
        return IgnoreReason.NO_SENDER
    if is_ours(mail.sender, own):
        return IgnoreReason.OWN_ADDRESS
    auto = (mail.auto_submitted or "no").split(";")[0].strip().lower()
    if auto != "no":
        return IgnoreReason.AUTO_SUBMITTED
    if mail.x_autoreply:
        return IgnoreReason.AUTO_REPLY_HEADER
    if mail.return_path == "":
        return IgnoreReason.NULL_RETURN_PATH
    if any(addr.partition("@")[0] in _DAEMON_LOCALS for addr in (mail.sender, mail.return_path or "")):
        return IgnoreReason.MAILER_DAEMON
    if mail.content_type == "multipart/report":
        return IgnoreReason.DELIVERY_REPORT
    if (mail.precedence or "").strip().lower() in _BULK_PRECEDENCE:
        return IgnoreReason.BULK_PRECEDENCE
    if mail.list_id or mail.list_headers:
        return IgnoreReason.MAILING_LIST
    return None
