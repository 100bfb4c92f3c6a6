"""Agents' own records in one generic table; the deployment ledger's rows move into it.

Revision ID: 0009
Revises: 0008
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The ledger rows become records owned by the agent that wrote them, keyed by their idempotency key.
_LEDGER = ("deploy", "ledger")
_FIELDS = ("action", "service", "environment", "version", "thread_id", "action_id", "approved_by")


def upgrade() -> None:
    records = op.create_table(
        "records",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("tag", sa.String(255)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_records_tag", "records", ["owner", "kind", "tag", "at"])
    op.create_index("ix_records_at", "records", ["owner", "kind", "at"])
    conn = op.get_bind()
    old = sa.table("deployments", sa.column("idempotency_key"), sa.column("at"), *map(sa.column, _FIELDS))
    rows = [row._asdict() for row in conn.execute(sa.select(old))]
    if rows:
        op.bulk_insert(records, [{
            "owner": _LEDGER[0], "kind": _LEDGER[1], "key": row["idempotency_key"], "tag": row["service"],
            "body": json.dumps({"idempotency_key": row["idempotency_key"], **{f: row[f] for f in _FIELDS}}),
            "at": row["at"],
        } for row in rows])
    op.drop_index("ix_deployments_service", "deployments")
    op.drop_table("deployments")


def downgrade() -> None:
    deployments = op.create_table(
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
    conn = op.get_bind()
    records = sa.table("records", *map(sa.column, ("owner", "kind", "body", "at")))
    query = sa.select(records.c.body, records.c.at).where(
        records.c.owner == _LEDGER[0], records.c.kind == _LEDGER[1])
    rows = [{**json.loads(body), "at": at} for body, at in conn.execute(query)]
    if rows:
        op.bulk_insert(deployments, [{k: row.get(k) for k in ("idempotency_key", "at", *_FIELDS)} for row in rows])
    op.drop_index("ix_records_at", "records")
    op.drop_index("ix_records_tag", "records")
    op.drop_table("records")
