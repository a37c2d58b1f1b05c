"""Group commit of turn rows: every write is committed before it returns, in order, alone when
it fails, and on SQLite without the event loop ever waiting on the disk or on another process."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.applications import Starlette

from hivecall.hub import Hub
from hivecall.store.models import Turn
from hivecall.turns.ids import new_id
from hivecall.turns.request import TurnRequest
from hivecall.turns.writer import SQLiteBatch, TurnWriter, Write, grouped


def hub_of(app: Starlette) -> Hub:
    hub: Hub = app.state.hub
    return hub


async def rows(hub: Hub) -> dict[str, Turn]:
    async with hub.store.session() as s:
        return {t.id: t for t in await s.scalars(select(Turn))}


def turn_row(agent_id: str, **more: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": new_id(),
        "agent_id": agent_id,
        "session_id": new_id(),
        "call_id": None,
        "source": "test",
        "status": "running",
        "message": "hello",
        "queued_at": now,
        "started_at": now,
    } | more


async def test_concurrent_turns_are_all_stored(app: Starlette) -> None:
    hub = hub_of(app)
    results = await asyncio.gather(
        *(
            hub.bridge.run(TurnRequest(agent="echo", message=f"m{i}", source="test"))
            for i in range(200)
        )
    )
    stored = await rows(hub)
    assert len(stored) == 200 and {r.status for r in results} == {"done"}
    for r in results:
        row = stored[r.turn_id]
        assert row.status == "done" and row.reply == r.text and row.spoken == r.spoken
        assert row.queued_at <= row.started_at <= row.finished_at  # type: ignore[operator]
        assert row.queued_at.tzinfo is not None


async def test_one_bad_write_fails_alone(app: Starlette) -> None:
    hub = hub_of(app)
    echo = await hub.agents.get("echo")
    writer = TurnWriter(hub.store.engine)
    good = [turn_row(echo.id) for _ in range(5)]
    bad = turn_row("no-such-agent")
    outcomes = await asyncio.gather(
        *(writer.insert(r) for r in [*good[:2], bad, *good[2:]]), return_exceptions=True
    )
    assert isinstance(outcomes[2], IntegrityError)  # SQLAlchemy's, whichever path wrote it
    assert [o for i, o in enumerate(outcomes) if i != 2] == [None] * 5
    stored = await rows(hub)
    assert {r["id"] for r in good} <= set(stored) and bad["id"] not in stored
    await writer.aclose()


def test_two_writes_of_one_turn_keep_their_order() -> None:
    loop = asyncio.new_event_loop()
    try:

        def write(kind: Any, values: dict[str, Any]) -> Write:
            return Write(kind, values, loop.create_future())

        other_done = write("update", {"id": "a", "status": "done", "reply": "x"})
        running = write("update", {"id": "b", "status": "running"})
        b_done = write("update", {"id": "b", "status": "done", "reply": "y"})
        fresh = write("insert", {"id": "c", "status": "running"})
        # Distinct turns: one statement per shape. A turn twice: strictly in order.
        assert [len(rows) for _, rows in grouped([other_done, fresh])] == [1, 1]
        more = write("insert", {"id": "d", "status": "running"})
        odd = write("insert", {"id": "e", "status": "queued", "call_id": "x"})
        assert [len(rows) for _, rows in grouped([fresh, odd, more])] == [2, 1]
        in_order = grouped([other_done, running, b_done])
        order = [(row["w_id"], row["v_status"]) for _, rows in in_order for row in rows]
        assert order == [("a", "done"), ("b", "running"), ("b", "done")]
    finally:
        loop.close()


@pytest.fixture
def sqlite_only(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's fast path")


@pytest.mark.usefixtures("sqlite_only")
async def test_sqlite_writes_take_the_fast_path_and_read_back_the_same(app: Starlette) -> None:
    hub = hub_of(app)
    echo = await hub.agents.get("echo")
    fast = SQLiteBatch(hub.store.engine)
    loop = asyncio.get_running_loop()
    row = turn_row(echo.id)
    # True: written on the loop's thread (if aiosqlite ever changes, this says so).
    assert await fast.commit([Write("insert", row, loop.create_future())])
    stored = (await rows(hub))[row["id"]]
    assert stored.queued_at == row["queued_at"] and stored.started_at == row["started_at"]
    assert (stored.status, stored.message, stored.agent_id) == ("running", "hello", echo.id)
    finished = datetime.now(UTC)
    update = {"id": row["id"], "status": "done", "finished_at": finished, "duration_ms": 1.5}
    assert await fast.commit([Write("update", update, loop.create_future())])
    stored = (await rows(hub))[row["id"]]
    assert (stored.status, stored.finished_at, stored.duration_ms) == ("done", finished, 1.5)
    await fast.aclose()


@pytest.mark.usefixtures("sqlite_only")
async def test_a_lock_held_elsewhere_never_blocks_the_loop(
    app: Starlette, database_url: str
) -> None:
    hub = hub_of(app)
    echo = await hub.agents.get("echo")
    path = database_url.split("///", 1)[1]
    other = sqlite3.connect(path, isolation_level=None)  # another process's connection, say
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        writer = TurnWriter(hub.store.engine)
        row = turn_row(echo.id)
        stored = writer.insert(row)
        # The loop keeps running while the write waits for the lock (in aiosqlite's thread).
        await asyncio.sleep(0.2)
        assert not stored.done()
        other.execute("ROLLBACK")
        await stored
        assert row["id"] in await rows(hub)
        await writer.aclose()
    finally:
        other.close()


@pytest.mark.usefixtures("sqlite_only")
async def test_checkpoints_run_off_the_loop(app: Starlette) -> None:
    hub = hub_of(app)
    echo = await hub.agents.get("echo")
    before = await _pragmas(hub)
    fast = SQLiteBatch(hub.store.engine)
    fast.CHECKPOINT_EVERY = 3
    loop = asyncio.get_running_loop()
    for _ in range(3):
        assert await fast.commit([Write("insert", turn_row(echo.id), loop.create_future())])
    assert fast._checkpoint is not None
    await fast.aclose()
    assert fast._checkpoint.done() and fast._checkpoint.exception() is None
    # The connection's own settings are back after every batch.
    assert await _pragmas(hub) == before and before[0] > 0 and before[1] > 0


async def _pragmas(hub: Hub) -> tuple[Any, Any]:
    async with hub.store.engine.connect() as conn:
        busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        auto = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar()
    return busy, auto


async def test_a_turn_stored_as_the_hub_stops_is_interrupted_not_lost(app: Starlette) -> None:
    hub = hub_of(app)
    await hub.agents.get("echo")  # looked up already: the turn goes straight to its write
    starting = asyncio.create_task(
        hub.bridge.start(TurnRequest(agent="echo", message="late", source="test"))
    )
    while not hub.bridge._writer._queue:  # its row is queued, not yet committed…
        await asyncio.sleep(0)
    await hub.bridge.aclose()  # …when the hub stops
    result = await (await starting).result()
    assert (result.status, result.error_code) == ("interrupted", "hub_stopping")
    row = (await rows(hub))[result.turn_id]
    assert (row.status, row.error_code, row.message) == ("interrupted", "hub_stopping", "late")
