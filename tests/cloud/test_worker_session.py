"""The worker's voice session: AgentSession text runs with OpenAI Realtime (the stand-in) whose
`ask_computer_agent` reaches the real hub's bridge with the call token the worker claimed, and
the floor rule deciding when the model answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import httpx
import pytest
from livekit import rtc

from hivecall.cloud import job
from hivecall.cloud.call_floor import CallFloor
from hivecall.cloud.hubclient import HubClient
from hivecall.cloud.job import attend, call_agent, call_session
from hivecall.cloud.room import Room
from hivecall.cloud.running_turns import RunningTurns, Session
from hivecall.settings import Settings
from hivecall.voice.tool import CANCEL_NAME, NAME
from tests.cloud.worker_fakes import FakeRoom, agent, person
from tests.cloud.worker_fixtures import (  # noqa: F401 (fixtures)
    call_record,
    hub_client,
    live_hub,
    owner,
    realtime,
    start_cloud_call,
    worker_settings,
)
from tests.standins.realtime import RealtimeSession, RealtimeStandin, Script, Turn

ECHO_SAYS = "No runtime is configured for echo yet, so I can only tell you what I heard: "


async def until(what: str, condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def conversation(standin: RealtimeStandin) -> RealtimeSession:
    await until("the Realtime websocket", lambda: standin.sockets)
    socket = standin.sockets[-1]
    await until("the session's tools", lambda: socket.session.get("tools"))
    return socket


def _texts(socket: RealtimeSession) -> list[str]:
    """The text of the user messages the client put in the conversation."""
    return [
        part.get("text", "")
        for item in socket.items
        if item.get("type") == "message" and item.get("role") == "user"
        for part in item.get("content", [])
    ]


async def close(session: Session) -> None:
    model = session.llm
    await session.aclose()
    if model is not None:
        await model.aclose()


async def test_the_tool_reaches_the_bridge_with_the_call_token(
    owner: httpx.AsyncClient,  # noqa: F811
    hub_client: HubClient,  # noqa: F811
    worker_settings: Settings,  # noqa: F811
    realtime: RealtimeStandin,  # noqa: F811
) -> None:
    call = await start_cloud_call(owner)
    claim = await hub_client.claim(call["id"], call["agent"]["id"], "AJ_test")
    assert claim.token.startswith("hcw_") and claim.token not in repr(claim)
    realtime.script = Script(
        turns=[
            Turn.tool("run the tests", auto=False),
            Turn.say(lambda s: f"The agent says: {s.last_output}"),
        ]
    )

    session = call_session(worker_settings, claim)
    try:
        await session.start(call_agent(claim, hub_client, RunningTurns(session, hub_client)))
        result = await session.run(user_input="Run the tests.")
        result.expect.next_event().is_function_call(
            name=NAME, arguments={"message": "run the tests"}
        )
        result.expect.next_event().is_function_call_output(output=ECHO_SAYS + "run the tests")
        result.expect.next_event().is_message(role="assistant")
        result.expect.no_more_events()
    finally:
        await close(session)

    # The turn ran on the hub's bridge, inside the call, with the worker's token.
    shown = await call_record(owner, call["id"])
    assert shown["call"]["state"] == "connecting"  # claimed; no person yet
    assert [(t["message"], t["status"]) for t in shown["turns"]] == [("run the tests", "done")]
    assert ("tool", "run the tests") in [(ln["kind"], ln["text"]) for ln in shown["lines"]]

    # The model was set up as the claim said, and never answers on its own.
    (socket,) = realtime.sockets
    assert socket.session["instructions"] == claim.agent.instructions
    assert "group call" in socket.session["instructions"]
    audio = socket.session["audio"]
    assert audio["output"]["voice"] == claim.agent.voice == "marin"
    assert audio["input"]["transcription"]["model"] == worker_settings.realtime_transcribe_model
    detection = audio["input"]["turn_detection"]
    assert detection["create_response"] is False and detection["interrupt_response"] is False
    assert [t["name"] for t in socket.session["tools"]] == [NAME, CANCEL_NAME]
    assert socket.session["model"] == worker_settings.realtime_model
    assert socket.transcripts == [f"The agent says: {ECHO_SAYS}run the tests"]


async def test_the_floor_decides_when_the_model_answers(
    owner: httpx.AsyncClient,  # noqa: F811
    hub_client: HubClient,  # noqa: F811
    worker_settings: Settings,  # noqa: F811
    realtime: RealtimeStandin,  # noqa: F811
) -> None:
    """echo shares the room with claude: it answers when named, or when it holds the floor."""
    call = await start_cloud_call(owner)
    claim = await hub_client.claim(call["id"], call["agent"]["id"], "AJ_floor")
    realtime.script = Script(
        turns=[
            Turn.say("Hi, I am echo."),
            Turn.say("On it."),
            Turn.say("You are welcome."),
            Turn.tool("run the tests", auto=False),
            Turn.say(lambda s: f"The agent says: {s.last_output}"),
            Turn.say("Looks fine."),
        ]
    )
    session = call_session(worker_settings, claim)
    waited: list[tuple[str, ...]] = []

    async def wait_for(names: Any) -> None:
        waited.append(tuple(names))

    floor = CallFloor(
        session,
        hub_client,
        me="echo",
        present=lambda: ("echo", "claude"),
        speaker=lambda: "Sam",
        wait_for=wait_for,
    )
    heard: list[str] = []
    try:
        await session.start(call_agent(claim, hub_client, RunningTurns(session, hub_client)))
        socket = await conversation(realtime)

        async def say(text: str, *, answered: bool) -> None:
            before = len(socket.response_requests)
            realtime.start_turn(socket, Turn(user=text))
            heard.append(text)
            await until(f"the floor to hear {text!r}", lambda: len(floor.turns) == len(heard))
            if answered:
                await until(f"a reply to {text!r}", lambda: len(socket.response_requests) > before)
                await until("the reply to end", lambda: not socket.busy)
            else:
                await asyncio.sleep(0.2)  # a reply would have been asked for by now
                assert len(socket.response_requests) == before, text

        await say("Hello everyone.", answered=True)  # nobody named yet: the first agent
        await say("Claude, what broke?", answered=False)
        await say("And why?", answered=False)  # claude holds the floor now
        await say("Claude and echo, fix it together.", answered=True)
        await say("Thanks.", answered=True)  # echo, named last, holds the floor
        await say("Echo, run the tests.", answered=True)
        await until("the tool's answer", lambda: len(socket.responses) == 5)

        # Typed in the room's chat: the same rule. Not for echo: it joins the conversation
        # without a reply; for echo: a reply.
        assert not await floor.heard("Claude, see this log.", speaker="Kim", typed=True)
        await until("the typed line", lambda: _texts(socket)[-1:] == ["Claude, see this log."])
        assert len(socket.response_requests) == 5
        assert await floor.heard("Echo, thoughts?", speaker="Kim", typed=True)
        await until("the reply to the typed line", lambda: len(socket.responses) == 6)
        assert _texts(socket)[-1] == "Echo, thoughts?"
    finally:
        await close(session)
        await floor.aclose()  # sends the lines still queued

    answers = [t.answerers for t in floor.turns]
    assert answers == [
        ("echo",),
        ("claude",),
        ("claude",),
        ("claude", "echo"),
        ("echo",),
        ("echo",),
        ("claude",),
        ("echo",),
    ]
    assert floor.floor.holder == "echo"
    # echo was named second: it let claude answer first.
    assert waited == [("claude",)]

    # The call's transcript: every person's line once (echo is the room's first agent), with
    # who said it, and what echo said.
    async def lines() -> list[tuple[str, str, str]]:
        shown = await call_record(owner, call["id"])
        return [(ln["kind"], ln["speaker"], ln["text"]) for ln in shown["lines"]]

    got = await lines()
    assert [x for x in got if x[0] == "user"] == [("user", "Sam", t) for t in heard] + [
        ("user", "Kim", "Claude, see this log."),
        ("user", "Kim", "Echo, thoughts?"),
    ]
    assert [x for x in got if x[0] == "agent"] == [
        ("agent", "echo", "Hi, I am echo."),
        ("agent", "echo", "On it."),
        ("agent", "echo", "You are welcome."),
        ("agent", "echo", f"The agent says: {ECHO_SAYS}run the tests"),
        ("agent", "echo", "Looks fine."),
    ]
    assert ("tool", "", "run the tests") in got


async def test_the_agent_greets_the_first_person_and_ends_the_call_when_all_left(
    owner: httpx.AsyncClient,  # noqa: F811
    hub_client: HubClient,  # noqa: F811
    worker_settings: Settings,  # noqa: F811
    realtime: RealtimeStandin,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(job, "LEAVE_GRACE", 0.3)
    call = await start_cloud_call(owner)
    claim = await hub_client.claim(call["id"], call["agent"]["id"], "AJ_attend")
    realtime.script = Script(turns=[Turn.say("Hi, I am echo.")])
    fake = FakeRoom(agent("claude"))
    room = Room(cast(rtc.Room, fake), me=claim.agent.name, known=claim.agents)
    session = call_session(worker_settings, claim)

    async def state() -> str:
        return str((await call_record(owner, call["id"]))["call"]["state"])

    try:
        await session.start(call_agent(claim, hub_client, RunningTurns(session, hub_client)))
        socket = await conversation(realtime)
        closed = asyncio.Event()
        attending = asyncio.create_task(
            attend(room, session, hub_client, claim, wait_for_human=10, closed=closed)
        )
        await asyncio.sleep(0.2)  # only an agent in the room: nobody to talk to yet
        assert await state() == "connecting" and socket.response_requests == []

        fake.arrive(person("human-1", "Sam"))
        await until("the greeting", lambda: socket.response_requests)
        assert socket.response_requests[0]["instructions"].endswith(claim.agent.greeting)
        assert await state() == "talking"

        fake.depart("human-1")  # a reload: back within the grace period
        await asyncio.sleep(0.1)
        fake.arrive(person("human-1", "Sam"))
        await asyncio.sleep(0.4)
        assert not attending.done() and await state() == "talking"

        fake.depart("human-1")
        await asyncio.wait_for(attending, 5)
        assert await state() == "ended"
    finally:
        await close(session)


async def test_nobody_coming_ends_the_call_and_being_removed_just_leaves(
    owner: httpx.AsyncClient,  # noqa: F811
    hub_client: HubClient,  # noqa: F811
    worker_settings: Settings,  # noqa: F811
    realtime: RealtimeStandin,  # noqa: F811
) -> None:
    call = await start_cloud_call(owner)
    claim = await hub_client.claim(call["id"], call["agent"]["id"], "AJ_alone")
    session = call_session(worker_settings, claim)
    try:
        await session.start(call_agent(claim, hub_client, RunningTurns(session, hub_client)))
        socket = await conversation(realtime)
        fake = FakeRoom()
        room = Room(cast(rtc.Room, fake), me=claim.agent.name, known=claim.agents)
        await attend(room, session, hub_client, claim, wait_for_human=0.2, closed=asyncio.Event())
        shown = await call_record(owner, call["id"])
        assert shown["call"]["state"] == "ended"
        assert socket.response_requests == []  # no greeting for nobody

        # In another call, the owner removes the agent (the room disconnects it): it leaves
        # without ending a call that goes on without it.
        other = await start_cloud_call(owner)
        async with HubClient.from_settings(worker_settings) as other_hub:
            other_claim = await other_hub.claim(other["id"], other["agent"]["id"], "AJ_removed")
            fake = FakeRoom(person("human-1", "Sam"))
            room = Room(cast(rtc.Room, fake), me="echo", known=other_claim.agents)
            attending = asyncio.create_task(
                attend(
                    room, session, other_hub, other_claim, wait_for_human=5, closed=asyncio.Event()
                )
            )
            await until("talking", lambda: len(socket.response_requests) == 1)
            fake.connected = False
            fake.emit("disconnected", None)
            await asyncio.wait_for(attending, 5)
        assert (await call_record(owner, other["id"]))["call"]["state"] == "talking"
    finally:
        await close(session)
