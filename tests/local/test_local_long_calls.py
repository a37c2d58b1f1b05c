"""Long agent work on a local call over real WebRTC (an aiortc caller), both stores: the caller
hears the acknowledgement, then the answer; "stop" cancels the turn and its process group; a
stopping hub tells the caller the turn is interrupted, and records it so."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette

from hivecall.app import create_app
from hivecall.hub import Hub
from hivecall.settings import Settings
from tests.conftest import OWNER, owner_client, script
from tests.local.caller import Caller
from tests.local.speech import overlap, phrases, said, silence
from tests.local.test_long_work import said_in_order
from tests.procs import alive

REQUEST = "Please check every part of the build."


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home", database_url=database_url, owner_token=OWNER, voice_ack_s=0.2
    )


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs.jsonl"


class HubCaller(Caller):
    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub


async def connect(
    client: httpx.AsyncClient, hub: Hub, mode: str, workspace: Path, runs: Path
) -> tuple[dict[str, Any], HubCaller]:
    """A local call to a fake_agent in `mode`, connected and greeted."""
    r = await client.post(
        "/api/agents",
        json={
            "name": "coder",
            "command": f"{script('fake_agent.py')} --mode {mode} {{message}}",
            "workspace": str(workspace),
            "env": [f"FAKE_AGENT_LOG={runs}", f"FAKE_AGENT_CHILD_PID={runs}.child"],
        },
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/calls", json={"agent_id": r.json()["agent"]["id"]})
    assert r.status_code == 201, r.text
    call = r.json()["call"]
    caller = HubCaller(hub)
    r = await client.post(
        call["local"]["offer_url"],
        content=await caller.offer(),
        headers={"content-type": "application/sdp"},
    )
    assert r.status_code == 201, r.text
    await caller.answered(r.text)
    await caller.until(lambda: "response.done" in caller.types())  # the greeting
    await played_out(caller)
    return call, caller


def of(caller: Caller, kind: str) -> list[dict[str, Any]]:
    return [e for e in caller.events if e["type"] == kind]


async def played_out(caller: Caller) -> None:
    """Until what the hub queued to say has been sent and has arrived (audio goes out in real
    time, after the events that announce it)."""
    local = caller.hub.local
    await caller.until(
        lambda: all(p.conversation._quiet() for p in local._peers.values()), timeout=30
    )

    def quiet() -> bool:
        tail = np.frombuffer(bytes(caller.heard[-16000:]), dtype=np.int16)
        return len(tail) == 8000 and int(np.abs(tail).max()) < 300

    await asyncio.sleep(0.1)
    await caller.until(quiet, timeout=30)


def ask(caller: Caller, text: str) -> None:
    assert caller.mic is not None
    caller.mic.say(said(text) + silence(1.2))


async def test_the_caller_hears_the_acknowledgement_then_the_answer(
    app: Starlette, client: httpx.AsyncClient, workspace: Path, runs: Path
) -> None:
    call, caller = await connect(client, app.state.hub, "work:4:1", workspace, runs)
    try:
        ask(caller, REQUEST)
        await caller.until(lambda: of(caller, "hivecall.turn.done"), timeout=30)
        await caller.until(lambda: caller.types().count("response.done") == 3)
        await played_out(caller)
    finally:
        await caller.close()
    heard = phrases(bytes(caller.heard))
    assert said_in_order(heard, "coder is working on it", "parts are fine"), heard
    assert overlap(heard[-1], "all 4 parts are fine " + REQUEST) >= 0.6, heard
    [started] = of(caller, "hivecall.turn.started")
    progress = of(caller, "hivecall.turn.progress")
    assert [p["text"] for p in progress][:4] == [
        f"step {i} of 4: checking part {i}" for i in range(1, 5)
    ]
    assert {p["turn_id"] for p in progress} == {started["turn_id"]}
    assert of(caller, "hivecall.turn.done")[0]["status"] == "done"

    await client.post(f"/api/calls/{call['id']}/end")
    shown = (await client.get(f"/api/calls/{call['id']}")).json()
    agent_lines = [ln for ln in shown["lines"] if ln["kind"] == "agent"]
    assert [ln["text"] for ln in agent_lines][:2] == [
        "Hi, it's coder. Go ahead.",
        "coder is working on it.",
    ]
    assert agent_lines[1]["turn_id"] == agent_lines[2]["turn_id"] == started["turn_id"]


async def test_stop_cancels_the_turn_and_its_process_group(
    app: Starlette, client: httpx.AsyncClient, workspace: Path, runs: Path
) -> None:
    call, caller = await connect(client, app.state.hub, "sleep", workspace, runs)
    try:
        ask(caller, REQUEST)
        await caller.until(lambda: caller.types().count("response.done") == 2)  # the ack
        await played_out(caller)
        [run] = [json.loads(line) for line in runs.read_text().splitlines()]
        child = int(Path(f"{runs}.child").read_text())
        assert alive(run["pid"]) and alive(child)

        ask(caller, "Stop.")
        await caller.until(lambda: of(caller, "hivecall.turn.done"), timeout=20)
        await caller.until(lambda: caller.types().count("response.done") == 3)
        await played_out(caller)
    finally:
        await caller.close()
    [done] = of(caller, "hivecall.turn.done")
    assert done["status"] == "cancelled"
    for _ in range(50):
        if not alive(run["pid"]) and not alive(child):
            break
        await asyncio.sleep(0.05)
    assert not alive(run["pid"]) and not alive(child)  # the whole group, seen in /proc
    turn = (await client.get(f"/api/turns/{done['turn_id']}")).json()["turn"]
    assert turn["status"] == "cancelled" and turn["error_code"] == "cancelled"
    heard = phrases(bytes(caller.heard))
    assert said_in_order(heard, "coder is working on it", "stop"), heard
    assert overlap(heard[-1], "stopped coder") >= 0.5, heard
    shown = (await client.get(f"/api/calls/{call['id']}")).json()
    assert len(shown["turns"]) == 1  # "stop" went to no agent
    users = [ln["text"] for ln in shown["lines"] if ln["kind"] == "user"]
    assert len(users) == 2 and overlap(users[1], "stop") == 1.0


async def test_a_stopping_hub_says_the_turn_is_interrupted(
    settings: Settings, environ: dict[str, str], workspace: Path, runs: Path
) -> None:
    app: Starlette = create_app(settings, environ=environ, workspace=workspace)
    caller: HubCaller | None = None
    async with app.router.lifespan_context(app), owner_client(app) as client:
        call, caller = await connect(client, app.state.hub, "sleep", workspace, runs)
        ask(caller, REQUEST)
        await caller.until(lambda: caller.types().count("response.done") == 2)
        await played_out(caller)
        [started] = of(caller, "hivecall.turn.started")
        [run] = [json.loads(line) for line in runs.read_text().splitlines()]
    # The lifespan is over: the hub stopped with the turn running.
    assert caller is not None
    await caller.close()
    heard = phrases(bytes(caller.heard))
    assert said_in_order(heard, "working on it", "interrupted"), heard
    assert overlap(heard[-1], "coder was interrupted because the hub is shutting down") >= 0.6
    assert not alive(run["pid"])

    hub = await Hub.open(settings, environ=environ)  # the hub again, as after a restart
    try:
        turn = await hub.bridge.get_turn(started["turn_id"])
        assert turn is not None and turn.status == "interrupted", turn
        assert turn.error_code == "hub_stopping" and turn.call_id == call["id"]
    finally:
        await hub.aclose()
    assert sys.platform.startswith("linux")  # /proc is what `alive` reads


async def test_a_call_is_tuned_from_the_hubs_settings(
    app: Starlette, client: httpx.AsyncClient, workspace: Path, runs: Path
) -> None:
    hub: Hub = app.state.hub
    hub.settings = hub.settings.replace(voice_ack_s=0.1, voice_progress_s=7)
    call, caller = await connect(client, hub, "answer", workspace, runs)
    try:
        tuning = hub.local._peers[call["id"]].conversation._tuning
        assert (tuning.ack_s, tuning.progress_s) == (0.1, 7)
    finally:
        await caller.close()
