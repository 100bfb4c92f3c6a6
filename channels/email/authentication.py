"""Is the From address real? Trust only the Authentication-Results header written by our own MTA.

A From header is trivially forged, so a decision by email counts only when the receiving mail server we trust
(``OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID``) recorded ``dmarc=pass`` for the From domain, or ``dkim=pass`` with a
signing domain aligned with it (relaxed alignment: same domain or one a subdomain of the other).

Only the topmost header carrying the trusted authserv-id is read: our MTA prepends its own, and a sender can
add any number of fake ones further down (RFC 8601 §5 asks the MTA to remove those, not every MTA does).
"""

from __future__ import annotations

import authres
import authres.core
from pydantic import BaseModel

from channels.email.inbound import InboundMail


class AuthVerdict(BaseModel):
    """Whether the sender is authenticated, and a short reason for the log and the answer."""

    passed: bool
    reason: str


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed DMARC alignment without a public-suffix list: equal, or one is a subdomain of the other."""
    a, b = domain.lower().strip("."), from_domain.lower().strip(".")
    return bool(a and b) and (a == b or a.endswith("." + b) or b.endswith("." + a))


def _property(result: authres.core.AuthenticationResult, ptype: str, name: str) -> str | None:
    for prop in result.properties:
        if prop.type == ptype and prop.name == name:
            return str(prop.value)
    return None


def trusted_ids(setting: str) -> list[str]:
    """``mx.example.com, *.messagingengine.com`` -> the authserv-id patterns (lower case)."""
    return [part.strip().lower() for part in setting.split(",") if part.strip()]


def is_trusted(authserv_id: str, patterns: list[str]) -> bool:
    """Exact match, or ``*.domain`` for a provider whose MX hosts each write their own name."""
    name = authserv_id.strip().lower()
    return any(name == p or (p.startswith("*.") and name.endswith(p[1:])) for p in patterns)


def _trusted_header(values: list[str], patterns: list[str]) -> authres.core.AuthenticationResultsHeader | None:
    for value in values:
        try:
            header = authres.all_features().parse_value(value)
        except authres.core.AuthResError:
            continue
        if is_trusted(str(header.authserv_id), patterns):
            return header
    return None


def check_authentication(mail: InboundMail, trusted: str) -> AuthVerdict:
    """Pass when our MTA's Authentication-Results show dmarc=pass or aligned dkim=pass for the From domain;
    ``trusted`` is the OPSGATE_EMAIL_TRUSTED_AUTHSERV_ID value (comma-separated, ``*.`` prefixes allowed)."""
    authserv_id = trusted.strip()
    from_domain = mail.sender.rpartition("@")[2]
    if not from_domain:
        return AuthVerdict(passed=False, reason="the message has no From address")
    header = _trusted_header(mail.authentication_results, trusted_ids(trusted))
    if header is None:
        return AuthVerdict(passed=False, reason=f"no Authentication-Results from {authserv_id}")
    dmarc_outcome = None
    for result in header.results:
        method, outcome = str(result.method).lower(), str(result.result).lower()
        if method == "dmarc":
            header_from = _property(result, "header", "from")
            if outcome == "pass" and (header_from is None or aligned(header_from, from_domain)):
                return AuthVerdict(passed=True, reason=f"dmarc=pass for {from_domain}")
            # a pass for some other header.from (two From headers?) counts as a failure for ours
            dmarc_outcome = "fail" if outcome == "pass" else outcome
    if dmarc_outcome != "fail":  # DMARC none/temperror/absent: a DKIM signature aligned with From will do
        for result in header.results:
            if str(result.method).lower() == "dkim" and str(result.result).lower() == "pass":
                signer = _property(result, "header", "d") or (_property(result, "header", "i") or "").lstrip("@")
                signer = signer.rpartition("@")[2]
                if aligned(signer, from_domain):
                    return AuthVerdict(passed=True, reason=f"dkim=pass aligned with {from_domain}")
    reason = "dmarc=fail" if dmarc_outcome == "fail" else "neither dmarc=pass nor an aligned dkim=pass"
    return AuthVerdict(passed=False, reason=f"{reason} for {from_domain} at {authserv_id}")
