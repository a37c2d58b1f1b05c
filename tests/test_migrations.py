"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from hivecall.store import Store
from hivecall.store.models import Base


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn)
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    store = Store(url=database_url)
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            found = await conn.run_sync(_differences)
    finally:
        await store.aclose()
    assert found == []
