"""Long work in a cloud call's voice session: AgentSession text runs with the OpenAI Realtime
stand-in, the real hub (SQLite and PostgreSQL) running a CLI-like agent that works for a while
and prints progress. The tool answers "started" at once; the latest progress rides with the
agent's replies; the answer is said when ready, by the agent whose work it was; stop stops it."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from livekit import rtc

from hivecall.app import create_app
from hivecall.cloud import running_turns
from hivecall.cloud.call_floor import CallFloor
from hivecall.cloud.hubclient import HubClient, HubError
from hivecall.cloud.job import call_agent, call_session
from hivecall.cloud.room import AGENT_STATE, Room
from hivecall.cloud.running_turns import RunningTurns
from hivecall.settings import Settings
from hivecall.turns.handle import started_line
from hivecall.voice.tool import CANCEL_NAME, NAME
from tests.cloud.long_work import add_command_agent, hub_overrides
from tests.cloud.test_worker_session import close, conversation, until
from tests.cloud.worker_fakes import FakeRoom, agent
from tests.cloud.worker_fixtures import (  # noqa: F401 (fixtures)
    call_record,
    hub_client,
    live_hub,
    owner,
    realtime,
    start_cloud_call,
    worker_settings,
)
from tests.live import LiveHub
from tests.procs import alive
from tests.standins.realtime import RealtimeSession, RealtimeStandin, Script, ToolCall, Turn
from tests.standins.threaded import ServerThread

_ = hub_overrides  # the fixture: SQLite and PostgreSQL, voice_ack_s 0.3

ANSWERED = "has just ended"  # in the instructions of the reply that says a turn's answer


def instructions(socket: RealtimeSession) -> list[str]:
    return [str(r.get("instructions") or "") for r in socket.response_requests]


def system_notes(socket: RealtimeSession) -> list[str]:
    """The system messages the worker put in the conversation."""
    return [
        part.get("text", "")
        for item in socket.items
        if item.get("type") == "message" and item.get("role") == "system"
        for part in item.get("content", [])
    ]


def received_index(socket: RealtimeSession, match: Callable[[dict[str, Any]], bool]) -> int:
    return next(i for i, e in enumerate(socket.received) if match(e))


async def turn_status(owner: httpx.AsyncClient, call_id: str) -> list[tuple[str, str]]:  # noqa: F811
    shown = await call_record(owner, call_id)
    return [(t["message"], t["status"]) for t in shown["turns"]]


async def test_a_long_turn_answers_started_then_the_answer_is_said_when_ready(
    owner: httpx.AsyncClient,  # noqa: F811
    hub_client: HubClient,  # noqa: F811
    worker_settings: Settings,  # noqa: F811
    realtime: RealtimeStandin,  # noqa: F811
    live_hub: LiveHub,  # noqa: F811
    tmp_path: Path,
) -> None:
    await add_command_agent(owner, "worker", "work:4:0.5", tmp_path / "runs.jsonl")
    call = await start_cloud_call(owner, "worker")
    claim = await hub_client.claim(call["id"], call["agent"]["id"], "AJ_long")
    realtime.script = Script(
        turns=[
            Turn(outputs=(ToolCall("check everything", call_id="call_long_1"),)),
            Turn.say(lambda s: f"Started: {s.last_output}"),
            Turn.say("It is on part two."),  # "how is it going?"
            Turn.say("All four parts are fine."),  # the answer, when it is ready
        ]
    )
    session = call_session(worker_settings, claim)
    turns = RunningTurns(session, hub_client)
    floor = CallFloor(
        session, hub_client, me="worker", present=lambda: ("worker",), speaker=lambda: "Sam",
        work=turns,
    )  # fmt: skip
    try:
        await session.start(call_agent(claim, hub_client, turns))
        socket = await conversation(realtime)
        assert [t["name"] for t in socket.session["tools"]] == [NAME, CANCEL_NAME]

        # The tool call answers at once with the hub's "started" line: the model says it.
        result = await session.run(user_input="Check everything, please.")
        result.expect.next_event().is_function_call(
            name=NAME, arguments={"message": "check everything"}
        )
        result.expect.next_event().is_function_call_output(output=started_line("worker"))
        result.expect.next_event().is_message(role="assistant")
        result.expect.no_more_events()
        assert socket.function_outputs["call_long_1"] == started_line("worker")
        [running] = turns.running
        assert running.message == "check everything"

        # The conversation goes on; "how is it going?" is answered knowing the latest progress.
        await until("progress", lambda: turns.running and turns.running[0].progress)
        assert await floor.heard("How is it going?", speaker="Sam", typed=True)
        await until("the reply", lambda: len(socket.responses) == 3)
        asked = instructions(socket)[2]
        assert "Work still running" in asked and '"check everything"' in asked
        assert "step 1 of 4: checking part 1" in asked
        assert ANSWERED not in " ".join(instructions(socket))

        # When the turn is done the worker asks the model to say its answer, which it also
        # put in the conversation first.
        await until("the answer", lambda: any(ANSWERED in i for i in instructions(socket)), 20)
        await until("the answer said", lambda: len(socket.responses) == 4)
        told = instructions(socket)[3]
        assert "All 4 parts are fine" in told and '"check everything"' in told
        [note] = system_notes(socket)
        assert note.startswith('The computer agent\'s work on "check everything" has ended (done)')
        assert "All 4 parts are fine" in note
        note_at = received_index(
            socket,
            lambda e: (
                e.get("type") == "conversation.item.create" and e["item"].get("role") == "system"
            ),
        )
        reply_at = received_index(
            socket,
            lambda e: (
                e.get("type") == "response.create"
                and ANSWERED in str(e.get("response", {}).get("instructions"))
            ),
        )
        assert note_at < reply_at
        assert socket.transcripts[-1] == "All four parts are fine."
        assert turns.running == [] and turns.told == [running.turn_id]
        # Nothing runs any more: replies are not told about work.
        assert turns.brief() is None
    finally:
        await turns.aclose()
        await close(session)
        await floor.aclose()

    assert await turn_status(owner, call["id"]) == [("check everything", "done")]
    # The function call's own id was the hub's idempotency key.
    row = await live_hub.run(lambda h: h.bridge.get_turn(running.turn_id))
    assert row is not None and row.tool_call_id == "call_long_1"


async def test_stop_cancels_the_running_turn_and_only_that_is_said(
    owner: httpx.AsyncClient,  # noqa: F811
    hub_client: HubClient,  # noqa: F811
    worker_settings: Settings,  # noqa: F811
    realtime: RealtimeStandin,  # noqa: F811
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs.jsonl"
    await add_command_agent(owner, "sleeper", "sleep", runs)
    call = await start_cloud_call(owner, "sleeper")
    claim = await hub_client.claim(call["id"], call["agent"]["id"], "AJ_stop")
    realtime.script = Script(
        turns=[
            Turn(outputs=(ToolCall("migrate the database"),)),
            Turn.say("On it."),
            Turn(outputs=(ToolCall("", name=CANCEL_NAME, arguments="{}"),)),  # "stop that"
            Turn.say(lambda s: f"Okay. {s.last_output}"),
            Turn(outputs=(ToolCall("", name=CANCEL_NAME, arguments="{}"),)),  # "stop!" again
            Turn.say(lambda s: f"{s.last_output}"),
        ]
    )
    session = call_session(worker_settings, claim)
    turns = RunningTurns(session, hub_client)
    floor = CallFloor(
        session, hub_client, me="sleeper", present=lambda: ("sleeper",), work=turns
    )  # fmt: skip
    try:
        await session.start(call_agent(claim, hub_client, turns))
        socket = await conversation(realtime)
        await session.run(user_input="Migrate the database.")
        [running] = turns.running
        child = int(Path(f"{runs}.child").read_text())
        [run] = [json.loads(line) for line in runs.read_text().splitlines()]
        assert alive(child) and alive(run["pid"])

        assert await floor.heard("Stop that.", speaker="Sam", typed=True)
        await until("the request", lambda: len(socket.response_requests) == 3)
        # Even before any progress, the reply knows work is running.
        assert "It has not reported any progress yet." in instructions(socket)[2]
        await until("the cancel's reply", lambda: len(socket.responses) == 4)
        stopped = 'Stopped the computer agent\'s work on "migrate the database".'
        assert socket.transcripts[-1] == f"Okay. {stopped}"
        await until("the turn's end", lambda: turns.told == [running.turn_id])
        for _ in range(100):
            if not alive(child) and not alive(run["pid"]):
                break
            await asyncio.sleep(0.02)
        assert not alive(child) and not alive(run["pid"])  # the agent's whole process group

        # Its end is noted, not said a second time.
        await asyncio.sleep(0.3)
        assert len(socket.response_requests) == 4
        assert ANSWERED not in " ".join(instructions(socket))
        assert system_notes(socket) == [
            'The computer agent\'s work on "migrate the database" was stopped, as the user asked.'
        ]

        # Nothing left to stop.
        assert await floor.heard("Stop!", speaker="Sam", typed=True)
        await until("the second reply", lambda: len(socket.responses) == 6)
        assert socket.transcripts[-1].startswith("Nothing is running")
    finally:
        await turns.aclose()
        await close(session)
        await floor.aclose()

    assert await turn_status(owner, call["id"]) == [("migrate the database", "cancelled")]
    with pytest.raises(HubError) as caught:
        await hub_client.cancel(running.turn_id)
    assert (caught.value.status, caught.value.code) == (409, "turn_finished")


async def test_the_answer_comes_from_the_agent_whose_work_it_was_when_the_room_is_quiet(
    owner: httpx.AsyncClient,  # noqa: F811
    hub_client: HubClient,  # noqa: F811
    worker_settings: Settings,  # noqa: F811
    realtime: RealtimeStandin,  # noqa: F811
    tmp_path: Path,
) -> None:
    """worker shares the room with claude. The person moves on to claude while worker's work
    runs; when it is done, worker (not the floor's holder) says the answer, once claude has
    stopped talking."""
    await add_command_agent(owner, "worker", "work:2:0.3", tmp_path / "runs.jsonl")
    call = await start_cloud_call(owner, "worker")
    claim = await hub_client.claim(call["id"], call["agent"]["id"], "AJ_room")
    realtime.script = Script(
        turns=[
            Turn(outputs=(ToolCall("check the parts"),)),
            Turn.say("On it."),
            Turn.say("Both parts are fine."),
        ]
    )
    claude = agent("claude", 1)
    fake = FakeRoom(claude)
    room = Room(cast(rtc.Room, fake), me="worker", known=("worker", "claude"))
    session = call_session(worker_settings, claim)
    turns = RunningTurns(session, hub_client, quiet=lambda: not room.others_talking())
    floor = CallFloor(session, hub_client, me="worker", present=room.agents, work=turns)
    try:
        await session.start(call_agent(claim, hub_client, turns))
        socket = await conversation(realtime)
        await session.run(user_input="Worker, check the parts.")
        [running] = turns.running

        assert not await floor.heard("Claude, what broke?", speaker="Sam", typed=False)
        assert floor.floor.holder == "claude"
        claude.attributes[AGENT_STATE] = "speaking"  # claude answers, at length
        await until("the turn's end", lambda: not turns.running, 15)
        await asyncio.sleep(0.6)
        assert len(socket.response_requests) == 2  # held while claude talks

        claude.attributes[AGENT_STATE] = "listening"
        await until("the answer", lambda: any(ANSWERED in i for i in instructions(socket)))
        await until("the answer said", lambda: len(socket.responses) == 3)
        assert "All 2 parts are fine" in instructions(socket)[2]
        assert socket.transcripts[-1] == "Both parts are fine."
        assert turns.told == [running.turn_id]
        assert floor.floor.holder == "claude"  # saying an answer does not take the floor
    finally:
        await turns.aclose()
        await close(session)
        await floor.aclose()


async def test_the_call_ending_stops_following_but_not_the_work(
    owner: httpx.AsyncClient,  # noqa: F811
    hub_client: HubClient,  # noqa: F811
    worker_settings: Settings,  # noqa: F811
    realtime: RealtimeStandin,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The agent leaves while its work runs: the follower stops at once (the session closes
    without waiting for the work), the hub's turn goes on and ends in the call's history."""
    monkeypatch.setattr(running_turns, "QUIET_WAIT_S", 0.1)
    await add_command_agent(owner, "worker", "work:3:0.4", tmp_path / "runs.jsonl")
    call = await start_cloud_call(owner, "worker")
    claim = await hub_client.claim(call["id"], call["agent"]["id"], "AJ_leave")
    realtime.script = Script(turns=[Turn(outputs=(ToolCall("check the parts"),)), Turn.say("Ok.")])
    session = call_session(worker_settings, claim)
    turns = RunningTurns(session, hub_client)
    await session.start(call_agent(claim, hub_client, turns))
    socket = await conversation(realtime)
    await session.run(user_input="Check the parts.")
    assert turns.running
    closing = asyncio.get_running_loop().time()
    await asyncio.wait_for(turns.aclose(), 2)
    await asyncio.wait_for(close(session), 5)
    assert asyncio.get_running_loop().time() - closing < 2
    assert turns.told == [] and len(socket.response_requests) == 2

    async def ended() -> bool:
        return await turn_status(owner, call["id"]) == [("check the parts", "done")]

    for _ in range(100):
        if await ended():
            break
        await asyncio.sleep(0.05)
    assert await ended()


class _SamePort(ServerThread):
    """A hub started again where the last one listened (what a restart looks like)."""

    def __init__(self, port: int) -> None:
        super().__init__(None, name="live-hub-again", lifespan="on")
        self.port = port

    def bind(self) -> int:
        if self._sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            self._sock = sock
        return self.port


async def test_a_hub_restart_during_the_work_is_said_and_nothing_runs_twice(
    owner: httpx.AsyncClient,  # noqa: F811
    hub_client: HubClient,  # noqa: F811
    worker_settings: Settings,  # noqa: F811
    realtime: RealtimeStandin,  # noqa: F811
    live_hub: LiveHub,  # noqa: F811
    environ: dict[str, str],
    workspace: Path,
    tmp_path: Path,
) -> None:
    """The hub stops while the agent works and comes back: the worker's follower reconnects,
    finds the turn recorded `interrupted`, and the call says so."""
    runs = tmp_path / "runs.jsonl"
    await add_command_agent(owner, "worker", "work:40:0.5", runs)
    call = await start_cloud_call(owner, "worker")
    claim = await hub_client.claim(call["id"], call["agent"]["id"], "AJ_restart")
    realtime.script = Script(
        turns=[
            Turn(outputs=(ToolCall("check every part"),)),
            Turn.say("On it."),
            Turn.say("Sorry, the hub restarted."),
        ]
    )
    session = call_session(worker_settings, claim)
    turns = RunningTurns(session, hub_client)
    again = _SamePort(live_hub.server.port)
    try:
        await session.start(call_agent(claim, hub_client, turns))
        socket_ = await conversation(realtime)
        await session.run(user_input="Check every part.")
        await until("progress", lambda: turns.running and turns.running[0].progress)
        [running] = turns.running

        await asyncio.to_thread(live_hub.server.close)
        again.app = create_app(live_hub.settings, environ=environ, workspace=workspace)
        await asyncio.to_thread(again.start)

        await until("the end", lambda: any(ANSWERED in i for i in instructions(socket_)), 30)
        told = instructions(socket_)[2]
        assert "interrupted" in told and '"check every part"' in told
        await until("the end said", lambda: len(socket_.responses) == 3)
        assert turns.told == [running.turn_id]
        assert await turn_status(owner, call["id"]) == [("check every part", "interrupted")]
        assert len(runs.read_text().splitlines()) == 1  # the work was not started again
    finally:
        await turns.aclose()
        await close(session)
        await asyncio.to_thread(again.close)
