"""Reading and writing the deploy agent's ledger in tests, through the agent's own functions."""

from __future__ import annotations

from agents.deploy import ledger
from agents.deploy.ledger import LedgerEntry
from bot.agent import AgentRecords
from bot.store import Records


def deploy_records(store: Records) -> AgentRecords:
    """The deploy agent's records handle, as its tools get it."""
    return AgentRecords(store, ledger.OWNER)


async def deploy_ledger(store: Records, service: str | None = None, limit: int = 50) -> list[LedgerEntry]:
    """The ledger, newest first."""
    return await ledger.entries(deploy_records(store), service, limit)


async def add_to_ledger(store: Records, entry: LedgerEntry) -> bool:
    """Record an entry as the deploy agent would."""
    return await ledger.record(deploy_records(store), entry)
