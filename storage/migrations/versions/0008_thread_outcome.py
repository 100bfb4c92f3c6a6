"""Threads remember how their latest request ended (executed, rejected, expired, cancelled, answered, failed).

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


def downgrade() -> None:
    with op.batch_alter_table("threads") as batch:
        batch.drop_column("outcome")
