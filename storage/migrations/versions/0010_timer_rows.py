"""Timers get the database's integer id (SQLite's rowid: no 32-character key, no primary-key index of its own;
AUTOINCREMENT, so a deleted timer's id is never handed to its successor) and
lose ``created_at`` (nothing read it); fired and cancelled rows are deleted, as the hot path now does. The
per-thread index leaves out ``key`` (a thread holds a pending timer or two, not hundreds: the key is checked on
the row), a third of its size.

Pending and failed timers are copied with new ids, earliest due first. A failed timer's quarantine entry keeps the
old id in its key (``timer:<old id>``); its detail names the thread and kind.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_KEPT = ("thread_id", "kind", "key", "due_at", "payload", "status", "attempts", "lease_owner", "lease_until",
         "fired_at", "last_error")


def _columns(id_column: sa.Column[object], created_at: bool) -> list[sa.Column[object]]:
    return [
        id_column,
        sa.Column("thread_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_until", sa.Float),
        *([sa.Column("created_at", sa.Float, nullable=False)] if created_at else []),
        sa.Column("fired_at", sa.Float),
        sa.Column("last_error", sa.Text),
    ]


def _rebuild(id_column: sa.Column[object], created_at: bool, by_thread: list[str],
             where: sa.ColumnElement[bool] | None, convert: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    old = sa.table("timers", *map(sa.column, ("id", *_KEPT)))
    query = sa.select(old).order_by(old.c.due_at, old.c.id)
    rows = [convert(row._asdict()) for row in op.get_bind().execute(query if where is None else query.where(where))]
    op.drop_index("ix_timers_thread", "timers")
    op.drop_index("ix_timers_due", "timers")
    op.drop_table("timers")
    new = op.create_table("timers", *_columns(id_column, created_at), sqlite_autoincrement=not created_at)
    op.create_index("ix_timers_due", "timers", ["status", "due_at"])
    op.create_index("ix_timers_thread", "timers", by_thread)
    if rows:
        op.bulk_insert(new, rows)


def upgrade() -> None:
    _rebuild(sa.Column("id", sa.Integer, primary_key=True, autoincrement=True), False, ["thread_id", "status"],
             sa.column("status").in_(("pending", "failed")), lambda row: {k: row[k] for k in _KEPT})


def downgrade() -> None:
    # Ids become strings of the old integers (unique, as the old random ids were); created_at is unknown: 0.
    _rebuild(sa.Column("id", sa.String(32), primary_key=True), True, ["thread_id", "key", "status"], None,
             lambda row: {**row, "id": str(row["id"]), "created_at": 0.0})
