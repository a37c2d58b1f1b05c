"""The bridge: one persisted turn per request, in any front door's shape, never lost."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from hivecall.agents.records import Agents
from hivecall.app import create_app
from hivecall.hub import Hub
from hivecall.runtimes import TurnInput
from hivecall.secretbox import SecretBox
from hivecall.settings import Settings
from hivecall.store import Store
from hivecall.store.models import Turn
from hivecall.turns.request import TurnRequest


async def test_phone_turn_is_persisted_and_speakable(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/phone", json={"agent_id": "echo", "message": "  is the build green?  "}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True and body["status"] == "done"
    assert "is the build green?" in body["text"] and "No runtime is configured" in body["text"]
    turn = (await client.get(f"/api/turns/{body['turn_id']}")).json()["turn"]
    assert turn["status"] == "done" and turn["source"] == "phone"
    assert turn["message"] == "is the build green?"
    assert turn["session_id"] == body["session_id"]
    assert turn["queued_at"] <= turn["started_at"] <= turn["finished_at"]
    assert turn["duration_ms"] >= 0


async def test_call_id_and_session_link_turns(app: Starlette, client: httpx.AsyncClient) -> None:
    # /api/phone only takes the call ids of real calls (tests/calls covers that); the bridge
    # itself links whatever front door's call id it is given.
    hub = app.state.hub
    for text in ("one", "two"):
        result = await hub.bridge.run(
            TurnRequest(
                agent="echo", message=text, source="phone", session_id="s-1", call_id="call-9"
            )
        )
        assert result.session_id == "s-1"
    r = await client.post(
        "/api/phone", json={"agent_id": "echo", "message": "three", "call_id": "call-9"}
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "call_not_found"
    turns = (await client.get("/api/turns", params={"call_id": "call-9"})).json()["turns"]
    assert [t["message"] for t in turns] == ["two", "one"]
    assert (await client.get("/api/turns", params={"session_id": "s-1", "limit": 1})).json()[
        "turns"
    ][0]["message"] == "two"


async def test_agent_runtime_answers_like_openai(client: httpx.AsyncClient) -> None:
    body = {"agent_id": "echo", "messages": [{"role": "user", "content": "ping"}]}
    r = await client.post("/api/chat/agent-runtime", json=body)
    data = r.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["role"] == "assistant"
    assert "ping" in data["choices"][0]["message"]["content"]
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["hivecall"]["turn_id"]

    chunks = []
    async with client.stream("POST", "/api/chat/agent-runtime", json={**body, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                chunks.append(line[6:])
    assert chunks[-1] == "[DONE]"
    parsed = [json.loads(c) for c in chunks[:-1]]
    assert all(p["object"] == "chat.completion.chunk" for p in parsed)
    assert parsed[0]["choices"][0]["delta"]["role"] == "assistant"
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(p["choices"][0]["delta"].get("content", "") for p in parsed)
    assert "ping" in text


async def test_bad_turns_change_nothing(client: httpx.AsyncClient) -> None:
    cases = [
        ({"agent_id": "echo", "message": "   "}, 400, "empty_message"),
        ({"agent_id": "echo", "message": "x" * 16001}, 400, "message_too_long"),
        ({"agent_id": "ghost", "message": "hi"}, 404, "agent_not_found"),
        ({"agent_id": "echo"}, 400, "invalid_request"),
        ({"agent_id": "echo", "message": 5}, 400, "invalid_request"),
        ({"agent_id": "echo", "message": "hi", "session_id": "bad id!"}, 400, "invalid_request"),
        ({"agent_id": "echo", "message": "hi", "extra": 1}, 400, "invalid_request"),
    ]
    for body, status, code in cases:
        r = await client.post("/api/phone", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), body
    r = await client.post(
        "/api/phone", content=b"[1, 2]", headers={"content-type": "application/json"}
    )
    assert r.json()["error"]["code"] == "malformed_json"
    r = await client.post(
        "/api/chat/agent-runtime",
        json={"agent_id": "echo", "messages": [{"role": "assistant", "content": "hi"}]},
    )
    assert r.json()["error"]["code"] == "invalid_request"
    assert (await client.get("/api/turns")).json()["turns"] == []


class Hanging:
    exclusive = False
    wants_context = False
    resumes_sessions = False

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def stream(self, turn: TurnInput) -> AsyncIterator[str]:
        yield "starting… "
        self.started.set()
        await asyncio.sleep(3600)


async def test_shutdown_interrupts_and_restart_recovers(
    settings: Settings, environ: dict[str, str], workspace: Path
) -> None:
    app = create_app(settings, environ=environ, workspace=workspace)
    hanging = Hanging()
    async with app.router.lifespan_context(app):
        hub: Hub = app.state.hub
        hub.runtimes.register("echo", hanging)
        handle = await hub.bridge.start(
            TurnRequest(agent="echo", message="long job", source="test")
        )
        await asyncio.wait_for(hanging.started.wait(), 5)
        assert hub.bridge.status_of(await hub.agents.get("echo")) == "busy"
    # The hub stopped mid-turn: the turn is kept, marked interrupted, with what it had said.
    result = await handle.result()
    assert result.status == "interrupted"

    # A crash leaves turns running; the next start marks them interrupted.
    store = Store(url=settings.resolved_database_url)
    crashed = uuid.uuid4().hex
    async with store.session() as s, s.begin():
        agent_id = await s.scalar(select(Turn.agent_id))
        s.add(
            Turn(
                id=crashed,
                agent_id=agent_id,
                session_id="x",
                source="test",
                status="running",
                message="m",
            )
        )
    app = create_app(settings, environ=environ, workspace=workspace)
    async with app.router.lifespan_context(app):
        pass
    async with store.session() as s:
        rows = {t.id: t for t in await s.scalars(select(Turn))}
    await store.aclose()
    assert rows[handle.turn_id].status == "interrupted"
    assert rows[handle.turn_id].reply == "starting…"
    assert rows[handle.turn_id].error_code == "hub_stopping"
    assert rows[crashed].status == "interrupted" and rows[crashed].error_code == "hub_restarted"


async def test_caller_hanging_up_does_not_lose_the_turn(
    app: object, client: httpx.AsyncClient
) -> None:
    hub: Hub = app.state.hub  # type: ignore[attr-defined]
    handle = await hub.bridge.start(TurnRequest(agent="echo", message="keep going", source="test"))
    # Nobody reads the stream; the turn still finishes and is stored.
    result = await asyncio.wait_for(handle.result(), 5)
    turn = (await client.get(f"/api/turns/{result.turn_id}")).json()["turn"]
    assert turn["status"] == "done" and "keep going" in turn["reply"]


async def test_agent_removed_by_another_process(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # The hub has just looked the agent up (and keeps the record for a moment)…
    assert (await client.post("/api/phone", json={"agent_id": "echo", "message": "a"})).json()["ok"]
    # …when the CLI, another process with its own store, removes it.
    other = Store(url=settings.resolved_database_url)
    await Agents(store=other, search_path=None, box=SecretBox.open(settings.home)).delete("echo")
    await other.aclose()
    r = await client.post("/api/phone", json={"agent_id": "echo", "message": "b"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "agent_not_found")
    assert (
        await client.post("/api/phone", json={"agent_id": "echo", "message": "c"})
    ).status_code == 404
