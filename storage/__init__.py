"""SQL storage for opsgate: the Store implementation and its migrations."""

from storage.migrate import ensure_existing_schema, ensure_schema, upgrade
from storage.sql_store import SqlStore, store_for

__all__ = ["SqlStore", "ensure_existing_schema", "ensure_schema", "store_for", "upgrade"]
