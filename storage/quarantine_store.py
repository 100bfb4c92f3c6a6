"""The quarantine table: poison messages set aside for a person, one row per (channel, key), never retried."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import QuarantineItem
from storage.schema import quarantine

log = structlog.get_logger("opsgate.quarantine")


class QuarantineStore:
    """Store methods for the quarantine; mixed into SqlStore, which provides the engines."""

    engine: AsyncEngine
    reader: AsyncEngine

    async def quarantine(self, item: QuarantineItem) -> bool:
        """Insert unless ``(channel, key)`` is already quarantined; log the new ones."""
        values = item.model_dump()
        values["at"] = item.at.timestamp()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(quarantine).values(**values))
        except IntegrityError:
            return False
        # Operators search the log for this line; detail stays in the table (it may be a whole message).
        log.warning("quarantined", channel=item.channel, key=item.key, reason=item.reason, attempts=item.attempts)
        return True

    async def list_quarantine(self, limit: int = 100) -> list[QuarantineItem]:
        query = select(quarantine).order_by(quarantine.c.at.desc()).limit(limit)
        async with self.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [QuarantineItem(**{**r._asdict(), "at": datetime.fromtimestamp(r.at, UTC)}) for r in rows]
