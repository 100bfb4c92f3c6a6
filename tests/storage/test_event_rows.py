"""Stored events are smaller than their JSON (no type, no time, no approval copy of its proposal, no empty lists)
and load back identical; rows written before each of those was left out still load."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import UnionType
from typing import Any, Union, get_args, get_origin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from sqlalchemy import insert, select

from bot.events import (
    AUDIT_TYPES,
    EVENT_ADAPTER,
    ActionProposed,
    ApprovalDecided,
    ApprovalRequested,
    ArgumentChange,
    Done,
    Event,
    Quote,
    UserMessage,
)
from storage import SqlStore
from storage.rows import dump_event, empty_defaults, load_events
from storage.schema import events, threads
from tests.storage.test_sql_store import create


def request_for(proposal: ActionProposed, **changes: object) -> ApprovalRequested:
    fields = {"action_id": proposal.action_id, "name": proposal.name, "arguments": proposal.arguments,
              "reason": proposal.reason, "approvers": ["carol"], "requester": "bob", "four_eyes": True}
    return ApprovalRequested(**{**fields, **changes})  # type: ignore[arg-type]


async def stored(store: SqlStore, thread_id: str) -> list[dict[str, object]]:
    async with store.reader.connect() as conn:
        rows = (await conn.execute(select(events.c.data).where(events.c.thread_id == thread_id)
                                   .order_by(events.c.seq))).all()
    return [json.loads(r.data) for r in rows]


async def test_an_approval_request_is_stored_without_its_proposal_copy(store: SqlStore) -> None:
    """Written with its proposal, a request keeps only what is its own; it loads (and audits) identical."""
    thread = await create(store)
    proposal = ActionProposed(name="deploy", arguments={"service": "api", "version": "1.2.3"}, reason="asked")
    request = request_for(proposal)
    await store.append(thread.id, [proposal, request], expected_seq=2, status="waiting_for_approval",
                       agent="deploy")
    rows = await stored(store, thread.id)
    assert all("type" not in row for row in rows)
    assert {"name", "arguments", "reason"}.isdisjoint(rows[3]) and rows[3]["approval_id"] == request.approval_id
    loaded = await store.load_thread(thread.id)
    assert loaded is not None and loaded.events[2:] == [proposal, request]
    since = datetime.now(UTC) - timedelta(minutes=1)
    audited = [r.event async for r in store.audit(since, AUDIT_TYPES)]
    assert audited == [request]


async def test_a_request_that_differs_from_its_proposal_keeps_its_own_values(store: SqlStore) -> None:
    """A request whose arguments differ from the proposal's, or whose proposal came in an earlier write, is
    stored whole."""
    thread = await create(store)
    proposal = ActionProposed(name="deploy", arguments={"service": "api"})
    differing = request_for(proposal, arguments={"service": "web"})
    await store.append(thread.id, [proposal, differing], expected_seq=2, status="waiting_for_approval",
                       agent="deploy")
    later = request_for(proposal)
    await store.append(thread.id, [later], expected_seq=4, status="waiting_for_approval", agent="deploy")
    rows = await stored(store, thread.id)
    assert rows[3]["arguments"] == {"service": "web"} and rows[4]["name"] == "deploy"
    loaded = await store.load_thread(thread.id)
    assert loaded is not None and loaded.events[2:] == [proposal, differing, later]


async def test_a_request_restores_its_copy_whatever_its_text_and_arguments_say(store: SqlStore) -> None:
    """Loading looks for the request's own name in its JSON text: a quote that reads '"name": x', an argument
    called name and a reason with quotes neither fool it when the copy was left out, nor when it was not."""
    thread = await create(store)
    proposal = ActionProposed(name="grant", arguments={"name": "db-admin", "user": "bob"},
                              reason='asked for "name": db-admin')
    split = request_for(proposal, quotes=[Quote(by="bob", text='give me "name": "db-admin", "action_id":"x"')])
    other = ActionProposed(name="grant", arguments={"name": "ops"})
    whole = request_for(other, arguments={"name": "ops", "user": "eve"}, quotes=[Quote(by="bob", text='"name":')])
    await store.append(thread.id, [proposal, split, other, whole], expected_seq=2, status="waiting_for_approval",
                       agent="deploy")
    rows = await stored(store, thread.id)
    assert "name" not in rows[3] and rows[5]["name"] == "grant"
    loaded = await store.load_thread(thread.id)
    assert loaded is not None and loaded.events[2:] == [proposal, split, other, whole]


async def test_the_time_is_stored_in_its_column_only_and_reads_back_to_the_microsecond(store: SqlStore) -> None:
    """No ``at`` in the JSON; loading and the audit export give it back exactly, from the float column."""
    thread = await create(store)
    odd = datetime(2031, 7, 9, 23, 59, 59, 999_999, tzinfo=UTC)
    proposal = ActionProposed(name="deploy", arguments={"at": "5pm"}, at=odd)  # an argument named "at" stays
    request = request_for(proposal, at=odd + timedelta(microseconds=1))
    done = Done(message="ok", at=datetime(2031, 7, 10, tzinfo=UTC))  # no fraction at all
    await store.append(thread.id, [proposal, request, done], expected_seq=2, status="done", agent="deploy")
    rows = await stored(store, thread.id)
    assert all("at" not in row for row in rows) and rows[2]["arguments"] == {"at": "5pm"}
    loaded = await store.load_thread(thread.id)
    assert loaded is not None and loaded.events == thread.events + [proposal, request, done]
    assert [e.at for e in loaded.events[2:]] == [odd, odd + timedelta(microseconds=1), done.at]
    audited = [r.event async for r in store.audit(odd - timedelta(seconds=1), AUDIT_TYPES)]
    assert audited == [request] and audited[0].at == request.at


def test_a_request_without_its_copy_takes_the_latest_matching_proposal_before_it_or_fails() -> None:
    """The copy left out comes from the latest proposal of the same action written before the request (a copy of
    its arguments); with none there, loading fails as the request as stored fails: its name is missing."""
    first = ActionProposed(name="deploy", arguments={"service": "api"}, reason="first")
    again = first.model_copy(update={"id": "again", "arguments": {"service": "api", "version": "2"}, "reason": None})
    unrelated = ActionProposed(name="restart", arguments={"service": "db"})
    request = request_for(again)
    rows = [(e.type, e.at.timestamp(), dump_event(e, {again.action_id: again} if e is request else None))
            for e in (first, again, unrelated, request)]
    assert '"name"' not in rows[3][2]
    loaded = load_events(rows)
    assert loaded == [first, again, unrelated, request]
    assert loaded[3].arguments is not loaded[1].arguments  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="name"):
        load_events([rows[2], rows[3]])  # only another action's proposal before it
    with pytest.raises(ValidationError, match="name"):
        load_events([rows[3], rows[1]])  # its proposal only after it


@settings(max_examples=300, deadline=None)
# Up to 2**33 seconds (2242-03-16): below it a double's step is under a microsecond; above, 1.9 µs.
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2242, 3, 16), timezones=st.just(UTC)))
def test_any_time_reads_back_from_its_column_exactly(at: datetime) -> None:
    """The column's float goes back into the JSON as epoch seconds: the same instant to the microsecond, in UTC."""
    event = Done(message="ok", at=at)
    loaded = load_events([(event.type, at.timestamp(), dump_event(event))])
    assert loaded == [event] and loaded[0].at.utcoffset() == timedelta(0)


async def test_rows_written_with_their_type_and_time_in_the_json_still_load(store: SqlStore) -> None:
    """Rows from before 0006 (type and time in the JSON) and before short ids (time in the JSON): a repeated key
    with the same value, read as before, in loads and in the audit export."""
    old_id = "5f0c1e2d3b4a49788796a5b4c3d2e1f0"  # a 32-hex id, as every id was
    at = datetime(2026, 11, 1, 8, 30, 15, 123_456, tzinfo=UTC)
    message = UserMessage(id="0" * 32, text="deploy api", user="bob", at=at)
    proposal = ActionProposed(id="1" * 32, action_id="2" * 32, name="deploy", arguments={"service": "api"}, at=at)
    request = request_for(proposal, id="3" * 32, approval_id="4" * 32, at=at + timedelta(microseconds=7))
    written: list[Event] = [message, proposal, request]
    datas = [
        message.model_dump_json(exclude_none=True),  # before 0006: everything, type included
        proposal.model_dump_json(exclude_none=True, exclude={"type"}),  # 0006 to now: type left out
        request.model_dump_json(exclude_none=True, exclude={"type", "name", "arguments", "reason"}),
    ]
    assert all(data.startswith('{"id":"') and '"at":"' in data for data in datas)
    async with store.engine.begin() as conn:
        await conn.execute(insert(threads).values(
            id=old_id, agent="deploy", status="waiting_for_approval", title="deploy api", seq=3,
            created_at=at.timestamp(), updated_at=at.timestamp(), not_before=0, attempts=0))
        await conn.execute(insert(events), [
            {"thread_id": old_id, "seq": i + 1, "type": e.type, "at": e.at.timestamp(), "data": data}
            for i, (e, data) in enumerate(zip(written, datas, strict=True))])
    loaded = await store.load_thread(old_id)
    assert loaded is not None and loaded.events == written and loaded.pending is not None
    assert [e.at for e in loaded.events] == [e.at for e in written]
    audited = [r.event async for r in store.audit(at - timedelta(seconds=1), AUDIT_TYPES)]
    assert audited == [request]


# Left out of the stored JSON when empty, given back by their empty default on load. A field leaves this list only
# with a migration: were its default to become non-empty, old rows stored without it would read as that default.
LEFT_OUT_WHEN_EMPTY = {
    "action_proposed": {"arguments"}, "approval_decided": {"changes"}, "approval_escalated": {"approvers"},
    "approval_reminded": {"approvers"}, "approval_requested": {"approvers", "claims", "quotes"},
}


def test_only_fields_with_empty_defaults_are_left_out_when_empty() -> None:
    """The fields left out when empty are exactly the pinned ones, each with an empty list or dict default."""
    found = {}
    for model in get_args(get_args(Event)[0]):
        names = empty_defaults(model)
        if names:
            found[model.model_fields["type"].default] = set(names)
            assert all(model.model_fields[n].get_default(call_default_factory=True) in ([], {}) for n in names)
    assert found == LEFT_OUT_WHEN_EMPTY


async def test_empty_lists_are_left_out_and_read_back_empty_while_full_ones_are_kept(store: SqlStore) -> None:
    """An empty list or dict with an empty default is not stored and loads as that default; filled ones stay."""
    thread = await create(store)
    proposal = ActionProposed(name="restart")
    request = request_for(proposal, approvers=[], quotes=[Quote(by="bob", text="restart it")])
    decision = ApprovalDecided(approval_id=request.approval_id, action_id=proposal.action_id, approved=True,
                               by="carol")
    edited = ApprovalDecided(approval_id=request.approval_id, action_id=proposal.action_id, approved=True,
                             by="carol", arguments={"force": True},
                             changes=[ArgumentChange(field="force", old=None, new=True)])
    await store.append(thread.id, [proposal, request, decision, edited], expected_seq=2, status="running",
                       agent="deploy")
    rows = await stored(store, thread.id)
    assert "arguments" not in rows[2] and {"approvers", "claims"}.isdisjoint(rows[3])
    assert rows[3]["quotes"] == [{"by": "bob", "text": "restart it"}] and "changes" not in rows[4]
    assert rows[5]["changes"] == [{"field": "force", "new": True}]  # None inside a change is left out as before
    loaded = await store.load_thread(thread.id)
    assert loaded is not None and loaded.events[2:] == [proposal, request, decision, edited]


def test_stored_rows_are_not_cleaned_again_unless_they_predate_storable_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row went through a model that made its strings storable: loads skip that walk (issue 11). A row
    from before StorableModel (SQLite kept an escaped NUL) is still cleaned on load."""
    import bot.text
    from storage.rows import load_events

    walked: list[object] = []
    real = bot.text.storable  # what the walk calls on each string that needs cleaning
    monkeypatch.setattr(bot.text, "storable", lambda value: walked.append(value) or real(value))
    # Not ASCII, so walking it would look at the text (plain ASCII strings are passed over inline).
    clean = '{"id":"e1","text":"please d\u00e9ploy api","user":"U1","via":{"channel":"slack","conversation":"C1"}}'
    [message] = load_events([("user_message", 1.7e9, clean)])
    assert message.text == "please d\u00e9ploy api" and walked == []

    old = '{"id":"e2","text":"deploy\\u0000api","user":"U1"}'
    [message] = load_events([("user_message", 1.7e9, old)])
    assert message.text == "deploy\ufffdapi"
    assert walked


def test_a_loaded_thread_does_not_walk_its_events_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread built from loaded events takes them as validated: a model's after-validator would otherwise run
    on each event again and look at every string (issue 11: a third of a load)."""
    import bot.text
    from storage.rows import make_thread

    walked: list[object] = []
    real = bot.text.storable
    monkeypatch.setattr(bot.text, "storable", lambda value: walked.append(value) or real(value))
    data = '{"id":"e1","text":"d\\u00e9ploie api","user":"U1"}'
    thread = make_thread("t1", [("deploy", 1.7e9, 1.7e9, "user_message", 1.7e9, data)])
    assert thread is not None and thread.status == "running" and thread.events[0].text == "d\u00e9ploie api"
    assert walked == []


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                     max_leaves=8)


def _every_field(model: type[BaseModel]) -> st.SearchStrategy[BaseModel]:
    """Instances of ``model`` with every field drawn (optional ones too, not only the required)."""
    return st.builds(model, **{name: _values(field.annotation) for name, field in model.model_fields.items()})


def _values(annotation: Any) -> st.SearchStrategy[Any]:
    """Values of a field's type; JSON where it says Any (hypothesis has no strategy for Any), also inside lists."""
    if annotation is Any:
        return _JSON
    if get_origin(annotation) is dict and get_args(annotation)[1] is Any:
        return st.dictionaries(st.text(), _JSON, max_size=3)
    if get_origin(annotation) is list and isinstance(get_args(annotation)[0], type) and issubclass(
            get_args(annotation)[0], BaseModel):
        return st.lists(_every_field(get_args(annotation)[0]), max_size=2)
    if get_origin(annotation) in (Union, UnionType):
        return st.one_of([_values(arm) for arm in get_args(annotation)])
    return st.from_type(annotation)


_ANY_EVENT = st.one_of([_every_field(model) for model in get_args(get_args(Event)[0])])


@settings(max_examples=300, deadline=None)
@given(_ANY_EVENT)
def test_each_event_is_written_by_its_own_serializer_exactly_as_by_the_union(event: Event) -> None:
    """dump_event uses the event type's serializer: byte for byte what EVENT_ADAPTER writes, and it loads back."""
    exclude = {"type", "at", *(name for name in empty_defaults(type(event)) if not getattr(event, name))}
    assert dump_event(event) == EVENT_ADAPTER.dump_json(event, exclude_none=True, exclude=exclude).decode()
