"""The records table: agents' own small tables in one generic store (bot/store.py ``Records``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import Record
from storage.schema import records


class RecordStore:
    """Store methods for agents' records; mixed into SqlStore, which provides the engines."""

    engine: AsyncEngine
    reader: AsyncEngine

    async def add_record(self, record: Record) -> bool:
        """Insert unless ``(owner, kind, key)`` exists; False (nothing written) when it does."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(records).values(**_row(record)))
        except IntegrityError:
            return False
        return True

    async def replace_record(self, record: Record, *, expected: Record | None) -> bool:
        """Overwrite a record only if it still holds ``expected``'s body (compare-and-set); False if it changed."""
        if expected is None:
            return await self.add_record(record)
        row = _row(record)
        query = update(records).where(
            records.c.owner == record.owner, records.c.kind == record.kind, records.c.key == record.key,
            records.c.body == _row(expected)["body"],
        ).values(tag=row["tag"], body=row["body"], at=row["at"])
        async with self.engine.begin() as conn:
            return (await conn.execute(query)).rowcount == 1

    async def get_record(self, owner: str, kind: str, key: str) -> Record | None:
        query = select(records).where(records.c.owner == owner, records.c.kind == kind, records.c.key == key)
        async with self.reader.connect() as conn:
            row = (await conn.execute(query)).first()
        return _record(row) if row else None

    async def list_records(self, owner: str, kind: str, *, tag: str | None = None, limit: int = 50) -> list[Record]:
        """Newest first; only those tagged ``tag`` when given."""
        query = (select(records).where(records.c.owner == owner, records.c.kind == kind)
                 .order_by(records.c.at.desc(), records.c.key.desc()).limit(limit))
        if tag is not None:
            query = query.where(records.c.tag == tag)
        async with self.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(r) for r in rows]


def _row(record: Record) -> dict[str, object]:
    return {"owner": record.owner, "kind": record.kind, "key": record.key, "tag": record.tag,
            "body": json.dumps(record.body, sort_keys=True, separators=(",", ":")), "at": record.at.timestamp()}


def _record(row: object) -> Record:
    values = row._asdict()  # type: ignore[attr-defined]
    return Record(**{**values, "body": json.loads(values["body"]), "at": datetime.fromtimestamp(values["at"], UTC)})
