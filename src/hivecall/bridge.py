"""The bridge: every request from every front door becomes one persisted turn on an agent.

A turn is written to the store before its runtime starts (queued → running → done | failed |
interrupted). The runtime runs in a task the bridge owns, not in the HTTP request, so a caller
that hangs up does not lose the agent's work; the caller just stops listening. On shutdown the
bridge cancels what is running and records it as interrupted; on start it marks turns that a
crash left running as interrupted too.

Turn rows are written through a `TurnWriter`: concurrent turns' writes share one transaction
(group commit), and each write still returns only once it is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert, Update

from hivecall.agents.context import AgentContext, RecentTurn, gather
from hivecall.agents.records import AgentRecord, Agents
from hivecall.errors import BadRequest, Conflict, NotFound, RuntimeFailure
from hivecall.runtimes import ChatMessage, Runtimes, TurnInput
from hivecall.runtimes.base import Progress
from hivecall.runtimes.orphans import kill_orphans
from hivecall.runtimes.runner import alive as runner_alive
from hivecall.runtimes.runner import this_runner
from hivecall.speakable import speakable
from hivecall.store import Store
from hivecall.store.models import Turn
from hivecall.turn_handle import PROGRESS_GAP, TurnHandle, TurnResult

__all__ = ["TurnHandle", "TurnRequest", "TurnResult"]

log = logging.getLogger(__name__)

HISTORY_TURNS = 10
RECENT_TURNS = 5
UNFINISHED = ("queued", "running")
# Ended turns' handles kept for followers that reconnect: how many, and for how long (s).
ENDED_KEEP = 64
ENDED_FOR = 300.0
# Progress reaches the store at most this often while a turn runs (and always at its end).
PROGRESS_SAVE_EVERY = 1.0


@dataclass(frozen=True)
class TurnRequest:
    agent: str  # id or name
    message: str
    source: str
    session_id: str | None = None
    call_id: str | None = None
    # Who asks (auth.Principal.caller). A session is one caller's: another caller naming the
    # same session id ("default") gets a session of its own, never this one's CLI session.
    caller: str = "owner"
    # A voice tool call's own id (with call_id, an idempotency key): the same tool call sent
    # twice is one turn.
    tool_call_id: str | None = None
    # Earlier messages of the conversation, when the caller keeps them (chat API). When None the
    # bridge replays the session's earlier turns to runtimes that want history.
    history: tuple[ChatMessage, ...] | None = None


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
class _Write:
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
        self._queue: list[_Write] = []
        self._task: asyncio.Task[None] | None = None
        self._sqlite = _SQLiteBatch(engine) if _SQLiteBatch.fits(engine) else None

    def insert(self, values: dict[str, Any]) -> asyncio.Future[None]:
        return self._put("insert", values)

    def update(self, turn_id: str, values: dict[str, Any]) -> asyncio.Future[None]:
        return self._put("update", {**values, "id": turn_id})

    def _put(
        self, kind: Literal["insert", "update"], values: dict[str, Any]
    ) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(kind, values, done))
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

    async def _commit(self, batch: list[_Write]) -> None:
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

    async def _execute(self, conn: AsyncConnection, batch: list[_Write]) -> None:
        for stmt, rows in _grouped(batch):
            await conn.execute(stmt, rows)

    async def aclose(self) -> None:
        """Wait until what is queued, and whatever is queued meanwhile, is committed."""
        while self._task is not None and not self._task.done():
            await asyncio.gather(self._task, return_exceptions=True)
        if self._sqlite is not None:
            await self._sqlite.aclose()


class _SQLiteBatch:
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

    async def commit(self, batch: list[_Write]) -> bool:
        """Commit `batch` and return True, or change nothing and return False."""
        groups = [
            (self._sql(stmt, rows[0]), [self._params(r) for r in rows])
            for stmt, rows in _grouped(batch)
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


def _grouped(batch: list[_Write]) -> list[tuple[Insert | Update, list[dict[str, Any]]]]:
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


def _settle(write: _Write, error: BaseException | None) -> None:
    if write.done.done():  # its writer stopped waiting (cancelled)
        return
    if error is None:
        write.done.set_result(None)
    else:
        write.done.set_exception(error)


class _ProgressGate:
    """Progress from a runtime, at most one line per PROGRESS_GAP (the newest waits its turn),
    saved with the turn at most every PROGRESS_SAVE_EVERY."""

    def __init__(self, handle: TurnHandle, writer: TurnWriter) -> None:
        self._handle = handle
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._last = -PROGRESS_GAP
        self._saved = self._loop.time()
        self._pending: str | None = None
        self._timer: asyncio.TimerHandle | None = None

    def offer(self, text: str) -> None:
        if not text.strip():
            return
        wait = self._last + PROGRESS_GAP - self._loop.time()
        if wait <= 0:
            self._send(text)
            return
        self._pending = text
        if self._timer is None:
            self._timer = self._loop.call_later(wait, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self._pending is not None:
            text, self._pending = self._pending, None
            self._send(text)

    def _send(self, text: str) -> None:
        now = self._last = self._loop.time()
        self._handle.add_progress(text)
        if now - self._saved >= PROGRESS_SAVE_EVERY:
            self._saved = now
            progress = list(self._handle.progress)
            self._writer.update(self._handle.turn_id, {"progress": progress}).add_done_callback(
                _retrieved
            )

    def close(self) -> None:
        """The turn is over: a line still waiting is stale."""
        if self._timer is not None:
            self._timer.cancel()
        self._pending = None


class Bridge:
    def __init__(
        self,
        *,
        store: Store,
        agents: Agents,
        runtimes: Runtimes,
        turn_timeout: float,
        max_message_chars: int,
        spoken_max_chars: int,
    ) -> None:
        self._store = store
        self._agents = agents
        self._runtimes = runtimes
        self._timeout = turn_timeout
        self._max_chars = max_message_chars
        self._spoken_max = spoken_max_chars
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task[None]] = set()
        # Turns this process runs, by id (and by tool call), until they end.
        self._live: dict[str, tuple[TurnHandle, asyncio.Task[None] | None]] = {}
        self._by_tool: dict[tuple[str, str], TurnHandle] = {}
        self._ended: dict[str, tuple[float, TurnHandle]] = {}  # oldest first
        self._writer = TurnWriter(store.engine)
        self._closing = False
        self.active: defaultdict[str, int] = defaultdict(int)

    # -- life cycle ---------------------------------------------------------------------------

    async def recover(self) -> int:
        """Mark turns a previous process left unfinished as interrupted. Returns how many.

        A hub that was killed (SIGKILL, power loss) could not stop its agents: their process
        groups may still run, editing the workspace beside the next turn. They are killed first.
        """
        async with self._store.session() as s:
            query = select(Turn.id, Turn.runner).where(Turn.status.in_(UNFINISHED))
            rows = (await s.execute(query)).all()
        # A turn another live process runs (`hivecall ask` in a terminal) is its own business.
        orphaned = {turn_id for turn_id, runner in rows if not runner_alive(runner)}
        if not orphaned:
            return 0
        if killed := await kill_orphans(orphaned):
            log.warning(
                "killed agent processes a stopped hub left running", extra={"groups": killed}
            )
        async with self._store.session() as s, s.begin():
            result = await s.execute(
                update(Turn)
                .where(Turn.id.in_(orphaned), Turn.status.in_(UNFINISHED))
                .values(
                    status="interrupted",
                    error_code="hub_restarted",
                    spoken="Sorry, the hub restarted while the agent was working, so it stopped.",
                    finished_at=_now(),
                )
            )
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            log.warning("marked unfinished turns interrupted", extra={"count": count})
        return count

    async def aclose(self) -> None:
        self._closing = True
        while True:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            # Queued writes land; a turn whose row lands now starts cancelled (and is recorded
            # as interrupted), so go round until nothing is left running.
            await self._writer.aclose()
            if not self._tasks:
                return

    def view(self, agent: AgentRecord) -> dict[str, Any]:
        """The agent as API clients see it, with its live status."""
        return agent.public(status=self.status_of(agent))

    def status_of(self, agent: AgentRecord) -> str:
        if self.active.get(agent.id):
            return "busy"
        return "unavailable" if self._agents.problem(agent) else "ready"

    # -- turns --------------------------------------------------------------------------------

    async def start(self, req: TurnRequest) -> TurnHandle:
        """Validate, persist and launch a turn. Bad input raises before anything is written."""
        return (await self.start_or_join(req))[0]

    async def start_or_join(self, req: TurnRequest) -> tuple[TurnHandle, bool]:
        """As `start`, and whether the turn is new: a tool call sent again (same call_id and
        tool_call_id) joins the turn it started the first time instead of starting another."""
        # NUL fits no store's text (PostgreSQL refuses it); HiveMind and voice input too.
        message = req.message.replace("\x00", "").strip()
        if not message:
            raise BadRequest("the message is empty", code="empty_message")
        if len(message) > self._max_chars:
            raise BadRequest(
                f"the message is longer than {self._max_chars} characters", code="message_too_long"
            )
        agent = await self._agents.get(req.agent)
        key = (req.call_id, req.tool_call_id) if req.call_id and req.tool_call_id else None
        if key is not None and (again := await self._same_tool_call(key, agent)) is not None:
            return again, False
        if problem := self._agents.problem(agent):
            raise Conflict(f"agent {agent.name!r} cannot run: {problem}", code="agent_unavailable")
        runtime = self._runtimes.get(agent.runtime)
        session_id = req.session_id or new_id()
        now = _now()
        turn_id = new_id()
        handle = TurnHandle(turn_id=turn_id, session_id=session_id, agent=agent)
        t0 = time.perf_counter()
        self._live[turn_id] = (handle, None)
        if key is not None:
            self._by_tool[key] = handle
        stored = self._writer.insert(
            {
                "id": turn_id,
                "agent_id": agent.id,
                "session_id": session_id,
                "call_id": req.call_id,
                "tool_call_id": req.tool_call_id if key else None,
                "source": req.source,
                "caller": req.caller,
                "runner": this_runner(),
                "status": "queued" if runtime.exclusive else "running",
                "message": message,
                "queued_at": now,
                "started_at": None if runtime.exclusive else now,
            }
        )

        def launch(done: asyncio.Future[None]) -> None:
            # Once the row is committed the turn runs, even if the caller has gone meanwhile.
            if done.cancelled() or done.exception() is not None:
                self._forget(handle, key)
                return
            if self._closing:  # it landed while the hub stops: it never runs
                self._never_ran(handle, t0)
                self._forget(handle, key)
                return
            self.active[agent.id] += 1
            task = asyncio.create_task(self._run(handle, req, message, t0))
            self._live[turn_id] = (handle, task)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _: self._forget(handle, key))

        stored.add_done_callback(launch)
        try:
            await asyncio.shield(stored)
        except IntegrityError as e:
            if key is not None and (again := await self._same_tool_call(key, agent)):
                return again, False  # another process took this tool call a moment ago
            # the agent was removed by another process a moment ago
            self._agents.forget()
            raise NotFound(f"no agent called {req.agent!r}", code="agent_not_found") from e
        return handle, True

    def _forget(self, handle: TurnHandle, key: tuple[str, str] | None) -> None:
        self._live.pop(handle.turn_id, None)
        if key is not None and self._by_tool.get(key) is handle:
            del self._by_tool[key]
        if handle.finished:
            # Kept a while: a follower that reconnects just after the end replays the very
            # events it saw (the store's replay has the answer as one delta), so it can skip
            # what it already has by position.
            now = time.monotonic()
            self._ended[handle.turn_id] = (now, handle)
            while self._ended and (
                len(self._ended) > ENDED_KEEP
                or next(iter(self._ended.values()))[0] < now - ENDED_FOR
            ):
                self._ended.pop(next(iter(self._ended)))

    async def _same_tool_call(self, key: tuple[str, str], agent: AgentRecord) -> TurnHandle | None:
        """The turn a tool call already started (running here, or stored), if any."""
        if (live := self._by_tool.get(key)) is not None:
            return live
        async with self._store.session() as s:
            row = await s.scalar(
                select(Turn).where(Turn.call_id == key[0], Turn.tool_call_id == key[1])
            )
        if row is None:
            return self._by_tool.get(key)  # started while we looked
        return self.handle_of(row, agent)

    def handle_of(self, row: Turn, agent: AgentRecord) -> TurnHandle:
        """A handle to follow a stored turn: the live one, or its replay when it has ended
        (one that another process runs is followed through the store by the caller)."""
        return self.live(row.id) or TurnHandle.of_stored(row, agent)

    def live(self, turn_id: str) -> TurnHandle | None:
        """The handle of a turn this process runs, or ended a moment ago."""
        held = self._live.get(turn_id)
        if held is not None:
            return held[0]
        ended = self._ended.get(turn_id)
        return ended[1] if ended else None

    def cancel(self, turn_id: str) -> bool:
        """Stop a turn this process runs; True if it was running (it ends as `cancelled`)."""
        held = self._live.get(turn_id)
        if held is None or held[0].finished:
            return False
        handle, task = held
        handle.cancel_requested = True
        # A task that has not begun cannot run its cleanup if cancelled now: it checks the flag.
        if task is not None and handle.started_at:
            task.cancel()
        return True

    async def run(self, req: TurnRequest) -> TurnResult:
        handle = await self.start(req)
        return await handle.result()

    async def _run(self, handle: TurnHandle, req: TurnRequest, message: str, t0: float) -> None:
        agent = handle.agent
        runtime = self._runtimes.get(agent.runtime)
        pieces: list[str] = []
        status, code, error = "done", None, None
        spoken = ""
        progress = _ProgressGate(handle, self._writer)
        handle.started_at = asyncio.get_running_loop().time()
        try:
            if handle.cancel_requested:
                raise asyncio.CancelledError
            async with self._locks[agent.id] if runtime.exclusive else contextlib.nullcontext():
                if runtime.exclusive:
                    await self._set(handle.turn_id, status="running", started_at=_now())
                turn = await self._turn_input(handle, req, message, runtime.wants_context)
                async for piece in runtime.stream(turn):
                    if isinstance(piece, Progress):
                        progress.offer(piece.text.replace("\x00", ""))
                    elif kept := handle.add_delta(piece.replace("\x00", "")):
                        pieces.append(kept)
        except RuntimeFailure as e:
            status, code, error, spoken = "failed", e.code, e.message, e.spoken
        except asyncio.CancelledError:
            if handle.cancel_requested:
                status, code, error = "cancelled", "cancelled", "the turn was cancelled"
                spoken = f"Stopped {agent.name}."
            else:
                status, code = "interrupted", "hub_stopping"
                error = "the hub stopped during the turn"
                spoken = f"Sorry, {agent.name} was interrupted because the hub is shutting down."
        except Exception:
            log.exception("turn failed", extra={"turn_id": handle.turn_id, "agent": agent.name})
            status, code, error = "failed", "internal_error", "the hub hit an unexpected error"
            spoken = f"Sorry, something went wrong while {agent.name} was working."
        finally:
            progress.close()
            self.active[agent.id] -= 1
            if not self.active[agent.id]:
                del self.active[agent.id]
        text = "".join(pieces).strip()
        if status == "done":
            spoken = (
                speakable(text, max_chars=self._spoken_max) or f"{agent.name} had nothing to say."
            )
        elapsed = (time.perf_counter() - t0) * 1000
        try:
            await self._set(
                handle.turn_id,
                status=status,
                reply=text,
                spoken=spoken,
                error_code=code,
                progress=handle.progress,
                finished_at=_now(),
                duration_ms=round(elapsed, 3),
            )
        finally:
            handle.finish(
                TurnResult(
                    handle.turn_id,
                    handle.session_id,
                    agent,
                    status,
                    text,
                    spoken,
                    code,
                    error,
                    elapsed,
                )
            )

    def _never_ran(self, handle: TurnHandle, t0: float) -> None:
        """Record a turn stored as the hub stopped as interrupted, and tell its caller."""
        spoken = f"Sorry, {handle.agent.name} was interrupted because the hub is shutting down."
        elapsed = (time.perf_counter() - t0) * 1000
        # Not awaited: the writer writes what it was given, and the hub waits for the writer.
        self._writer.update(
            handle.turn_id,
            {
                "status": "interrupted",
                "spoken": spoken,
                "error_code": "hub_stopping",
                "finished_at": _now(),
                "duration_ms": round(elapsed, 3),
            },
        ).add_done_callback(_retrieved)
        handle.finish(
            TurnResult(
                handle.turn_id,
                handle.session_id,
                handle.agent,
                "interrupted",
                "",
                spoken,
                "hub_stopping",
                "the hub stopped before the turn ran",
                elapsed,
            )
        )

    async def _turn_input(
        self, handle: TurnHandle, req: TurnRequest, message: str, wants_context: bool
    ) -> TurnInput:
        agent = handle.agent
        history: tuple[ChatMessage, ...] = req.history or ()
        resumed = False
        context: AgentContext | None = None
        needs_session = agent.runtime == "command" or (wants_context and req.history is None)
        if needs_session and req.session_id:
            earlier = await self._session_turns(
                agent.id, req.session_id, req.caller, handle.turn_id
            )
            resumed = bool(earlier)
            if wants_context and req.history is None:
                history = tuple(
                    m
                    for t in earlier
                    if t.status == "done"
                    for m in (
                        ChatMessage("user", t.message),
                        ChatMessage("assistant", t.reply or ""),
                    )
                )
        if wants_context:
            context = await gather(agent, await self.recent(agent.id, exclude=handle.turn_id))
        return TurnInput(
            turn_id=handle.turn_id,
            agent=agent,
            message=message,
            session_id=handle.session_id,
            resumed=resumed,
            timeout=self._timeout,
            history=history,
            context=context,
            caller=req.caller,
        )

    async def _session_turns(
        self, agent_id: str, session_id: str, caller: str, exclude: str
    ) -> list[Turn]:
        async with self._store.session() as s:
            rows = await s.scalars(
                select(Turn)
                .where(
                    Turn.agent_id == agent_id,
                    Turn.session_id == session_id,
                    Turn.caller == caller,
                    Turn.id != exclude,
                )
                .order_by(Turn.queued_at.desc())
                .limit(HISTORY_TURNS)
            )
            return list(reversed(list(rows)))

    async def recent(self, agent_id: str, *, exclude: str | None = None) -> list[RecentTurn]:
        """The agent's last few finished turns, oldest first (for its context)."""
        async with self._store.session() as s:
            q = (
                select(Turn)
                .where(Turn.agent_id == agent_id, Turn.status.not_in(UNFINISHED))
                .order_by(Turn.queued_at.desc())
                .limit(RECENT_TURNS)
            )
            if exclude:
                q = q.where(Turn.id != exclude)
            rows = list(await s.scalars(q))
        return [
            RecentTurn(
                r.queued_at.isoformat(timespec="seconds"), r.message, r.reply or "", r.status
            )
            for r in reversed(rows)
        ]

    async def _set(self, turn_id: str, **values: Any) -> None:
        # Written even if this task is cancelled meanwhile (the writer writes what it was given).
        await self._writer.update(turn_id, values)

    async def list_turns(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        call_id: str | None = None,
        status: Sequence[str] = (),
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Turn]:
        q = select(Turn).order_by(Turn.queued_at.desc()).limit(limit)
        if agent_id:
            q = q.where(Turn.agent_id == agent_id)
        if session_id:
            q = q.where(Turn.session_id == session_id)
        if call_id:
            q = q.where(Turn.call_id == call_id)
        if status:
            q = q.where(Turn.status.in_(status))
        if before:
            q = q.where(Turn.queued_at < before)
        async with self._store.session() as s:
            return list(await s.scalars(q))

    async def get_turn(self, turn_id: str) -> Turn | None:
        async with self._store.session() as s:
            return await s.get(Turn, turn_id)


def _now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A random id that sorts by time: a UUIDv7 (48-bit milliseconds, then 74 random bits), as
    32 hex digits like `uuid4().hex`. Turns written one after another land next to each other
    in the store's indexes instead of on a random page each, so a commit writes a few pages,
    not one per row."""
    ms = time.time_ns() // 1_000_000 & (1 << 48) - 1
    rand = int.from_bytes(os.urandom(10))
    value = ms << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64 | 0b10 << 62 | rand & (1 << 62) - 1
    return f"{value:032x}"
