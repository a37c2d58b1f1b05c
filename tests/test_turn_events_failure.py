"""A turn's event stream that fails after its headers ends with an `error` event, never with
half a frame or a clean end that looks like the whole story."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
from sqlalchemy import delete, insert
from starlette.applications import Starlette

from hivecall.hub import Hub
from hivecall.store.models import Turn
from hivecall.turns.handle import TurnEvent
from hivecall.turns.resume import Cursor, resumed
from hivecall.web import turns_api
from tests.test_long_turns import events


async def test_a_turn_gone_mid_stream_ends_with_an_error_event(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    hub: Hub = app.state.hub
    echo = await hub.agents.get("echo")
    # A turn another hivecall process runs (the CLI's `ask`): followed through the store.
    row = {
        "id": "turn_elsewhere",
        "agent_id": echo.id,
        "session_id": "s",
        "source": "cli",
        "status": "running",
        "message": "work",
        "queued_at": datetime.now(UTC),
        "progress": [{"at": "2025-01-01T00:00:00+00:00", "text": "reading the code"}],
    }
    async with hub.store.engine.begin() as conn:
        await conn.execute(insert(Turn).values(**row))
    follow = asyncio.create_task(events(client, "turn_elsewhere"))
    await asyncio.sleep(0.1)
    # That process's owner removes the agent, and its turns with it, while we follow.
    async with hub.store.engine.begin() as conn:
        await conn.execute(delete(Turn).where(Turn.id == "turn_elsewhere"))
    got = await asyncio.wait_for(follow, 10)
    assert got == [
        ("progress", row["progress"][0]),  # type: ignore[index]
        ("error", {"error": {"code": "turn_not_found", "message": "the turn is gone"}}),
    ]


async def test_an_unexpected_failure_mid_stream_is_an_error_event() -> None:
    async def failing() -> AsyncIterator[TurnEvent]:
        yield TurnEvent("progress", {"at": "", "text": "started"})
        raise RuntimeError("the store went away")

    frames = [f async for f in turns_api._sse(resumed(failing(), Cursor()))]
    assert frames == [
        b'id: 0/\nevent: progress\ndata: {"at":"","text":"started"}\n\n',
        b'event: error\ndata: {"error":{"code":"internal_error",'
        b'"message":"the hub hit an unexpected error"}}\n\n',
    ]
