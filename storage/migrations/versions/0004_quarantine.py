"""Quarantine: messages set aside because they cannot be processed or delivered (poison messages).

Revision ID: 0004
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_quarantine_at", "quarantine", ["at"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_at", "quarantine")
    op.drop_table("quarantine")
