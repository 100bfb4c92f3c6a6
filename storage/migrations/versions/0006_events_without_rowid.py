"""Events keyed by (thread_id, seq) alone on SQLite: WITHOUT ROWID (no hidden rowid, no second index).

The stored JSON also stops repeating the ``type`` column and an approval request's copy of its proposal; that
needs no schema change (rows written before read back the same, see storage/rows.py). PostgreSQL: nothing to do.

Revision ID: 0006
Revises: 0005 (0002 in the brief; 0005 is this branch's inbox, so the chain has one head)
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = "thread_id, seq, type, at, data"


def _rebuild(rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    suffix = "" if rowid else " WITHOUT ROWID"
    op.execute(
        "CREATE TABLE events_rebuilt (thread_id VARCHAR(32) NOT NULL, seq INTEGER NOT NULL, type VARCHAR(32) NOT NULL,"
        " at FLOAT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (thread_id, seq))" + suffix
    )
    op.execute(f"INSERT INTO events_rebuilt ({_COLUMNS}) SELECT {_COLUMNS} FROM events")
    op.execute("DROP TABLE events")
    op.execute("ALTER TABLE events_rebuilt RENAME TO events")


def upgrade() -> None:
    _rebuild(rowid=False)


def downgrade() -> None:
    _rebuild(rowid=True)
