"""Alembic environment: hivecall runs migrations itself on start, on the connection it passes."""

from __future__ import annotations

from alembic import context

from hivecall.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `hivecall` drives migrations
    raise RuntimeError("run migrations through hivecall (Store.migrate), not the alembic CLI")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
