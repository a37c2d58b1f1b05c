"""The store: SQLAlchemy 2 (async) over SQLite by default, PostgreSQL by URL."""

from hivecall.store.db import Store

__all__ = ["Store"]
