"""SQL tables. Timestamps are float epoch seconds so SQLite and PostgreSQL compare them the same way."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text, text

metadata = MetaData()

threads = Table(
    "threads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("agent", String(64)),
    Column("status", String(24), nullable=False),
    Column("title", String(120), nullable=False, default=""),
    Column("requester", String(255)),
    Column("seq", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("lease_owner", String(128)),
    Column("lease_until", Float),
    Column("not_before", Float, nullable=False, default=0.0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("outcome", String(12)),  # how the latest request ended, once it did (0008; bot/thread.py ``outcome``)
    # Only running threads are ever claimed: waiting and finished ones stay out of this index (0012).
    Index("ix_threads_runnable", "updated_at", sqlite_where=text("status = 'running'"),
          postgresql_where=text("status = 'running'")),
    # Lists by status, and the list of all threads as the newest of each status merged: no index on updated_at
    # alone, whose entry every append moved (0013).
    Index("ix_threads_status_updated", "status", "updated_at"),
)

events = Table(
    "events",
    metadata,
    Column("thread_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("type", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Column("data", Text, nullable=False),
    sqlite_with_rowid=False,  # keyed by (thread_id, seq) alone: no hidden rowid, no second index (0006)
)

refs = Table(
    "refs",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("thread_id", String(32)),
    Column("data", Text),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(32), nullable=False),
    Column("thread_id", String(32)),
    Column("payload", Text, nullable=False),
    Column("status", String(12), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float),
    Index("ix_outbox_due", "channel", "status", "next_attempt_at"),
)

state = Table(
    "state",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

# --- credentials (migration 0003): personal API tokens, inbox sessions, sign-in links. Only hashes are stored.

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),  # public handle for list/revoke, not a secret
    Column("person", String(255), nullable=False),
    Column("label", String(100), nullable=False, default=""),
    Column("hash", String(64), nullable=False, unique=True),  # SHA-256 hex of the whole token
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
    Index("ix_api_tokens_person", "person"),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("hash", String(64), primary_key=True),  # SHA-256 hex of the session id the cookie carries
    Column("person", String(255), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("method", String(16), nullable=False),  # token, link, url, relay
    Column("token_id", String(32)),  # the personal token it was opened with: revoking it ends the session
    Column("binding", String(64)),  # fingerprint of the process credential (login URL, shared token) it needs
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_web_sessions_token", "token_id"),
    Index("ix_web_sessions_expires", "expires_at"),
)

signin_links = Table(
    "signin_links",
    metadata,
    Column("hash", String(64), primary_key=True),  # SHA-256 hex of the link's secret
    Column("identity", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float),
    Index("ix_signin_links_identity", "identity", "created_at"),
)


# Agents' own records (a deploy ledger, access grants, schedule claims): a generic store, so storage/ knows no
# agent. One row per (owner, kind, key); ``tag`` is what an owner filters on (a service, a user), ``body`` its JSON.
records = Table(
    "records",
    metadata,
    Column("owner", String(64), primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("tag", String(255)),
    Column("body", Text, nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_records_tag", "owner", "kind", "tag", "at"),
    Index("ix_records_at", "owner", "kind", "at"),
)

# Messages set aside because they cannot be processed or delivered (poison): kept for a person, never retried.
quarantine = Table(
    "quarantine",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("reason", String(255), nullable=False),
    Column("detail", Text),
    Column("attempts", Integer, nullable=False, default=1),
    Column("at", Float, nullable=False),
    Index("ix_quarantine_at", "at"),
)

# Raw inbound deliveries waiting to become threads (storage/inbox.py): acked once recorded here.
inbox = Table(
    "inbox",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("body", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Index("ix_inbox_due", "channel", "next_attempt_at"),
)

# Durable timers (migration 0007, bot/timers.py): due times of a thread's future events (an approval's reminder,
# escalation, expiry). A timer fires once: the append of the events it causes deletes it in that transaction;
# a cancelled one is deleted too. Only failed timers stay (beside their quarantine entry).
timers = Table(
    "timers",
    metadata,
    # The database's own id (SQLite's rowid): no 32-character key and no index of its own (0010).
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("thread_id", String(32), nullable=False),
    Column("kind", String(32), nullable=False),  # the handler that fires it
    Column("key", String(64), nullable=False, default=""),  # what it is about (an approval id), for cancelling
    Column("due_at", Float, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(12), nullable=False, default="pending"),  # pending or failed (fired/cancelled are deleted)
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_owner", String(128)),
    Column("lease_until", Float),
    Column("fired_at", Float),  # when it was given up (failed)
    Column("last_error", Text),
    Index("ix_timers_due", "status", "due_at"),
    # Cancelling a key matches every column of this index with an equality, so stale statistics (a table that grew
    # from a few hundred timers to 100,000 pending ones) cannot steer PostgreSQL to scan ix_timers_due (0008). The
    # key is checked on the row (0010): a thread has a pending timer or two, and the index is a third smaller.
    Index("ix_timers_thread", "thread_id", "status"),
    # Never reuse an id (SQLite would, after deleting the highest): a firer whose lease ran out must not match the
    # timer that replaced the one it claimed (0010).
    sqlite_autoincrement=True,
)
