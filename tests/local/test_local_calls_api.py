"""Local calls over the HTTP API and real WebRTC (an aiortc caller), both stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from hivecall.settings import Settings
from tests.conftest import OWNER, script
from tests.local.caller import Caller
from tests.local.speech import overlap, said, silence, transcribe

REQUEST = "What is the status of the build?"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # No OpenAI key: local is what "auto" picks.
    return Settings(home=tmp_path / "home", database_url=database_url, owner_token=OWNER)


async def add_agent(client: httpx.AsyncClient, workspace: Path) -> dict[str, Any]:
    r = await client.post(
        "/api/agents",
        json={
            "name": "coder",
            "command": f"{script('fake_agent.py')} {{message}}",
            "workspace": str(workspace),
        },
    )
    assert r.status_code == 201, r.text
    agent: dict[str, Any] = r.json()["agent"]
    return agent


async def start(client: httpx.AsyncClient, agent: dict[str, Any], **extra: Any) -> dict[str, Any]:
    r = await client.post("/api/calls", json={"agent_id": agent["id"], **extra})
    assert r.status_code == 201, r.text
    call: dict[str, Any] = r.json()["call"]
    return call


async def offer(client: httpx.AsyncClient, call: dict[str, Any], sdp: str) -> httpx.Response:
    return await client.post(
        call["local"]["offer_url"], content=sdp, headers={"content-type": "application/sdp"}
    )


async def test_modes_offer_local_without_a_key(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/calls/modes")
    body = r.json()
    assert body["default"] == "local"
    local = next(m for m in body["modes"] if m["mode"] == "local")
    assert local == {"mode": "local", "available": True}


async def test_a_local_call_is_heard_answered_and_recorded(
    client: httpx.AsyncClient, workspace: Path
) -> None:
    agent = await add_agent(client, workspace)
    call = await start(client, agent)
    assert call["mode"] == "local" and call["state"] == "ringing"
    assert call["local"]["offer_url"] == f"/api/calls/{call['id']}/local/offer"
    assert "realtime" not in call

    caller = Caller()
    try:
        r = await offer(client, call, await caller.offer())
        assert r.status_code == 201, r.text
        assert r.headers["content-type"].startswith("application/sdp")
        await caller.answered(r.text)
        await caller.until(lambda: "response.done" in caller.types())  # the greeting
        assert caller.mic is not None
        caller.mic.say(said(REQUEST) + silence(1.2))
        await caller.until(lambda: caller.types().count("response.done") == 2, timeout=30)
        await caller.until(lambda: caller.mic is not None and caller.mic.done)
        await _played_out(caller)
    finally:
        await caller.close()

    types = caller.types()
    for name in (
        "conversation.item.input_audio_transcription.completed",
        "hivecall.turn.started",
        "hivecall.turn.done",
        "response.output_audio_transcript.delta",
    ):
        assert name in types, types
    # The agent answered "Done. I handled: <request> ..." and the caller heard it.
    heard = transcribe(bytes(caller.heard))
    assert overlap(heard, "I handled " + REQUEST) >= 0.6, heard

    r = await client.post(f"/api/calls/{call['id']}/end")
    assert r.json()["call"]["state"] == "ended"
    shown = (await client.get(f"/api/calls/{call['id']}")).json()
    kinds = [ln["kind"] for ln in shown["lines"]]
    assert kinds[:2] == ["phase", "phase"]  # connecting, talking
    assert [ln["text"] for ln in shown["lines"] if ln["kind"] == "phase"] == [
        "connecting",
        "talking",
        "ended",
    ]
    user = [ln for ln in shown["lines"] if ln["kind"] == "user"]
    assert len(user) == 1 and overlap(user[0]["text"], REQUEST) >= 0.8
    assert len(shown["turns"]) == 1
    assert user[0]["turn_id"] == shown["turns"][0]["id"]
    assert shown["turns"][0]["call_id"] == call["id"]
    agent_lines = [ln["text"] for ln in shown["lines"] if ln["kind"] == "agent"]
    assert len(agent_lines) == 2  # the greeting and the answer
    assert "handled" in agent_lines[1].lower()


async def _played_out(caller: Caller) -> None:
    """Wait until the hub's voice has been quiet for a second (audio arrives in real time)."""

    def quiet() -> bool:
        tail = np.frombuffer(bytes(caller.heard[-32000:]), dtype=np.int16)
        return len(tail) == 16000 and int(np.abs(tail).max()) < 300

    await caller.until(quiet, timeout=30)


async def test_a_caller_without_a_microphone_is_speaker_only(
    client: httpx.AsyncClient, workspace: Path
) -> None:
    agent = await add_agent(client, workspace)
    call = await start(client, agent, mode="local")
    caller = Caller(microphone=False)
    try:
        r = await offer(client, call, await caller.offer())
        assert r.status_code == 201, r.text
        await caller.answered(r.text)
        await caller.until(lambda: "response.done" in caller.types())
    finally:
        await caller.close()
    shown = (await client.get(f"/api/calls/{call['id']}")).json()
    assert shown["call"]["speaker_only"] is True
    assert shown["call"]["state"] in ("talking", "ended")


async def test_bad_offers_change_nothing(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, workspace: Path
) -> None:
    agent = await add_agent(client, workspace)
    call = await start(client, agent, mode="local")
    url = call["local"]["offer_url"]

    r = await client.post(url, content="v=0", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    r = await client.post(
        url, content="not sdp at all", headers={"content-type": "application/sdp"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_sdp"
    r = await client.post(url, content="x" * 70_000, headers={"content-type": "application/sdp"})
    assert r.status_code == 413
    r = await anon.post(url, content="v=0", headers={"content-type": "application/sdp"})
    assert r.status_code == 401
    r = await client.post(
        "/api/calls/call_nope/local/offer",
        content="v=0",
        headers={"content-type": "application/sdp"},
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "call_not_found"
    shown = (await client.get(f"/api/calls/{call['id']}")).json()
    assert shown["call"]["state"] == "ringing"
    assert shown["lines"] == []

    # One offer per call: a second one is refused.
    caller = Caller()
    try:
        assert (await offer(client, call, await caller.offer())).status_code == 201
        second = Caller()
        again = await offer(client, call, await second.offer())
        await second.close()
        assert again.status_code == 409 and again.json()["error"]["code"] == "call_connected"
    finally:
        await caller.close()
        await client.post(f"/api/calls/{call['id']}/end")


async def test_the_call_limit_is_kept(client: httpx.AsyncClient, workspace: Path, app: Any) -> None:
    app.state.hub.settings = app.state.hub.settings.replace(local_max_calls=1)
    agent = await add_agent(client, workspace)
    first = await start(client, agent, mode="local")
    caller = Caller()
    try:
        assert (await offer(client, first, await caller.offer())).status_code == 201
        r = await client.post("/api/calls", json={"agent_id": agent["id"], "mode": "local"})
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_calls"
    finally:
        await caller.close()
        await client.post(f"/api/calls/{first['id']}/end")
    assert (await client.post("/api/calls", json={"agent_id": agent["id"]})).status_code == 201
