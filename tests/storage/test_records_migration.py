"""Migration 0009 moves the old deployment ledger's rows into the deploy agent's records, on both backends."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage import SqlStore, upgrade
from tests.support.deploy_ledger import deploy_ledger


async def test_the_ledger_rows_survive_the_move_to_records(database_url: str) -> None:
    """Rows written to ``deployments`` before 0009 read back through the deploy agent's ledger afterwards."""
    await upgrade(database_url, "0008")
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            for key, version, at in (("t1:a1", "1.0.0", 1_700_000_000.0), ("t2:a1", "1.1.0", 1_700_000_600.0)):
                await conn.execute(text(
                    "INSERT INTO deployments (idempotency_key, action, service, environment, version, thread_id,"
                    " action_id, approved_by, at) VALUES (:k, 'deploy', 'api', 'production', :v, 't', 'a1',"
                    " 'alice', :at)"), {"k": key, "v": version, "at": at})
    finally:
        await engine.dispose()
    await upgrade(database_url)
    store = SqlStore.from_url(database_url)
    try:
        entries = await deploy_ledger(store, "api")
    finally:
        await store.close()
    assert [(e.idempotency_key, e.version, e.approved_by) for e in entries] == [
        ("t2:a1", "1.1.0", "alice"), ("t1:a1", "1.0.0", "alice")]
    assert entries[0].at.timestamp() == 1_700_000_600.0
