"""Threads remember how their latest request ended (executed, rejected, expired, cancelled, answered, failed);
timers' per-thread index also holds the status (cancelling by key never falls back to scanning pending timers).

Rows written before stay NULL until their next append (listings then show no outcome for them).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("threads", sa.Column("outcome", sa.String(12)))
    op.drop_index("ix_timers_thread", "timers")
    op.create_index("ix_timers_thread", "timers", ["thread_id", "key", "status"])


def downgrade() -> None:
    op.drop_index("ix_timers_thread", "timers")
    op.create_index("ix_timers_thread", "timers", ["thread_id", "key"])
    with op.batch_alter_table("threads") as batch:
        batch.drop_column("outcome")
