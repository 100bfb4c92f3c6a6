"""Index for the thread list by status, newest first (the approval queue).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_threads_status_updated", "threads", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_threads_status_updated", "threads")
