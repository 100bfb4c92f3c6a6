"""The deploy ledger: every deploy and rollback that went through, kept in the deploy agent's own records.

``recent_deploys`` is the deploy agent's public read interface (the incident agent uses it); nothing else
reads these records.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from bot.agent import AgentRecords, RecordReader
from bot.events import utcnow

OWNER = "deploy"
KIND = "ledger"


class LedgerEntry(BaseModel):
    """One deploy or rollback, keyed by the idempotency key recorded before its side effect."""

    idempotency_key: str
    action: str
    service: str
    environment: str
    version: str | None = None
    thread_id: str | None = None
    action_id: str | None = None
    approved_by: str | None = None
    at: datetime = Field(default_factory=utcnow)

    def line(self) -> str:
        """``2026-11-30 09:12 deploy api 1.4.2 production (approved by ...)``."""
        return (f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.service} {self.version or '-'} {self.environment}"
                f" (approved by {self.approved_by or 'no approval needed'})")


async def record(records: AgentRecords, entry: LedgerEntry) -> bool:
    """Add an entry; False when its idempotency key is already there (nothing written)."""
    body = entry.model_dump(mode="json", exclude={"at"})
    return await records.add(KIND, entry.idempotency_key, body, tag=entry.service, at=entry.at)


async def entries(records: RecordReader, service: str | None = None, limit: int = 50) -> list[LedgerEntry]:
    """Ledger entries, newest first, optionally for one service."""
    found = await records.list(KIND, tag=service, limit=limit)
    return [LedgerEntry(**{**r.body, "at": r.at}) for r in found]


async def recent_deploys(records: AgentRecords, service: str | None = None, limit: int = 10) -> list[LedgerEntry]:
    """The deploy agent's public interface: recent deploys and rollbacks, for any agent's records handle."""
    return await entries(records.of(OWNER), service, limit)
