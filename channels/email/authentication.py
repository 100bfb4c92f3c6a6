"""Is the From address real? Trust only the topmost Authentication-Results header from our own receiving server.

A From header is trivially forged, so a decision by email counts only when the receiving server we trust
(``OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID``) recorded, in its own ``Authentication-Results`` header, ``dmarc=pass`` for
the From domain, or -- when DMARC said nothing conclusive -- ``dkim=pass`` by a domain aligned with it.

Which header: every receiving hop prepends its header above the ones it received, so the topmost header that
claims a trusted authserv-id was written by our server (or by a hop after it, inside our own infrastructure); a
sender can add any number of headers claiming the same name *below* it (RFC 8601 §5 asks servers to delete
those; not all do). So exactly one header is consulted: the topmost that claims a trusted authserv-id. If it
cannot be read, or does not show a pass, the answer is no -- never a second look further down, where the forgeries
are. A header above the first trusted one whose authserv-id itself is unreadable may be our own server's: refused too.
"""

from __future__ import annotations

from pydantic import BaseModel

from channels.email.alignment import address_domain, aligned
from channels.email.auth_results import (
    AuthResults,
    AuthResultsError,
    MethodResult,
    claimed_authserv_id,
    parse_authentication_results,
)
from channels.email.inbound import InboundMail

_INCONCLUSIVE_DMARC = frozenset({"none", "temperror", "permerror"})  # RFC 7489 results that let DKIM decide
_LOGGED_HEADER_CHARS = 4000


class AuthVerdict(BaseModel):
    """Whether the sender is authenticated; a specific reason; the raw header consulted (shortened) for the log."""

    passed: bool
    reason: str
    header: str | None = None


def trusted_ids(setting: str) -> list[str]:
    """``mx.example.com, *.messagingengine.com`` -> the authserv-id patterns (lower case)."""
    return [part.strip().lower() for part in setting.split(",") if part.strip()]


def is_trusted(authserv_id: str, patterns: list[str]) -> bool:
    """Exact match, or ``*.domain`` for a provider whose MX hosts each write their own name; ASCII only, so a
    look-alike such as the Kelvin sign (which lower-cases to "k") never matches."""
    name = authserv_id.strip().lower()
    return authserv_id.isascii() and any(name == p or (p.startswith("*.") and name.endswith(p[1:])) for p in patterns)


class _UnattributedHeader(Exception):
    """A header above the first trusted one whose authserv-id cannot be read: it may be our own server's."""


def topmost_trusted(values: list[str], patterns: list[str]) -> tuple[str, str] | None:
    """The first header value (topmost first) claiming a trusted authserv-id, with that id; None if none does.

    Senders can only add headers *below* our server's, so a header above the first trusted one whose id cannot
    be read might be our server's own, written in a form we cannot read: fail closed rather than look lower.
    """
    for value in values:
        claimed = claimed_authserv_id(value)
        if claimed is None:
            raise _UnattributedHeader(value)
        if is_trusted(claimed, patterns):
            return claimed, value
    return None


def _signer(result: MethodResult) -> str | None:
    """The DKIM signing domain: ``header.d``, else the domain of ``header.i``; None when absent or ambiguous."""
    values = result.values("header", "d") or result.values("header", "i")
    domains = {address_domain(value) for value in values}
    return domains.pop() if len(domains) == 1 else None


def judge(header: AuthResults, from_domain: str) -> AuthVerdict:
    """The pass rule on one parsed header: dmarc=pass for ``from_domain``, else (DMARC none, temperror, permerror
    or absent; never fail) an aligned dkim=pass."""
    where = f"in the topmost Authentication-Results header from {header.authserv_id}"
    dmarc = header.results_for("dmarc")
    for result in dmarc:
        if result.result == "fail":
            failed = (result.values("header", "from") or [from_domain])[0]
            return AuthVerdict(passed=False, reason=f"dmarc=fail for {failed} {where}")
    for result in dmarc:
        # a DMARC result about another From domain means two From headers or a parser disagreement: refuse
        others = [v for v in result.values("header", "from") if address_domain(v) != from_domain]
        if others:
            return AuthVerdict(passed=False, reason=f"dmarc={result.result} is for header.from={others[0]}, "
                                                    f"not for the From domain {from_domain}, {where}")
    if any(r.result == "pass" and r.values("header", "from") for r in dmarc):
        return AuthVerdict(passed=True, reason=f"dmarc=pass for {from_domain} {where}")
    for result in dmarc:
        if result.result not in _INCONCLUSIVE_DMARC:
            detail = "without header.from" if result.result == "pass" else "for " + from_domain
            return AuthVerdict(passed=False, reason=f"dmarc={result.result} {detail} is neither a pass for the "
                                                    f"From domain nor inconclusive, {where}")
    dmarc_said = f"dmarc={dmarc[0].result}" if dmarc else "no dmarc result"
    signers: list[str] = []
    for result in header.results_for("dkim"):
        if result.result == "pass":
            signer = _signer(result)
            if signer is not None and aligned(signer, from_domain):
                return AuthVerdict(passed=True, reason=f"{dmarc_said}, dkim=pass by {signer} aligned with "
                                                       f"{from_domain} {where}")
            signers.append(signer or "an unnamed or ambiguous domain")
    if signers:
        return AuthVerdict(passed=False, reason=f"{dmarc_said}; dkim=pass only by {', '.join(signers)}, not "
                                                f"aligned with {from_domain}, {where}")
    return AuthVerdict(passed=False, reason=f"{dmarc_said} and no dkim=pass for {from_domain} {where}")


def _shortened(raw: str) -> str:
    if len(raw) <= _LOGGED_HEADER_CHARS:
        return raw
    return f"{raw[:_LOGGED_HEADER_CHARS]}... ({len(raw) - _LOGGED_HEADER_CHARS} more characters)"


def check_authentication(mail: InboundMail, trusted: str) -> AuthVerdict:
    """Judge the topmost Authentication-Results header claiming a trusted authserv-id; ``trusted`` is the
    OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID value (comma-separated, ``*.`` prefixes allowed)."""
    patterns = trusted_ids(trusted)
    if not patterns:
        return AuthVerdict(passed=False, reason="no trusted authserv-id is configured")
    from_domain = address_domain(mail.sender)
    if from_domain is None:
        return AuthVerdict(passed=False, reason="the message has no readable From address")
    try:
        found = topmost_trusted(mail.authentication_results, patterns)
    except _UnattributedHeader as exc:
        raw = str(exc.args[0])
        return AuthVerdict(passed=False, header=_shortened(raw), reason="an Authentication-Results header above any "
                           "from a trusted server names no readable authserv-id; headers below it are not consulted")
    if found is None:
        return AuthVerdict(passed=False, reason=f"no Authentication-Results header from {', '.join(patterns)}")
    authserv_id, raw = found
    try:
        header = parse_authentication_results(raw)
    except AuthResultsError as exc:
        return AuthVerdict(passed=False, header=_shortened(raw), reason=f"the topmost Authentication-Results "
                           f"header from {authserv_id} cannot be read ({exc}); headers below it are not consulted")
    if header.version != 1:
        return AuthVerdict(passed=False, header=_shortened(raw), reason=f"the topmost Authentication-Results "
                           f"header from {authserv_id} has version {header.version}, which opsgate does not read")
    return judge(header, from_domain).model_copy(update={"header": _shortened(raw)})
