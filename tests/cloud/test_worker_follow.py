"""The worker's hub client and long turns, against the real hub on SQLite and PostgreSQL: the
"started" answer, following a turn's events (keep-alives, a dropped connection, 404), cancel,
and a tool call sent twice making one turn."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from hivecall.cloud.hubclient import Claim, ClaimedAgent, HubClient, HubError
from hivecall.turns.handle import TurnEvent, started_line
from hivecall.web import turns_api
from tests.cloud.long_work import Wire, add_command_agent, hub_overrides
from tests.cloud.worker_fixtures import (  # noqa: F401 (fixtures)
    call_record,
    live_hub,
    owner,
    realtime,
    start_cloud_call,
)
from tests.keys import LIVEKIT_API_KEY, LIVEKIT_API_SECRET
from tests.live import LiveHub
from tests.procs import alive

_ = hub_overrides  # the fixture: SQLite and PostgreSQL, voice_ack_s 0.3


@asynccontextmanager
async def worker_hub(
    live: LiveHub, wire: Wire, *, follow_idle: float = 45.0
) -> AsyncIterator[HubClient]:
    async with HubClient(
        base_url=live.url,
        livekit_api_key=LIVEKIT_API_KEY,
        livekit_api_secret=LIVEKIT_API_SECRET,
        follow_idle=follow_idle,
        transport=wire,
    ) as client:
        yield client


async def claimed(
    owner: httpx.AsyncClient,  # noqa: F811
    hub: HubClient,
    agent: str,
) -> dict[str, Any]:
    call = await start_cloud_call(owner, agent)
    await hub.claim(call["id"], call["agent"]["id"], f"AJ_{agent}")
    return call


def story(events: list[TurnEvent]) -> tuple[list[str], str, dict[str, Any]]:
    """What a follower learns: the progress lines, the answer, the end (deltas may be cut
    differently live and from the store, which keeps the answer stripped)."""
    assert [e.kind for e in events].count("done") == 1 and events[-1].kind == "done", events
    progress = [str(e.data["text"]) for e in events if e.kind == "progress"]
    answer = "".join(str(e.data["text"]) for e in events if e.kind == "delta").strip()
    return progress, answer, events[-1].data


async def test_a_dropped_stream_is_reopened_and_nothing_is_told_twice(
    owner: httpx.AsyncClient,  # noqa: F811
    live_hub: LiveHub,  # noqa: F811
    tmp_path: Path,
) -> None:
    await add_command_agent(owner, "worker", "work:4:0.3", tmp_path / "runs.jsonl")
    wire = Wire(drops=1)
    async with worker_hub(live_hub, wire) as hub:
        await claimed(owner, hub, "worker")
        answer = await hub.ask("check everything", tool_call_id="call_drop_1")
        # Longer than voice_ack_s: the hub's "started" line at once, and the turn to follow.
        assert answer.running and answer.text == started_line("worker"), answer
        got = [e async for e in hub.follow(answer.turn_id)]
        assert wire.count("GET", "/events") == 2  # dropped after the first progress, reopened
        progress, said, done = story(got)
        assert progress[:4] == [f"step {i} of 4: checking part {i}" for i in range(1, 5)]
        assert len(progress) == len(set(progress)), progress  # the replay was skipped
        assert done["status"] == "done" and done["turn_id"] == answer.turn_id
        assert "All 4 parts are fine: check everything" in said
        assert "All 4 parts are fine" in done["text"]

        # The same story as a follower that was never cut off (now from the store).
        assert story([e async for e in hub.follow(answer.turn_id)]) == (progress, said, done)


@pytest.mark.parametrize("drop_at", ["progress", "delta"])
async def test_a_stream_reopened_after_the_turn_ended_goes_on_from_the_store(
    owner: httpx.AsyncClient,  # noqa: F811
    live_hub: LiveHub,  # noqa: F811
    tmp_path: Path,
    drop_at: str,
) -> None:
    """The reopened stream is the store's replay (all progress, then the whole answer as one
    delta), shaped unlike the live one: the hub resumes it from the last event's id."""
    await add_command_agent(owner, "worker", "work:4:0.2", tmp_path / "runs.jsonl")
    turn_id = ""

    async def when_ended() -> None:
        for _ in range(200):
            r = await owner.get(f"/api/turns/{turn_id}")
            if r.json()["turn"]["status"] == "done" and live_hub.hub.bridge.live(turn_id) is None:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the turn did not end")

    wire = Wire(drops=1, drop_at=drop_at, reopen=when_ended)
    async with worker_hub(live_hub, wire) as hub:
        await claimed(owner, hub, "worker")
        answer = await hub.ask("check everything", tool_call_id=f"call_late_{drop_at}")
        assert answer.running, answer
        turn_id = answer.turn_id
        got = [e async for e in hub.follow(turn_id)]
        assert wire.count("GET", "/events") == 2
        assert wire.resumed_from[0] is None and wire.resumed_from[1], wire.resumed_from
        progress, said, done = story(got)
        stored = (await owner.get(f"/api/turns/{turn_id}")).json()["turn"]
        assert progress[:4] == [f"step {i} of 4: checking part {i}" for i in range(1, 5)]
        assert progress == [p["text"] for p in stored["progress"]]  # each line once
        assert said == stored["reply"] and said.endswith("All 4 parts are fine: check everything")
        assert done["status"] == "done" and done["turn_id"] == turn_id
        assert story([e async for e in hub.follow(turn_id)]) == (progress, said, done)


async def test_keepalives_keep_a_quiet_stream_open_and_a_silent_one_is_reopened(
    owner: httpx.AsyncClient,  # noqa: F811
    live_hub: LiveHub,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The agent is quiet for 1.2 s between lines; the follower gives up on a stream silent
    for 0.6 s. With the hub's keep-alive comments every 0.05 s it never has to (a loaded
    machine may stall the hub's thread for a few tenths of a second: hence the margins)."""
    await add_command_agent(owner, "worker", "work:3:1.2", tmp_path / "runs.jsonl")
    monkeypatch.setattr(turns_api, "KEEPALIVE_S", 0.05)
    wire = Wire()
    async with worker_hub(live_hub, wire, follow_idle=0.6) as hub:
        await claimed(owner, hub, "worker")
        answer = await hub.ask("check the parts", tool_call_id="call_quiet_1")
        assert answer.running
        got = [e async for e in hub.follow(answer.turn_id)]
        assert wire.count("GET", "/events") == 1
        assert b": keepalive\n\n" in wire.raw  # they were sent, and skipped
        progress, said, done = story(got)
        assert progress[:3] == [f"step {i} of 3: checking part {i}" for i in range(1, 4)]
        assert done["status"] == "done" and "check the parts" in said

        # Without keep-alives, each quiet gap looks like a dead connection: reopened and
        # replayed, still each event once.
        monkeypatch.setattr(turns_api, "KEEPALIVE_S", 30.0)
        answer = await hub.ask("check again", tool_call_id="call_quiet_2")
        assert answer.running
        before = wire.count("GET", "/events")
        got = [e async for e in hub.follow(answer.turn_id)]
        assert wire.count("GET", "/events") - before >= 2
        progress, said, done = story(got)
        assert progress[:3] == [f"step {i} of 3: checking part {i}" for i in range(1, 4)]
        assert len(progress) == len(set(progress)) and "check again" in said


async def test_a_turn_the_call_does_not_have_is_404_at_once(
    owner: httpx.AsyncClient,  # noqa: F811
    live_hub: LiveHub,  # noqa: F811
) -> None:
    wire = Wire()
    async with worker_hub(live_hub, wire) as hub:
        await claimed(owner, hub, "echo")
        for turn_id in ("turn_nope", "../../api/agents"):
            with pytest.raises(HubError) as caught:
                _ = [e async for e in hub.follow(turn_id)]
            assert (caught.value.status, caught.value.code) == (404, "turn_not_found")
        # The owner's own turn, outside this call: the call's token does not see it.
        r = await owner.post("/api/phone", json={"agent_id": "echo", "message": "private"})
        assert r.status_code == 200, r.text
        for follow in (True, False):
            with pytest.raises(HubError) as caught:
                if follow:
                    _ = [e async for e in hub.follow(r.json()["turn_id"])]
                else:
                    await hub.cancel(r.json()["turn_id"])
            assert (caught.value.status, caught.value.code) == (404, "turn_not_found")
    # Refused at once: one request each, never retried; the bad id never left the worker.
    assert wire.count("GET", "/events") == 2
    assert wire.count("POST", "/cancel") == 1


async def test_cancel_stops_the_running_turn_and_its_process_group(
    owner: httpx.AsyncClient,  # noqa: F811
    live_hub: LiveHub,  # noqa: F811
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs.jsonl"
    await add_command_agent(owner, "sleeper", "sleep", runs)
    async with worker_hub(live_hub, Wire()) as hub:
        call = await claimed(owner, hub, "sleeper")
        answer = await hub.ask("migrate the database", tool_call_id="call_sleep_1")
        assert answer.running
        child = int(Path(f"{runs}.child").read_text())
        [run] = [json.loads(line) for line in runs.read_text().splitlines()]
        following = asyncio.create_task(_collect(hub, answer.turn_id))
        assert await hub.cancel(answer.turn_id) == "cancelling"
        got = await asyncio.wait_for(following, 10)
        assert got[-1].kind == "done" and got[-1].data["status"] == "cancelled"
        assert got[-1].data["text"] == "Stopped sleeper."
        for _ in range(100):
            if not alive(child) and not alive(run["pid"]):
                break
            await asyncio.sleep(0.02)
        assert not alive(child) and not alive(run["pid"])
        with pytest.raises(HubError) as caught:
            await hub.cancel(answer.turn_id)
        assert (caught.value.status, caught.value.code) == (409, "turn_finished")
    shown = await call_record(owner, call["id"])
    assert [(t["message"], t["status"]) for t in shown["turns"]] == [
        ("migrate the database", "cancelled")
    ]


async def _collect(hub: HubClient, turn_id: str) -> list[TurnEvent]:
    return [e async for e in hub.follow(turn_id)]


async def test_a_tool_call_whose_answer_was_lost_is_sent_again_and_is_one_turn(
    owner: httpx.AsyncClient,  # noqa: F811
    live_hub: LiveHub,  # noqa: F811
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs.jsonl"
    await add_command_agent(owner, "worker", "work:4:0.5", runs)
    wire = Wire(lose_answers=1)
    async with worker_hub(live_hub, wire) as hub:
        call = await claimed(owner, hub, "worker")
        answer = await hub.ask("tidy up", tool_call_id="call_twice_1")
        assert wire.count("POST", "/api/phone") == 2  # the first answer never came back
        assert answer.running and answer.text == started_line("worker")
        done = (await _collect(hub, answer.turn_id))[-1]
        assert done.data["status"] == "done"

        # Without the tool call's id a resend could start the work twice: it is not resent.
        wire.lose_answers = 1
        lost = await hub.ask("tidy up more")
        assert lost.text.startswith("I could not reach the computer agent: ") and not lost.running
        assert wire.count("POST", "/api/phone") == 3

    shown = await call_record(owner, call["id"])
    turns = [t["message"] for t in shown["turns"]]
    assert sorted(turns) == ["tidy up", "tidy up more"]  # one turn for the tool call sent twice
    assert len(runs.read_text().splitlines()) >= 1
    assert [json.loads(x)["argv"][-1] for x in runs.read_text().splitlines()].count("tidy up") == 1


async def test_a_hub_gone_for_good_ends_the_follow_with_hub_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wire = Wire()
    async with HubClient(
        base_url=f"http://127.0.0.1:{port}",
        livekit_api_key=LIVEKIT_API_KEY,
        livekit_api_secret=LIVEKIT_API_SECRET,
        follow_give_up=1.0,
        transport=wire,
    ) as hub:
        hub.use(
            Claim(
                token="hcw_not-a-real-token",
                call_id="call_x",
                room="hivecall-call_x",
                agent=ClaimedAgent(
                    id="a1", name="echo", voice="marin", instructions="", greeting=""
                ),
                agents=("echo",),
            )
        )
        started = asyncio.get_running_loop().time()
        with pytest.raises(HubError) as caught:
            _ = [e async for e in hub.follow("turn_1")]
        took = asyncio.get_running_loop().time() - started
    assert caught.value.code == "hub_unreachable" and caught.value.retryable
    assert "hcw_not-a-real-token" not in caught.value.message
    assert 1.0 <= took < 4 and wire.count("GET", "/events") >= 3  # tried again, then gave up
