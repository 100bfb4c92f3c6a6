"""The direct-driver hot path and the SQLAlchemy schema agree, on SQLite and PostgreSQL.

The schema is defined once (``storage.schema`` and the Alembic migrations made from it); the hot path's SQL is
written by hand. These tests prepare every hot statement against a database made from the metadata alone, check
the parameter types PostgreSQL infers against the metadata's column types, and write random values through the
hot path that must read back identically through SQLAlchemy Core (lengths, NULLs, unicode, JSON).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Float, Integer, String, Text, select
from sqlalchemy.ext.asyncio import create_async_engine

from bot.events import AgentSelected, UserMessage, Via, new_id
from bot.store import OutboxItem, Ref
from bot.thread import Thread
from storage import SqlStore, hot_sql, inbox
from storage.database import asyncpg_dsn, is_sqlite, sqlite_path
from storage.schema import events, metadata, outbox, refs, threads
from tests.support.databases import postgres_database, sqlite_url

_PG_TYPES = {Integer: {"int4", "int8"}, Float: {"float8"}, String: {"varchar", "text"}, Text: {"text", "varchar"}}
_INSERT = re.compile(r"INSERT INTO (\w+) \(([^)]*)\) VALUES \(([^)]*)\)")


@pytest.fixture(params=["sqlite", "postgres"])
async def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database whose tables come from ``storage.schema.metadata`` alone (no migrations)."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "metadata.db")
        await _create_all(url)
        yield url
    else:
        async with postgres_database() as url:
            await _create_all(url)
            yield url


async def _create_all(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
    finally:
        await engine.dispose()


async def test_migrations_build_exactly_the_metadata(migrated_url: str) -> None:
    """Alembic's head and storage.schema describe the same tables, columns, types and indexes."""
    engine = create_async_engine(migrated_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
    finally:
        await engine.dispose()
    assert diff == []


async def test_only_running_threads_are_in_the_runnable_index(migrated_url: str) -> None:
    """``ix_threads_runnable`` holds running threads only (0012): a thread waiting for a person or finished costs no
    entry there. PostgreSQL's claim lookup uses it; SQLite's planner (no statistics) searches by status in
    ``ix_threads_status_updated``, equally in order: either way the claim is an index search, never a scan."""
    now = datetime.now(UTC).timestamp()
    store = SqlStore.from_url(migrated_url)
    try:
        for status in ("running", "waiting_for_approval", "waiting_for_approval", "done"):
            thread = Thread(id=new_id(), events=[UserMessage(text="deploy api", user="U1")])
            await store.create_thread(thread, status)
    finally:
        await store.close()
    probe = hot_sql.PROBE_RUNNABLE
    if is_sqlite(migrated_url):
        conn = sqlite3.connect(sqlite_path(migrated_url))
        try:
            plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + hot_sql.sqlite(probe), [now]))
            entries = conn.execute("SELECT count(*) FROM threads INDEXED BY ix_threads_runnable"
                                   " WHERE status = 'running'").fetchone()[0]
            partial = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'ix_threads_runnable'").fetchone()[0]
        finally:
            conn.close()
        assert plan.startswith("SEARCH threads USING INDEX ix_threads_"), plan
        assert "TEMP B-TREE" not in plan  # already in updated_at order
        assert entries == 1 and "WHERE status = 'running'" in partial
        return
    pg = await asyncpg.connect(asyncpg_dsn(migrated_url))
    try:
        await pg.execute("SET enable_seqscan = off")  # a four-row table would be scanned otherwise
        plan = " ".join(r[0] for r in await pg.fetch("EXPLAIN " + hot_sql.postgres(probe), now))
        definition = await pg.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_threads_runnable'")
    finally:
        await pg.close()
    assert "ix_threads_runnable" in plan and "WHERE ((status)::text = 'running'::text)" in definition


async def test_every_hot_statement_prepares_against_the_metadata_schema(metadata_url: str) -> None:
    """Each hand-written statement names only tables and columns the metadata has, on both backends."""
    statements = {**hot_sql.ALL, **inbox.SQL}
    assert len(statements) >= 25
    if is_sqlite(metadata_url):
        conn = sqlite3.connect(sqlite_path(metadata_url))
        try:
            for sql in statements.values():
                statement = hot_sql.sqlite(sql)
                count = len(set(re.findall(r"\?(\d+)", statement)))
                conn.execute("EXPLAIN " + statement, [None] * count)  # compiles; sqlite3 raises on a bad name
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(asyncpg_dsn(metadata_url))
    try:
        for name, sql in statements.items():
            prepared = await pg.prepare(hot_sql.postgres(sql))
            match = _INSERT.match(sql)
            if match is None:
                continue
            table = metadata.tables[match.group(1)]
            columns = [c.strip() for c in match.group(2).split(",")]
            values = [v.strip() for v in match.group(3).split(",")]
            types = [t.name for t in prepared.get_parameters()]
            for column, value in zip(columns, values, strict=True):
                if value.startswith("$"):
                    declared = type(table.c[column].type)
                    assert types[int(value[1:]) - 1] in _PG_TYPES[declared], (name, column)
    finally:
        await pg.close()


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=300)
_key = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=255)
_json = st.dictionaries(st.text(max_size=10).filter(lambda s: "\x00" not in s),
                        st.one_of(st.integers(-(2**53), 2**53), st.booleans(), st.none(), _text), max_size=4)


# Event times to the microsecond, in any zone (stored as the instant: read back in UTC, equal).
_at = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1),
                   timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_text, user=st.one_of(st.none(), _text), key=_key, ref_data=st.one_of(st.none(), _json),
       payload=_json, at=st.tuples(_at, _at))
async def test_values_written_by_the_hot_path_read_back_through_sqlalchemy(
    store: SqlStore, text: str, user: str | None, key: str, ref_data: dict[str, object] | None,
    payload: dict[str, object], at: tuple[datetime, datetime],
) -> None:
    """Whatever a person types ends up in the columns the metadata declares, within their lengths, intact; the
    events read back equal to the ones written, their times (kept in the ``at`` column only) to the microsecond."""
    thread = Thread(id=new_id(), agent="deploy", events=[
        UserMessage(text=text, user=user, via=Via(channel="slack"), at=at[0]), AgentSelected(agent="deploy", at=at[1]),
    ])
    key = (new_id()[:8] + key)[:255]  # the database is shared by every example
    ref = Ref(channel="slack", key=key, data=ref_data)
    await store.create_thread(thread, "running", refs=[ref],
                              outbox=[OutboxItem(channel="web", payload=payload)])
    async with store.reader.connect() as conn:
        row = (await conn.execute(select(threads).where(threads.c.id == thread.id))).one()
        event_rows = (await conn.execute(select(events).where(events.c.thread_id == thread.id)
                                         .order_by(events.c.seq))).all()
        ref_row = (await conn.execute(select(refs).where(refs.c.key == key))).one()
        box = (await conn.execute(select(outbox).where(outbox.c.thread_id == thread.id))).one()
    assert (row.agent, row.status, row.seq, row.attempts, row.lease_owner) == ("deploy", "running", 2, 0, None)
    assert row.title == thread.title[:120] and len(row.title) <= threads.c.title.type.length
    assert row.requester == ((user or None) and user[:255])
    assert [(r.seq, r.type) for r in event_rows] == [(1, "user_message"), (2, "agent_selected")]
    assert isinstance(event_rows[0].at, float) and isinstance(row.created_at, float)
    assert ref_row.thread_id == thread.id
    fetched = await store.get_ref("slack", key)
    assert fetched is not None and fetched.data == ref_data
    assert box.status == "pending" and box.attempts == 0 and box.next_attempt_at == box.created_at
    assert [r.at for r in event_rows] == [t.timestamp() for t in at]
    loaded = await store.load_thread(thread.id)
    assert loaded is not None and loaded.events == thread.events
    assert [e.at for e in loaded.events] == list(at) and all(e.at.utcoffset() == timedelta(0) for e in loaded.events)
    assert loaded.events[0].model_dump() == thread.events[0].model_dump()
