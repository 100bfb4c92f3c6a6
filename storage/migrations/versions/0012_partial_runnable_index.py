"""The index that finds runnable threads holds only running ones: threads waiting for a person or finished (most
of them, and all that pile up) are not in it, so each costs one index entry less (~45 bytes on SQLite) and their
status changes no longer rewrite it. The claim query asks for ``status = 'running'`` already.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.drop_index("ix_threads_runnable", "threads")
    op.create_index("ix_threads_runnable", "threads", ["updated_at"], sqlite_where=_RUNNING,
                    postgresql_where=_RUNNING)


def downgrade() -> None:
    op.drop_index("ix_threads_runnable", "threads")
    op.create_index("ix_threads_runnable", "threads", ["status", "not_before"])
