"""Engine, sessions and migrations. One `Store` per process, opened in the app lifespan."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from hivecall.errors import ConfigError
from hivecall.logs import guard_database_errors
from hivecall.store.models import Meta

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def async_url(url: str) -> str:
    """Accept the URLs people write (postgresql://, sqlite:///) and pick the async driver."""
    try:
        parsed = make_url(url)
    except Exception as e:
        raise ConfigError("HIVECALL_DATABASE_URL is not a database URL") from e
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ConfigError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the CLI read while the hub writes; NORMAL is durable across crashes in WAL mode.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    # Deleted and overwritten values are zeroed, not left in free pages: a value sealed in place
    # (a migration sealing old keys) leaves no copy in the clear. Debian builds SQLite this way;
    # macOS and python.org builds do not.
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


class Store:
    def __init__(self, *, url: str) -> None:
        self.url = async_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Statement errors (and SQLAlchemy's own log lines) never quote the values they were given:
        # those are sealed secrets, token hashes and people's words.
        options: dict[str, Any] = {"hide_parameters": True}
        if self.is_sqlite:
            # SQLite has one writer at a time. One connection makes the hub's writers queue in
            # order instead of sleeping in SQLite's busy loop (which gave second-long tails), and
            # sessions always end their transaction, so the pool's extra rollback is skipped.
            options |= {"pool_size": 1, "max_overflow": 0, "pool_reset_on_return": None}
        else:
            options["pool_pre_ping"] = True
        try:
            self.engine: AsyncEngine = create_async_engine(self.url, **options)
        except ImportError as e:
            raise ConfigError(
                "PostgreSQL needs its driver: pip install 'hivecall[postgres]'"
            ) from e
        guard_database_errors()
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        log.debug("store opened", extra={"backend": parsed.get_backend_name()})

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def get_meta(self, key: str) -> str | None:
        async with self.session() as s:
            row = await s.get(Meta, key)
            return row.value if row else None

    async def set_meta(self, key: str, value: str) -> None:
        async with self.session() as s, s.begin():
            await s.merge(Meta(key=key, value=value))

    async def delete_meta(self, key: str) -> None:
        async with self.session() as s, s.begin():
            row = await s.get(Meta, key)
            if row is not None:
                await s.delete(row)

    async def aclose(self) -> None:
        await self.engine.dispose()


def _upgrade(conn: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
