"""A waiting request holds one ``approval`` timer (bot/approval_timers.py), not one per kind: the pending
``approval_expiry``, ``approval_reminder`` and ``approval_escalation`` timers of a request become one, due at the
earliest of them. Its handler reads what is due from the thread's events (reminders sent, escalated or not), so
nothing is lost. Failed timers are left as they are.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_OLD = ("approval_expiry", "approval_reminder", "approval_escalation")
_TIMERS = sa.table("timers", *map(sa.column, (
    "id", "thread_id", "kind", "key", "due_at", "payload", "status", "attempts", "lease_owner", "lease_until")))


def upgrade() -> None:
    conn = op.get_bind()
    old = (_TIMERS.c.status == "pending") & _TIMERS.c.kind.in_(_OLD)
    query = sa.select(_TIMERS.c.thread_id, _TIMERS.c.key, sa.func.min(_TIMERS.c.due_at)).where(old).group_by(
        _TIMERS.c.thread_id, _TIMERS.c.key).order_by(sa.func.min(_TIMERS.c.due_at))
    requests = conn.execute(query).all()
    conn.execute(sa.delete(_TIMERS).where(old))
    if requests:
        conn.execute(sa.insert(_TIMERS), [{
            "thread_id": thread_id, "kind": "approval", "key": key, "due_at": due_at, "payload": "{}",
            "status": "pending", "attempts": 0,
        } for thread_id, key, due_at in requests])


def downgrade() -> None:
    # The code before 0011 needs each request's expiry as a timer of its own, and its time is only in the request's
    # event (whose JSON is the events table's business, not a migration's). Converting the one timer to a reminder
    # would silently drop the expiry (a request that never expires), so this step refuses instead.
    raise RuntimeError("0011 cannot be undone: restore the database from a backup taken before the upgrade")
