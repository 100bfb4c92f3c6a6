"""DMARC identifier alignment (RFC 7489 §3.1): do two domains belong to the same organization?

The organizational domain is the public suffix plus one label, taken from the Public Suffix List that the
``publicsuffixlist`` package ships (loaded from the installed package, never fetched), so ``co.uk`` is a suffix,
not an organization: a ``d=co.uk`` signature does not vouch for ``someone@example.co.uk``, while
``d=mail.example.co.uk`` does. Names are compared in lower-case A-label form, so an internationalized From domain
matches its ``xn--`` spelling in a header.
"""

from __future__ import annotations

import re
from functools import cache

from publicsuffixlist import PublicSuffixList

_LABEL = re.compile(r"[a-z0-9_-]{1,63}")  # "_" appears in real DNS names (selectors); nothing else is a domain


@cache
def _suffix_list() -> PublicSuffixList:
    # Parsing the list takes a few tens of milliseconds: done on first use, not at import (the CLI imports this).
    return PublicSuffixList()


def normalize_domain(name: str) -> str | None:
    """``Example.COM.`` -> ``example.com`` (IDNs as A-labels); None when the text is not a domain name."""
    name = name.strip()
    name = name[:-1] if name.endswith(".") else name
    if not name or len(name) > 253:
        return None
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    if not all(_LABEL.fullmatch(label) for label in ascii_name.split(".")):
        return None
    return ascii_name


def address_domain(value: str) -> str | None:
    """The domain of ``alice@example.com``, ``@example.com`` or ``example.com``, normalized; None if unreadable."""
    return normalize_domain(value.rpartition("@")[2])


def organizational_domain(domain: str) -> str | None:
    """``mail.example.co.uk`` -> ``example.co.uk``; None for a public suffix itself or a non-domain."""
    name = normalize_domain(domain)
    return _suffix_list().privatesuffix(name) if name is not None else None


def same_domain(a: str, b: str) -> bool:
    """Equal as domain names (case, trailing dot and IDN spelling aside); never true for non-domains."""
    name = normalize_domain(a)
    return name is not None and name == normalize_domain(b)


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: the same domain, or the same organizational domain (subdomains either way)."""
    if same_domain(domain, from_domain):
        return True
    organization = organizational_domain(domain)
    return organization is not None and organization == organizational_domain(from_domain)
