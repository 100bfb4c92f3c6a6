"""Our address, plus-tags, agent selection by address, and the Message-IDs that encode the thread."""

from __future__ import annotations

import pytest

from bot.events import new_id
from channels.email.addresses import Address, agent_for, is_ours, make_message_id, parse_message_id, ref_key

OWN = Address("opsgate", None, "example.com")


def test_address_parsing_and_tags() -> None:
    """Display names and case are dropped; the plus-tag is split off."""
    parsed = Address.parse("Ops <OpsGate+Deploy@Example.COM>")
    assert parsed == Address("opsgate", "deploy", "example.com")
    assert parsed.base == "opsgate@example.com" and parsed.with_tag("x") == "opsgate+x@example.com"
    assert Address.parse("not an address") is None
    assert is_ours("opsgate+abc@example.com", OWN) and not is_ours("opsgate@example.org", OWN)


def test_agent_from_plus_tag_or_alias() -> None:
    """``opsgate+deploy@`` and ``deploy@<our domain>`` pick the deploy agent; other tags pick nothing."""
    agents = ["deploy", "triage"]
    assert agent_for(["opsgate+triage@example.com"], OWN, agents) == "triage"
    assert agent_for(["someone@else.org", "deploy@example.com"], OWN, agents) == "deploy"
    assert agent_for(["opsgate+unknown@example.com"], OWN, agents) is None
    assert agent_for(["deploy@other.example.org"], OWN, agents) is None
    assert agent_for(["opsgate@example.com"], OWN, agents) is None


@pytest.mark.parametrize("thread_id", ["3f2a9c1e8b7d4e6fa1b2c3d4e5f60718", new_id()], ids=["32-hex id", "short id"])
def test_message_id_round_trip(thread_id: str) -> None:
    """Our Message-IDs give back their thread and kind, for today's short thread ids and for the 32-hex ids of
    threads made before (replies to their mails still find them); other domains' and other people's ids give
    None."""
    mid = make_message_id(thread_id, "approval", "example.com")
    ours = parse_message_id(mid, "example.com")
    assert ours is not None and ours.thread_id == thread_id and ours.kind == "approval"
    assert make_message_id("t1", "reply", "example.com") != make_message_id("t1", "reply", "example.com")
    assert parse_message_id(mid, "example.org") is None
    assert parse_message_id("<CAJx9QkWq1Zr7n0v2Fh3=Gk_m2p@mail.gmail.com>", "example.com") is None


def test_long_message_ids_are_hashed_for_the_store() -> None:
    """Ref keys stay under the column's 255 characters."""
    long_id = "<" + "x" * 400 + "@example.com>"
    assert len(ref_key(long_id)) < 100 and ref_key(long_id) == ref_key(long_id)
    assert ref_key("<short@x>") == "<short@x>"
