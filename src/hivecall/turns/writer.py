"""The turn store's writer: group commit for turn rows (`TurnWriter`), and its SQLite fast path
(`SQLiteBatch`). The bridge writes the rows of the turns it runs through it."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Table, bindparam
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert, Update

from hivecall.store.models import Turn

log = logging.getLogger(__name__)

_TURNS: Table = Turn.metadata.tables["turns"]
_INSERT = _TURNS.insert()


@functools.cache
def _update(keys: frozenset[str]) -> Update:
    """UPDATE turns SET <keys> WHERE id = :w_id, with parameters v_<key>."""
    return (
        _TURNS.update()
        .where(_TURNS.c.id == bindparam("w_id"))
        .values({k: bindparam(f"v_{k}") for k in sorted(keys)})
    )


@dataclass
class Write:
    """One queued write of a turn row, and the future its writer waits on."""

    kind: Literal["insert", "update"]
    values: dict[str, Any]
    done: asyncio.Future[None]


class TurnWriter:
    """Group commit for turn rows.

    Every turn writes its row when it is accepted and again when it ends; under load many turns
    do so at once. Writes queue here, and one task commits everything queued in one transaction
    (one executemany per statement shape) while the next writes queue behind it. A write still
    returns only once it is committed, so the bridge's promises hold: a turn is stored before it
    runs, and its end before its answer goes out. When a batch fails, its writes are retried one
    by one, so one bad write (an agent removed a moment ago) fails alone.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._queue: list[Write] = []
        self._task: asyncio.Task[None] | None = None
        self._sqlite = SQLiteBatch(engine) if SQLiteBatch.fits(engine) else None

    def insert(self, values: dict[str, Any]) -> asyncio.Future[None]:
        return self._put("insert", values)

    def update(self, turn_id: str, values: dict[str, Any]) -> asyncio.Future[None]:
        return self._put("update", {**values, "id": turn_id})

    def update_nowait(self, turn_id: str, values: dict[str, Any]) -> None:
        """An update nobody awaits (progress, a turn that never ran): a failure is logged."""
        self.update(turn_id, values).add_done_callback(_retrieved)

    def _put(
        self, kind: Literal["insert", "update"], values: dict[str, Any]
    ) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(Write(kind, values, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="turn-writer")
        return done

    async def _drain(self) -> None:
        while self._queue:
            # Let the requests the loop already has in hand queue their writes too: a commit
            # costs SQLite about the same for one row as for fifty.
            await asyncio.sleep(0)
            batch, self._queue = self._queue, []
            try:
                await self._commit(batch)
            finally:
                for w in batch:  # only if the commit itself was cancelled
                    if not w.done.done():
                        w.done.set_exception(RuntimeError("the turn writer stopped"))

    async def _commit(self, batch: list[Write]) -> None:
        if self._sqlite is not None:
            try:
                done = await self._sqlite.commit(batch)
            except Exception:
                log.warning("fast SQLite write failed; writing the ordinary way", exc_info=True)
                done = False
            if done:
                for w in batch:
                    _settle(w, None)
                return
        try:
            async with self._engine.begin() as conn:
                await self._execute(conn, batch)
        except Exception as e:
            if len(batch) == 1:
                _settle(batch[0], e)
                return
            for w in batch:  # one by one: only the write at fault fails
                try:
                    async with self._engine.begin() as conn:
                        await self._execute(conn, [w])
                except Exception as one:
                    _settle(w, one)
                else:
                    _settle(w, None)
            return
        for w in batch:
            _settle(w, None)

    async def _execute(self, conn: AsyncConnection, batch: list[Write]) -> None:
        for stmt, rows in grouped(batch):
            await conn.execute(stmt, rows)

    async def aclose(self) -> None:
        """Wait until what is queued, and whatever is queued meanwhile, is committed."""
        while self._task is not None and not self._task.done():
            await asyncio.gather(self._task, return_exceptions=True)
        if self._sqlite is not None:
            await self._sqlite.aclose()


class SQLiteBatch:
    """SQLite's fast path: a batch in a handful of C calls on the event loop's own thread.

    aiosqlite runs every call (cursor, execute, close, commit) in its thread, and each of those
    round trips waits for the GIL while the loop is busy serving requests: a batch of turn
    writes took up to tens of milliseconds that way. A batch of a few dozen rows takes SQLite
    a fraction of a millisecond, so while it holds the store's only connection (SQLite's pool
    has one; nothing else uses it meanwhile) the writer calls the sqlite3 connection under
    aiosqlite directly. The loop must never wait on the disk or on another process, so for the
    batch `busy_timeout` is 0 (a lock another process holds makes the batch roll back and go the
    ordinary way, as does any batch that fails, so errors are SQLAlchemy's and retried one
    write at a time) and `wal_autocheckpoint` is 0: a checkpoint copies the log into the
    database and syncs both, tens of milliseconds, so the writer runs one every
    CHECKPOINT_EVERY commits through aiosqlite's thread instead.
    """

    CHECKPOINT_EVERY = 64  # commits of ~10-20 pages: about SQLite's own 1,000-page cadence

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = engine.dialect
        # The values go to SQLite exactly as SQLAlchemy would send them (timestamps as text…).
        self._bind = {
            c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in _TURNS.columns
        }
        # And SQLAlchemy writes the SQL, with named parameters as the sqlite3 module takes them.
        self._named = sqlite_dialect(paramstyle="named")
        self._compiled: dict[tuple[Insert | Update, frozenset[str]], str] = {}
        # The connection's own busy_timeout and wal_autocheckpoint, put back after each batch.
        self._settings: tuple[int, int] | None = None
        self._commits = 0
        self._checkpoint: asyncio.Task[None] | None = None

    @staticmethod
    def fits(engine: AsyncEngine) -> bool:
        return engine.dialect.name == "sqlite" and engine.dialect.driver == "aiosqlite"

    def _sql(self, stmt: Insert | Update, row: dict[str, Any]) -> str:
        # An insert names the columns its rows carry; an update's shape is its statement.
        key = (stmt, frozenset(row) if stmt is _INSERT else frozenset())
        sql = self._compiled.get(key)
        if sql is None:
            compiled = stmt.compile(dialect=self._named, column_keys=sorted(row))
            sql = self._compiled[key] = str(compiled)
        return sql

    def _params(self, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in row.items():
            bind = self._bind.get(name.removeprefix("v_"))
            out[name] = value if bind is None or value is None else bind(value)
        return out

    async def commit(self, batch: list[Write]) -> bool:
        """Commit `batch` and return True, or change nothing and return False."""
        groups = [
            (self._sql(stmt, rows[0]), [self._params(r) for r in rows])
            for stmt, rows in grouped(batch)
        ]
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            db = getattr(raw.driver_connection, "_conn", None)  # aiosqlite's sqlite3 connection
            if not isinstance(db, sqlite3.Connection) or db.in_transaction:
                return False
            if self._settings is None:
                busy = db.execute("PRAGMA busy_timeout").fetchone()[0]
                auto = db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
                self._settings = (int(busy), int(auto))
            db.execute("PRAGMA busy_timeout = 0")
            db.execute("PRAGMA wal_autocheckpoint = 0")
            try:
                db.execute("BEGIN")  # whatever the driver's transaction mode: one transaction
                for sql, rows in groups:
                    db.executemany(sql, rows)
                db.commit()
            except sqlite3.Error:
                db.rollback()
                return False
            finally:
                busy, auto = self._settings
                db.execute(f"PRAGMA wal_autocheckpoint = {auto:d}")
                db.execute(f"PRAGMA busy_timeout = {busy:d}")
        self._commits += 1
        if self._commits % self.CHECKPOINT_EVERY == 0 and (
            self._checkpoint is None or self._checkpoint.done()
        ):
            self._checkpoint = asyncio.create_task(self._run_checkpoint(), name="wal-checkpoint")
        return True

    async def _run_checkpoint(self) -> None:
        try:
            async with self._engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:
            log.warning("WAL checkpoint failed; SQLite will retry on a later write", exc_info=True)

    async def aclose(self) -> None:
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)


def grouped(batch: list[Write]) -> list[tuple[Insert | Update, list[dict[str, Any]]]]:
    """The batch as (statement, rows) to run in order, rows of one statement together.

    Writes to different turns commute, so all rows of one shape go in one executemany. A turn
    with two writes in one batch (its task was cancelled while its write was queued) keeps its
    order: then only neighbouring rows of one shape are put together.
    """
    distinct = len({w.values["id"] for w in batch}) == len(batch)
    out: list[tuple[Insert | Update, list[dict[str, Any]]]] = []
    where: dict[tuple[Insert | Update, frozenset[str]], int] = {}
    last: tuple[Insert | Update, frozenset[str]] | None = None
    for w in batch:
        if w.kind == "insert":
            stmt: Insert | Update = _INSERT
            shape = (stmt, frozenset(w.values))  # an executemany's rows name the same columns
            row = w.values
        else:
            keys = frozenset(w.values) - {"id"}
            stmt = _update(keys)
            shape = (stmt, frozenset())
            row = {f"v_{k}": w.values[k] for k in keys} | {"w_id": w.values["id"]}
        if distinct and shape in where:
            out[where[shape]][1].append(row)
        elif not distinct and shape == last:
            out[-1][1].append(row)
        else:
            where[shape] = len(out)
            out.append((stmt, [row]))
        last = shape
    return out


def _retrieved(done: asyncio.Future[None]) -> None:
    """For a write nobody awaits: its failure is logged, not left unretrieved."""
    if not done.cancelled() and (error := done.exception()) is not None:
        log.warning("a turn write failed", exc_info=error)


def _settle(write: Write, error: BaseException | None) -> None:
    if write.done.done():  # its writer stopped waiting (cancelled)
        return
    if error is None:
        write.done.set_result(None)
    else:
        write.done.set_exception(error)
