"""DMARC relaxed alignment by organizational domain, from the Public Suffix List shipped with the package."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from channels.email.alignment import address_domain, aligned, normalize_domain, organizational_domain, same_domain


@pytest.mark.parametrize(("name", "expected"), [
    ("Example.COM.", "example.com"),
    ("  example.com ", "example.com"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
    ("_dmarc.example.com", "_dmarc.example.com"),
    ("", None),
    (".", None),
    ("a..example.com", None),
    ("exa mple.com", None),
    ("example.com;dmarc=pass", None),
    ("a" * 64 + ".com", None),
])
def test_normalize_domain(name: str, expected: str | None) -> None:
    """Lower-case A-labels without the root dot; anything that is not a domain name is None."""
    assert normalize_domain(name) == expected


@pytest.mark.parametrize(("domain", "organization"), [
    ("example.com", "example.com"),
    ("mail.eu.example.com", "example.com"),
    ("example.co.uk", "example.co.uk"),
    ("a.b.example.co.uk", "example.co.uk"),
    ("co.uk", None),  # a public suffix is nobody's organization
    ("com", None),
    ("alice.github.io", "alice.github.io"),  # the list's private section: each user is an organization
    ("www.city.kawasaki.jp", "city.kawasaki.jp"),  # an exception rule (!city.kawasaki.jp)
    ("foo.bar.kawasaki.jp", "foo.bar.kawasaki.jp"),  # under a wildcard rule (*.kawasaki.jp)
    ("mail.bücher.de", "xn--bcher-kva.de"),
])
def test_organizational_domain_uses_the_public_suffix_list(domain: str, organization: str | None) -> None:
    """The public suffix plus one label, with wildcard and exception rules."""
    assert organizational_domain(domain) == organization


@pytest.mark.parametrize(("signer", "from_domain", "expected"), [
    ("example.com", "example.com", True),
    ("mail.example.com", "example.com", True),  # subdomain signs for the parent
    ("example.com", "eu.example.com", True),  # parent signs for a subdomain
    ("a.example.com", "b.example.com", True),  # siblings share the organization
    ("example.co.uk", "someone.example.co.uk", True),
    ("co.uk", "example.co.uk", False),  # a suffix vouches for nobody
    ("other.co.uk", "example.co.uk", False),
    ("badexample.com", "example.com", False),
    ("example.com.evil.example", "example.com", False),
    ("alice.github.io", "bob.github.io", False),
    ("EXAMPLE.com.", "example.COM", True),
    ("xn--bcher-kva.de", "mail.bücher.de", True),
    ("", "example.com", False),
    ("example.com", "", False),
])
def test_relaxed_alignment(signer: str, from_domain: str, expected: bool) -> None:
    """Same organizational domain (or the very same name), nothing else."""
    assert aligned(signer, from_domain) is expected


def test_same_domain_and_address_domain() -> None:
    """Exact comparison (case, root dot, IDN spelling aside) and the domain part of an address."""
    assert same_domain("Example.com.", "example.com") and not same_domain("mail.example.com", "example.com")
    assert not same_domain("", "")
    assert address_domain("Alice@Example.COM") == "example.com" == address_domain("@example.com")
    assert address_domain("alice@") is None


def test_the_suffix_list_loads_without_any_network() -> None:
    """A fresh interpreter that refuses every socket operation still computes organizational domains."""
    script = textwrap.dedent("""
        import sys

        def no_network(event, args):
            if event.startswith("socket."):
                raise RuntimeError(f"network use: {event}")

        sys.addaudithook(no_network)
        from channels.email.alignment import aligned, organizational_domain
        assert organizational_domain("a.b.example.co.uk") == "example.co.uk"
        assert not aligned("co.uk", "example.co.uk")
        print("offline ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "offline ok"), done.stderr
