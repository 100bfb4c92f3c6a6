"""Inbox: raw inbound deliveries (Slack events) recorded before the ack and turned into threads afterwards.

Revision ID: 0005
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
    )
    op.create_index("ix_inbox_due", "inbox", ["channel", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_inbox_due", "inbox")
    op.drop_table("inbox")
