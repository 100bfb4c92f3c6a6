"""Text with NUL and lone surrogates is stored the same way on SQLite and PostgreSQL (U+FFFD), never an error."""

from __future__ import annotations

from bot.events import ActionProposed, AgentSelected, UserMessage, Via, new_id
from bot.store import Ref
from bot.thread import Thread
from storage import SqlStore

HOSTILE = "deploy\x00api \ud800 1.2.3"
STORED = "deploy\ufffdapi \ufffd 1.2.3"


async def test_hostile_text_is_stored_with_replacements(store: SqlStore) -> None:
    """A thread whose message, user, via, arguments and ref hold NUL/surrogates is written and read back cleaned."""
    thread = Thread(id=new_id(), events=[
        UserMessage(text=HOSTILE, user="bob\x00@example.com", via=Via(channel="email", message="<m\x00@x>")),
        AgentSelected(agent="deploy"),
    ])
    await store.create_thread(thread, thread.status, refs=[Ref(channel="email", key="<m\x00@x>")])
    proposed = ActionProposed(name="deploy", arguments={"service": "a\x00pi", "notes": ["\udc80"]})
    await store.append(thread.id, [proposed], expected_seq=thread.seq, status="running", agent="deploy")

    loaded = await store.load_thread(thread.id)
    assert loaded is not None
    first = loaded.events[0]
    assert isinstance(first, UserMessage)
    assert (first.text, first.user, first.via.message) == (STORED, "bob\ufffd@example.com", "<m\ufffd@x>")
    last = loaded.events[-1]
    assert isinstance(last, ActionProposed) and last.arguments == {"service": "a\ufffdpi", "notes": ["\ufffd"]}
    [summary] = await store.list_threads()
    assert summary.title == STORED and summary.requester == "bob\ufffd@example.com"


async def test_lookups_with_raw_hostile_keys_find_the_cleaned_rows(store: SqlStore) -> None:
    """A ref recorded from a raw key with NUL is found by the same raw key; a NUL thread id is simply unknown."""
    assert await store.put_ref(Ref(channel="slack", key="C1:17\x00", thread_id="t1"))
    found = await store.get_ref("slack", "C1:17\x00")
    assert found is not None and found.thread_id == "t1" and found.key == "C1:17\ufffd"
    assert not await store.put_ref(Ref(channel="slack", key="C1:17\x00"))  # the same raw key is a duplicate
    assert await store.get_ref("slack\x00", "\ud800") is None
    assert await store.load_thread("abc\x00") is None


async def test_long_keys_fit_on_both_backends_and_are_found_by_the_raw_key(store: SqlStore) -> None:
    """A 5,000-character key is stored shortened (PostgreSQL's 255 limit) and found again by the same raw key."""
    long_key = "<" + "m" * 5000 + "@example.com>"
    other = "<" + "m" * 5000 + "@example.org>"
    assert await store.put_ref(Ref(channel="email", key=long_key, thread_id="t1"))
    assert await store.put_ref(Ref(channel="email", key=other, thread_id="t2"))
    found = await store.get_ref("email", long_key)
    assert found is not None and found.thread_id == "t1" and len(found.key) == 255
    assert found.key.startswith("<mmm")
    again = await store.get_ref("email", other)
    assert again is not None and again.thread_id == "t2"
    assert not await store.put_ref(Ref(channel="email", key=long_key))
