"""Storable text: NUL and lone surrogates become U+FFFD everywhere text enters the core; nothing else changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.events import EVENT_ADAPTER, ActionProposed, ApprovalDecided, UserMessage, Via
from bot.store import OutboxItem, Ref
from bot.text import REPLACEMENT, storable, storable_data, storable_key


def test_nul_and_lone_surrogates_become_the_replacement_character() -> None:
    """Each NUL and each lone surrogate is replaced by one U+FFFD; the characters around it stay."""
    assert storable("deploy\x00api") == f"deploy{REPLACEMENT}api"
    assert storable("caf\udce9 \ud800x\udfff") == f"caf{REPLACEMENT} {REPLACEMENT}x{REPLACEMENT}"
    assert storable("\x00\x00") == REPLACEMENT * 2


def test_other_text_is_kept_as_it_is() -> None:
    """Control characters, emoji (a valid surrogate pair in UTF-16 but one code point here) and U+FFFF stay."""
    text = "tab\there\r\n\x01\x1f\x7f é 😀 \uffff \U0010ffff"
    assert storable(text) == text
    assert storable(text) is text  # no copy when nothing changes


def test_nested_data_is_cleaned_keys_included() -> None:
    """Strings inside dicts (keys too), lists and tuples are cleaned; numbers, booleans and None are untouched."""
    data = {"k\x00": ["v\x00", {"n": "\ud801"}, 1, None, True], "t": ("a\x00",), "ok": 2.5}
    assert storable_data(data) == {
        f"k{REPLACEMENT}": [f"v{REPLACEMENT}", {"n": REPLACEMENT}, 1, None, True], "t": (f"a{REPLACEMENT}",), "ok": 2.5,
    }
    clean = {"a": ["b", {"c": 1}]}
    assert storable_data(clean) is clean


def test_every_event_string_is_cleaned_when_built() -> None:
    """An event built by any channel holds storable text: message, user, via, arguments, comments."""
    message = UserMessage(text="hi\x00", user="bob\x00", via=Via(channel="slack", message="1.2\x00"))
    assert (message.text, message.user, message.via.message) == ("hi\ufffd", "bob\ufffd", "1.2\ufffd")
    proposed = ActionProposed(name="deploy", arguments={"service": "a\x00pi"}, reason="\ud800")
    assert proposed.arguments == {"service": "a\ufffdpi"} and proposed.reason == REPLACEMENT
    decided = ApprovalDecided(approval_id="a", action_id="b", approved=False, by="carol", comment="no\x00")
    assert decided.comment == "no\ufffd"


def test_stored_json_is_cleaned_when_read() -> None:
    """Events read from JSON written before this rule existed (an escaped NUL) are cleaned too."""
    event = EVENT_ADAPTER.validate_json(b'{"type": "user_message", "text": "a\\u0000b"}')
    assert isinstance(event, UserMessage) and event.text == "a\ufffdb"


def test_refs_and_outbox_items_are_cleaned() -> None:
    """Channel keys (an email Message-ID, a Slack ts) and outbox payloads get the same replacement."""
    assert Ref(channel="email", key="<a\x00@b>").key == "<a\ufffd@b>"
    assert OutboxItem(channel="email", payload={"subject": "x\x00"}).payload == {"subject": "x\ufffd"}


def test_long_keys_are_shortened_the_same_way_every_time() -> None:
    """Keys up to 255 characters stay; longer ones keep their start plus a digest, deterministically and distinctly."""
    assert storable_key("k" * 255) == "k" * 255
    long_a, long_b = "a" * 300 + "1", "a" * 300 + "2"
    assert len(storable_key(long_a)) == 255 and storable_key(long_a) == storable_key(long_a)
    assert storable_key(long_a) != storable_key(long_b)
    assert storable_key("\x00" + "x" * 400).startswith(REPLACEMENT)
    assert Ref(channel="slack", key=long_a).key == storable_key(long_a)


def _reference(value: object) -> object:
    """storable_data by its definition: every string in dicts (keys too), lists and tuples made storable."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {_reference(k): _reference(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_reference(v) for v in value)  # type: ignore[call-arg]
    return value


_TEXT = st.text(alphabet=st.sampled_from(["a", "Z", " ", "é", "\x00", "\ud800", "\udfff", "😀", "\\", "x"]))
_DATA = st.recursive(
    _TEXT | st.integers() | st.none() | st.booleans(),
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(_DATA)
def test_storable_data_is_its_definition_and_keeps_clean_data_as_it_is(data: object) -> None:
    cleaned = storable_data(data)
    assert cleaned == _reference(data) and type(cleaned) is type(data)
    if cleaned == data:
        assert cleaned is data  # nothing replaced: no copy
