"""Initial schema: threads, events, refs, outbox, state, deployments.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("agent", sa.String(64)),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("requester", sa.String(255)),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_until", sa.Float),
        sa.Column("not_before", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
    )
    op.create_index("ix_threads_runnable", "threads", ["status", "not_before"])
    op.create_index("ix_threads_updated", "threads", ["updated_at"])
    op.create_table(
        "events",
        sa.Column("thread_id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_table(
        "refs",
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("thread_id", sa.String(32)),
        sa.Column("data", sa.Text),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("thread_id", sa.String(32)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
    )
    op.create_index("ix_outbox_due", "outbox", ["channel", "status", "next_attempt_at"])
    op.create_table(
        "state",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("idempotency_key", sa.String(80), primary_key=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64)),
        sa.Column("thread_id", sa.String(32)),
        sa.Column("action_id", sa.String(32)),
        sa.Column("approved_by", sa.String(255)),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_deployments_service", "deployments", ["service", "at"])


def downgrade() -> None:
    for table in ("deployments", "state", "outbox", "refs", "events", "threads"):
        op.drop_table(table)
