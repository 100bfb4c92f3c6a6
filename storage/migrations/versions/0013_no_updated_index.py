"""No index on ``threads.updated_at`` alone: every append moved the thread's entry in it (a page more to write
per commit, 2-4% of a sequential resume, and ~25 bytes per thread), and only the list of all threads read it.
That list now takes the newest threads of each status from ``ix_threads_status_updated`` and merges them.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_threads_updated", "threads")


def downgrade() -> None:
    op.create_index("ix_threads_updated", "threads", ["updated_at"])
