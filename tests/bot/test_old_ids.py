"""Ids are short now (16 characters of lower-case base32); threads made before, with 32-hex ids and whole-JSON
event rows, still work: shown, approved and run through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
import re
from collections import Counter

import pytest

from bot import events
from bot.config import load_settings
from bot.events import ActionProposed, AgentSelected, ApprovalRequested, UserMessage, Via, new_id
from bot.thread import Thread
from storage import upgrade
from tests.support.api_client import TOKEN, ApiClient
from tests.support.app_server import serving
from tests.support.old_rows import old_id, write_old_thread

APPROVER = "alice@example.com"
REQUESTER = "bob@example.com"
_NEW_ID = re.compile(r"[a-z2-7]{16}")


def test_new_ids_are_16_lower_case_base32_characters_and_do_not_repeat() -> None:
    """Every id is 16 characters of a-z and 2-7 (80 random bits); 100,000 of them are all different."""
    ids = [new_id() for _ in range(100_000)]
    assert all(_NEW_ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert len(set("".join(ids))) == 32  # the whole alphabet is used: the bits are all there


def test_each_character_of_an_id_is_the_low_five_bits_of_one_random_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    """16 random bytes, each spelled by its low five bits in base32's alphabet (RFC 4648, lower case): all 80 bits
    are random and each character is uniform (every 5-bit value comes from exactly 8 of the 256 bytes)."""
    # Base32's character for each 5-bit value v: the first of the encoding of one byte whose top bits are v.
    alphabet = "".join(base64.b32encode(bytes([v << 3])).decode("ascii")[0] for v in range(32)).lower()
    assert alphabet == "abcdefghijklmnopqrstuvwxyz234567"
    for raw in (bytes(16), b"\xff" * 16, bytes(range(240, 256)), *(os.urandom(16) for _ in range(2000))):
        monkeypatch.setattr(events._RANDOM, "take", lambda n, raw=raw: raw[:n])
        assert new_id() == "".join(alphabet[byte & 31] for byte in raw)
    counts = Counter(events._BASE32)
    assert len(counts) == 32 and set(counts.values()) == {8}


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    """Ids come from the OS 4 KiB at a time; a child forked with part of that buffer left starts afresh."""
    new_id()  # the parent has bytes buffered
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, " ".join(new_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    parent = {new_id() for _ in range(50)}
    assert len(child) == 50 and not child & parent


def old_waiting_thread() -> Thread:
    """A deploy waiting for approval, every id 32 hex characters, as threads were made before ids got short."""
    proposal = ActionProposed(id=old_id(), action_id=old_id(), name="deploy", source="command",
                              arguments={"service": "api", "version": "1.2.3", "environment": "production"})
    return Thread(id=old_id(), agent="deploy", events=[
        UserMessage(id=old_id(), text="!deploy service=api version=1.2.3 environment=production",
                    user=REQUESTER, person=REQUESTER, via=Via(channel="api")),
        AgentSelected(id=old_id(), agent="deploy", reason="command"),
        proposal,
        ApprovalRequested(id=old_id(), approval_id=old_id(), action_id=proposal.action_id, name=proposal.name,
                          arguments=proposal.arguments, approvers=[APPROVER], requester=REQUESTER,
                          requester_person=REQUESTER, four_eyes=True),
    ])


async def test_a_thread_with_32_hex_ids_is_shown_approved_and_run_through_the_api(database_url: str) -> None:
    """GET /threads/{old id} shows it waiting with its old approval id; approving it by that id runs it to done."""
    settings = load_settings({
        "DATABASE_URL": database_url, "OPSGATE_API_TOKEN": TOKEN, "OPSGATE_API_TRUSTED_RELAY": "true",
        "OPSGATE_APPROVERS": APPROVER, "OPSGATE_POLL_INTERVAL": "0.05",
    })
    await upgrade(database_url)  # what `opsgate db upgrade` does (PostgreSQL is never upgraded on start)
    old = old_waiting_thread()
    await write_old_thread(database_url, old, "waiting_for_approval")
    assert old.pending is not None
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in (old.id, old.pending.approval_id))
    async with serving(settings) as (base_url, _):
        api = ApiClient(base_url)
        try:
            shown = await api.thread(old.id)
            assert shown["id"] == old.id and shown["status"] == "waiting_for_approval"
            assert shown["pending"]["approval_id"] == old.pending.approval_id
            assert (await api.approve(shown, APPROVER)).status_code == 202
            done = await api.wait(old.id, "done")
        finally:
            await api.aclose()
    [decision] = [e for e in done["events"] if e["type"] == "approval_decided"]
    assert decision["approval_id"] == old.pending.approval_id and decision["by"] == APPROVER
    assert [e["type"] for e in done["events"]].count("action_result") == 1
    assert done["events"][0]["at"] == old.events[0].model_dump(mode="json")["at"]
