"""Email identities: our own address, plus-addressing (agent+tag@domain), and the Message-IDs we generate.

Our Message-IDs encode the thread id and the kind of mail, ``<opsgate.THREAD.KIND.RANDOM@domain>``, so a reply
that only names one of our own messages in In-Reply-To/References finds its thread without any stored mapping.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Literal

MailKind = Literal["reply", "approval", "notice"]
_KIND_CODE: dict[MailKind, str] = {"reply": "r", "approval": "a", "notice": "n"}
_CODE_KIND: dict[str, MailKind] = {v: k for k, v in _KIND_CODE.items()}
_OUR_ID = re.compile(r"^<opsgate\.([A-Za-z0-9_-]{1,64})\.([arn])\.[a-z0-9]+@([^<>\s]+)>$")


def normalize(address: str) -> str:
    """``Ann <Ann@Example.COM>`` -> ``ann@example.com``; empty when there is no address."""
    return parseaddr(address)[1].strip().lower()


@dataclass(frozen=True)
class Address:
    """An address split into local part, plus-tag and domain (lower case)."""

    local: str
    tag: str | None
    domain: str

    @classmethod
    def parse(cls, address: str) -> Address | None:
        """Split ``base+tag@domain``; None when it is not an address."""
        value = normalize(address)
        local, at, domain = value.rpartition("@")
        if not at or not local or not domain:
            return None
        base, plus, tag = local.partition("+")
        return cls(base, tag if plus and tag else None, domain)

    @property
    def base(self) -> str:
        """The address without its plus-tag."""
        return f"{self.local}@{self.domain}"

    def with_tag(self, tag: str) -> str:
        """``local+tag@domain``."""
        return f"{self.local}+{tag}@{self.domain}"


def is_ours(address: str, own: Address) -> bool:
    """True for our address, with or without a plus-tag."""
    parsed = Address.parse(address)
    return parsed is not None and parsed.base == own.base


def plus_tags(recipients: list[str], own: Address) -> list[str]:
    """The plus-tags of the recipients that are our address (``opsgate+deploy@x`` -> ``deploy``)."""
    tags = []
    for recipient in recipients:
        parsed = Address.parse(recipient)
        if parsed is not None and parsed.base == own.base and parsed.tag:
            tags.append(parsed.tag)
    return tags


def agent_for(recipients: list[str], own: Address, agents: list[str]) -> str | None:
    """The registered agent a mail was addressed to: a plus-tag (``opsgate+deploy@``) or an alias on our domain
    (``deploy@``); None means the default agent."""
    names = {name.lower(): name for name in agents}
    for tag in plus_tags(recipients, own):
        if tag in names:
            return names[tag]
    for recipient in recipients:
        parsed = Address.parse(recipient)
        if parsed is not None and parsed.domain == own.domain and parsed.local in names:
            return names[parsed.local]
    return None


# --- Message-IDs -----------------------------------------------------------------------------------------------


def make_message_id(thread_id: str, kind: MailKind, domain: str) -> str:
    """A fresh Message-ID for one of our mails in ``thread_id``."""
    return f"<opsgate.{thread_id}.{_KIND_CODE[kind]}.{secrets.token_hex(8)}@{domain}>"


def thread_root_id(thread_id: str, domain: str) -> str:
    """The Message-ID of the first mail about a thread that did not start by mail (the same in every process, so
    every later mail can reference it without looking it up)."""
    digest = hashlib.sha256(f"root:{thread_id}".encode()).hexdigest()[:16]
    return f"<opsgate.{thread_id}.{_KIND_CODE['reply']}.{digest}@{domain}>"


@dataclass(frozen=True)
class OurMessageId:
    """What one of our Message-IDs says: the thread and the kind of mail."""

    thread_id: str
    kind: MailKind


def parse_message_id(message_id: str, domain: str) -> OurMessageId | None:
    """Decode a Message-ID we generated for ``domain``; None for anybody else's."""
    match = _OUR_ID.match(message_id.strip())
    if match is None or match.group(3).lower() != domain.lower():
        return None
    return OurMessageId(match.group(1), _CODE_KIND[match.group(2)])


def ref_key(message_id: str) -> str:
    """The store key for a Message-ID (refs keys are at most 255 characters; long ids are hashed)."""
    if len(message_id) <= 200:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode()).hexdigest()
