"""The hot path's SQL, written once for both backends and checked against ``storage.schema`` by the tests.

Parameters are numbered PostgreSQL style (``$1``); ``sqlite`` rewrites them to SQLite's ``?1``, which sqlite3
binds positionally the same way. Row locks (``FOR UPDATE SKIP LOCKED``) exist on PostgreSQL only; on SQLite the
single writer serialises claims instead.
"""

from __future__ import annotations

import re

_PARAM = re.compile(r"\$(\d+)")
LOCKED = "{locked}"

INSERT_THREAD = (
    "INSERT INTO threads (id, agent, status, title, requester, seq, created_at, updated_at, not_before, attempts,"
    " outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 0, 0, $8)"
)
INSERT_EVENT = "INSERT INTO events (thread_id, seq, type, at, data) VALUES ($1, $2, $3, $4, $5)"
INSERT_REF = "INSERT INTO refs (channel, key, thread_id, data) VALUES ($1, $2, $3, $4)"
INSERT_OUTBOX = (
    "INSERT INTO outbox (channel, thread_id, payload, status, attempts, next_attempt_at, created_at)"
    " VALUES ($1, $2, $3, 'pending', 0, $4, $4)"
)
LOAD_THREAD = (
    "SELECT t.agent, t.created_at, t.updated_at, e.type, e.at, e.data FROM threads t"
    " LEFT OUTER JOIN events e ON e.thread_id = t.id WHERE t.id = $1 ORDER BY e.seq"
)
# Compare-and-set on the sequence. A thread that stops running drops its lease in the same statement, so a
# crash before release cannot strand it.
APPEND_RUNNING = (
    "UPDATE threads SET seq = $3, status = $4, agent = $5, updated_at = $6, outcome = NULL WHERE id = $1 AND seq = $2"
)
APPEND_STOPPED = (
    "UPDATE threads SET seq = $3, status = $4, agent = $5, updated_at = $6, lease_owner = NULL,"
    " lease_until = NULL, attempts = 0, not_before = 0, outcome = $7 WHERE id = $1 AND seq = $2"
)
# The same, also leasing the thread to this process's worker when nobody holds it and no retry delay is pending
# (a commit that makes a thread runnable hands it straight to the worker: no separate claim). SET expressions
# all see the row as it was, so both CASEs test the old lease. Leased by this append = our owner and exactly our
# lease_until (a lease the same worker already held keeps its old expiry: that is not a new hand-over).
_FREE = "(lease_until IS NULL OR lease_until < $6) AND not_before <= $6"
APPEND_LEASING = (
    "UPDATE threads SET seq = $3, status = $4, agent = $5, updated_at = $6, outcome = NULL,"
    " lease_owner = CASE WHEN " + _FREE + " THEN $7 ELSE lease_owner END,"
    " lease_until = CASE WHEN " + _FREE + " THEN $8 ELSE lease_until END"
    " WHERE id = $1 AND seq = $2 RETURNING lease_owner, lease_until"
)
INSERT_THREAD_LEASED = (
    "INSERT INTO threads (id, agent, status, title, requester, seq, created_at, updated_at, not_before, attempts,"
    " outcome, lease_owner, lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 0, 0, $8, $9, $10)"
)
THREAD_SEQ = "SELECT seq FROM threads WHERE id = $1"
_RUNNABLE = (
    "SELECT id FROM threads WHERE status = 'running' AND not_before <= $1"
    " AND (lease_until IS NULL OR lease_until < $1) ORDER BY updated_at"
)
PROBE_RUNNABLE = _RUNNABLE + " LIMIT 1"
# Up to $4 runnable threads at once, the longest waiting first: a worker fills all its free slots in one round
# trip instead of one claim (one commit) per slot.
CLAIM_ANY = (
    "UPDATE threads SET lease_owner = $2, lease_until = $3 WHERE id IN (" + _RUNNABLE + " LIMIT $4" + LOCKED + ")"
    " RETURNING id, updated_at"
)
# A thread this process just made runnable: lease exactly it (no scan), unless someone else holds it.
CLAIM_ONE = (
    "UPDATE threads SET lease_owner = $2, lease_until = $3 WHERE id = $1 AND status = 'running'"
    " AND not_before <= $4 AND (lease_until IS NULL OR lease_until < $4) RETURNING seq"
)
RELEASE = (
    "UPDATE threads SET lease_owner = NULL, lease_until = NULL, attempts = 0, not_before = 0"
    " WHERE id = $1 AND lease_owner = $2"
)
RELEASE_RETRY = (
    "UPDATE threads SET lease_owner = NULL, lease_until = NULL, attempts = attempts + 1, not_before = $3"
    " WHERE id = $1 AND lease_owner = $2"
)
RENEW = "UPDATE threads SET lease_until = $3 WHERE id = $1 AND lease_owner = $2"
ATTEMPTS = "SELECT attempts FROM threads WHERE id = $1"
GET_REF = "SELECT thread_id, data FROM refs WHERE channel = $1 AND key = $2"
_DUE = (
    "SELECT id FROM outbox WHERE channel = $1 AND status = 'pending' AND next_attempt_at <= $2"
    " ORDER BY id LIMIT $3"
)
PROBE_OUTBOX = _DUE
# Claimed rows are hidden for the lease so another dispatcher does not send them meanwhile.
CLAIM_OUTBOX = (
    "UPDATE outbox SET next_attempt_at = $4, attempts = attempts + 1 WHERE id IN (" + _DUE + LOCKED + ")"
    " RETURNING id, channel, thread_id, payload, attempts, created_at"
)
OUTBOX_SENT = "UPDATE outbox SET status = 'sent', sent_at = $2, last_error = NULL WHERE id = $1"
OUTBOX_RETRY = "UPDATE outbox SET next_attempt_at = $2, last_error = $3 WHERE id = $1"
OUTBOX_FAILED = "UPDATE outbox SET status = 'failed', last_error = $2 WHERE id = $1"
GET_STATE = "SELECT value FROM state WHERE key = $1"
SET_STATE = "INSERT INTO state (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
# --- timers (bot/timers.py) --------------------------------------------------------------------------------
INSERT_TIMER = (
    "INSERT INTO timers (thread_id, kind, key, due_at, payload, status, attempts)"
    " VALUES ($1, $2, $3, $4, $5, 'pending', 0)"
)
# Firing is this DELETE in the transaction that appends the timer's events: only one transaction can take a
# timer out of 'pending' (a second one waits for the first's row lock, then matches nothing), so it fires once.
# A timer that fired or was cancelled leaves no row: the thread's events record what it did (failed ones stay).
FIRE_TIMER = "DELETE FROM timers WHERE id = $1 AND status = 'pending'"
CANCEL_TIMERS = "DELETE FROM timers WHERE thread_id = $1 AND key = $2 AND status = 'pending'"
_DUE_TIMERS = (
    "SELECT id FROM timers WHERE status = 'pending' AND due_at <= $1 AND (lease_until IS NULL OR lease_until < $1)"
    " ORDER BY due_at LIMIT $2"
)
PROBE_TIMERS = _DUE_TIMERS
# Claimed timers are hidden for the lease while their handler runs; a crashed firer's lease simply runs out.
CLAIM_TIMERS = (
    "UPDATE timers SET lease_owner = $3, lease_until = $4, attempts = attempts + 1 WHERE id IN ("
    + _DUE_TIMERS + LOCKED + ") RETURNING id, thread_id, kind, key, due_at, payload, attempts"
)
TIMER_RETRY = (
    "UPDATE timers SET lease_owner = NULL, lease_until = $2, last_error = $3 WHERE id = $1 AND status = 'pending'"
)
TIMER_FAILED = (
    "UPDATE timers SET status = 'failed', fired_at = $2, lease_owner = NULL, lease_until = NULL, last_error = $3"
    " WHERE id = $1 AND status = 'pending'"
)
# The next timer to come due (an index range); past-due ones held by a lease or a retry delay are found by the poll.
NEXT_TIMER = "SELECT min(due_at) FROM timers WHERE status = 'pending' AND due_at > $1"

ALL = {
    name: value for name, value in dict(globals()).items()
    if name.isupper() and isinstance(value, str) and not name.startswith("_") and name not in ("ALL", "LOCKED")
}


def sqlite(sql: str) -> str:
    """The statement for sqlite3: ``?N`` parameters, no row locks."""
    return _PARAM.sub(r"?\1", sql.replace(LOCKED, ""))


def postgres(sql: str) -> str:
    """The statement for asyncpg: skip rows another claimer holds."""
    return sql.replace(LOCKED, " FOR UPDATE SKIP LOCKED")
