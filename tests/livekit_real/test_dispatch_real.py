"""Dispatching `hivecall worker` on the real livekit-server.

The server hands a dispatch to a worker only when it is made: one made while no worker is
registered for the agent name stays job-less forever, even after a worker registers (measured on
v1.13.5, and what tests/livekit_standin now does too). So the hub dispatches an agent nobody
claimed again (calls/cloud/rooms.py): a call started before `hivecall worker` is up is taken by
the worker that registers during the ring. A call whose worker is up is dispatched once, and a
second job for the same agent is refused at the claim, so it never joins.

Each test runs the real `hivecall worker` CLI (its job claims the call at the hub, joins the room
and talks to the OpenAI Realtime stand-in) against a hub served over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from livekit import api

from hivecall.calls.cloud.livekit import LiveKit, LiveKitError
from hivecall.calls.cloud.rooms import REDISPATCH_AFTER_S
from hivecall.calls.cloud.wire import JobMeta
from hivecall.settings import Settings
from tests.keys import FAKE_OPENAI_KEY
from tests.live import LiveHub, serve_hub
from tests.livekit_real.server import RealLiveKit
from tests.livekit_standin.worker_proc import WorkerProcess
from tests.standins.realtime import RealtimeStandin
from tests.standins.threaded import free_port

T = TypeVar("T")

WORKER_START_TIMEOUT = 90.0  # importing livekit-agents and registering, on a loaded machine
# Long enough that a worker started after the call registers within the ring on a loaded
# machine (the default, 30 s, is what users get; the tests are about the redispatch, not it).
RING = 150.0
CLAIMED = "claimed a cloud call job"  # the worker's log line for a claim the hub accepted


async def wait_for(what: str, probe: Callable[[], Awaitable[T | None]], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = await probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
def realtime() -> Iterator[RealtimeStandin]:
    with RealtimeStandin(api_key=FAKE_OPENAI_KEY) as standin:
        yield standin


@pytest.fixture
def live(
    tmp_path: Path, livekit_server: RealLiveKit, client_network: None, realtime: RealtimeStandin
) -> Iterator[LiveHub]:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    environ = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    with contextlib.contextmanager(serve_hub)(
        tmp_path,
        environ=environ,
        workspace=workspace,
        openai_base_url=realtime.base_url,
        cloud_calls=True,
        call_connect_timeout=RING,
        livekit_url=livekit_server.url,
        livekit_api_key=livekit_server.api_key,
        livekit_api_secret=livekit_server.api_secret,
    ) as hub:
        yield hub


class Worker:
    """`hivecall worker` in a subprocess, for one test."""

    def __init__(
        self, tmp: Path, server: RealLiveKit, live: LiveHub, realtime: RealtimeStandin
    ) -> None:
        self.process = WorkerProcess.hivecall_worker(
            livekit_url=server.ws_url,
            api_key=server.api_key,
            api_secret=server.api_secret,
            openai_base_url=realtime.base_url,
            hub_url=live.url,
            home=tmp / "worker-home",
            log=tmp / "worker.log",
            health_port=free_port(),
            env={"HIVECALL_WORKER_WAIT_FOR_HUMAN": "60"},
        )

    def log(self) -> str:
        return self.process.log()

    async def start(self) -> None:
        """Start it and return once LiveKit registered it."""
        self.process.start()

        async def registered() -> bool:
            assert self.process.running, f"hivecall worker exited:\n{self.log()[-4000:]}"
            return self.process.registered

        await wait_for("hivecall worker to register", registered, WORKER_START_TIMEOUT)

    def stop(self) -> None:
        self.process.drain()


@pytest.fixture
def worker(
    tmp_path: Path, livekit_server: RealLiveKit, live: LiveHub, realtime: RealtimeStandin
) -> Iterator[Worker]:
    """Not started: each test starts it when it should be up."""
    made = Worker(tmp_path, livekit_server, live, realtime)
    try:
        yield made
    finally:
        made.stop()
        print(made.log()[-8000:])  # shown when the test fails


async def request(live: LiveHub, method: str, path: str, **kw: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live.url, headers=live.headers, timeout=30) as client:
        r = await client.request(method, path, **kw)
    assert r.is_success, r.text
    body: dict[str, Any] = r.json()
    return body


async def start_call(live: LiveHub) -> dict[str, Any]:
    echo = (await request(live, "GET", "/api/agents/echo"))["agent"]["id"]
    answer = await request(live, "POST", "/api/calls", json={"agent_id": echo, "mode": "cloud"})
    call: dict[str, Any] = answer["call"]
    return call


async def hivecall_dispatches(lkapi: api.LiveKitAPI, room: str) -> list[Any]:
    return [d for d in await lkapi.agent_dispatch.list_dispatch(room) if d.agent_name == "hivecall"]


def claimed(live: LiveHub, call_id: str) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    """A probe: the call record once a worker claimed it (it left `ringing`)."""

    async def probe() -> dict[str, Any] | None:
        shown = await request(live, "GET", f"/api/calls/{call_id}")
        return shown if shown["call"]["state"] != "ringing" else None

    return probe


def claim_logged(worker: Worker) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return CLAIMED in worker.log()

    return probe


async def test_a_call_started_before_the_worker_is_taken_when_it_registers(
    live: LiveHub, worker: Worker, lkapi: api.LiveKitAPI
) -> None:
    call = await start_call(live)
    room = call["livekit"]["room"]
    (first,) = await hivecall_dispatches(lkapi, room)

    # While no worker is registered the call rings, and the hub keeps dispatching; it says
    # once what the call waits for.
    async def redispatched() -> list[Any] | None:
        found = await hivecall_dispatches(lkapi, room)
        return found if len(found) >= 2 else None

    await wait_for("a second dispatch", redispatched, 30)
    shown = await request(live, "GET", f"/api/calls/{call['id']}")
    assert shown["call"]["state"] == "ringing"
    texts = [ln["text"] for ln in shown["lines"] if ln["kind"] == "phase"]
    assert texts == ["waiting for `hivecall worker` to take echo"]

    # The worker comes up during the ring: a later dispatch reaches it, its job claims the
    # call, and the call connects (it no longer rings, and is not failed).
    await worker.start()
    shown = await wait_for("the worker to claim the call", claimed(live, call["id"]), 60)
    assert shown["call"]["state"] == "connecting", shown["call"]
    phases = [ln["text"] for ln in shown["lines"] if ln["kind"] == "phase"]
    assert phases == ["waiting for `hivecall worker` to take echo", "connecting"]
    await wait_for("the worker's log of its claim", claim_logged(worker), 30)
    # A worker slow to start its job may have got one more (a redispatch meanwhile): that
    # claim was refused, so only one job is in the call.
    assert worker.log().count(CLAIMED) == 1

    # The first dispatch, made while no worker was registered, never got its job.
    dispatches = {d.id: d for d in await hivecall_dispatches(lkapi, room)}
    assert list(dispatches[first.id].state.jobs) == []
    # Once claimed, the agent is not dispatched again.
    count = len(dispatches)
    await asyncio.sleep(REDISPATCH_AFTER_S + 2)
    assert len(await hivecall_dispatches(lkapi, room)) == count

    await request(live, "POST", f"/api/calls/{call['id']}/end")


async def test_a_call_whose_worker_is_up_is_dispatched_once(
    live: LiveHub, worker: Worker, lkapi: api.LiveKitAPI
) -> None:
    # What is checked is that one dispatch reaches the registered worker once: a machine too
    # loaded to start the job within REDISPATCH_AFTER_S must not make the hub dispatch again.
    live.hub.cloud.redispatch_after = RING
    await worker.start()
    call = await start_call(live)
    room = call["livekit"]["room"]
    shown = await wait_for("the worker to claim the call", claimed(live, call["id"]), 60)
    assert shown["call"]["state"] == "connecting", shown["call"]
    assert [ln["text"] for ln in shown["lines"] if ln["kind"] == "phase"] == ["connecting"]
    (dispatch,) = await hivecall_dispatches(lkapi, room)
    assert json.loads(dispatch.metadata)["call_id"] == call["id"]
    await wait_for("the worker's log of its claim", claim_logged(worker), 30)
    assert worker.log().count("received job request") == 1

    # A second job for the same agent (what a redispatch racing a slow claim makes): the worker
    # gets it and claims, the hub refuses, and that job leaves without joining the room.
    agent = call["agent"]
    meta = JobMeta(call["id"], agent["id"], agent["name"]).encode()
    await lkapi.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="hivecall", room=room, metadata=meta)
    )

    async def refused() -> bool:
        return any(
            "the hub refused the job" in line and "code='agent_claimed'" in line
            for line in worker.log().splitlines()
        )

    await wait_for("the second job's claim to be refused", refused, 60)
    assert worker.log().count("received job request") == 2
    assert worker.log().count(CLAIMED) == 1
    people = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    agents = [p.identity for p in people.participants if p.identity.startswith("agent-")]
    assert agents in ([], [f"agent-{agent['id']}"])  # at most the one that claimed
    shown = await request(live, "GET", f"/api/calls/{call['id']}")
    assert shown["call"]["state"] == "connecting"

    await request(live, "POST", f"/api/calls/{call['id']}/end")


async def test_livekit_errors_read_without_the_servers_wrapper(
    settings: Settings, livekit_server: RealLiveKit
) -> None:
    """The server says "twirp error unknown: no response from servers" (a 503, after ~3 s)
    for the dispatches of a room that does not exist; the hub's message keeps only the
    reason."""
    client = LiveKit()
    try:
        lk = client._client(settings)
        with pytest.raises(LiveKitError) as caught:
            await client._call(
                "list the dispatches", lk.agent_dispatch.list_dispatch("hivecall-call_missing")
            )
    finally:
        await client.aclose()
    assert (caught.value.code, caught.value.status) == ("livekit_error", 502)
    assert caught.value.message == "LiveKit could not list the dispatches: no response from servers"
