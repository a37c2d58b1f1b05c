"""The `/agent` worker websocket, spoken by hand (aiohttp, as livekit-agents does) to pin down
each message; test_agent_server.py runs the real AgentServer against it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import aiohttp
import pytest
from livekit import api
from livekit.protocol import agent, models

from tests.livekit_standin.server import LiveKitStandin
from tests.livekit_standin.workers import AGENT_NAME_ATTRIBUTE

METADATA = '{"hivecall": 1, "call_id": "call_1", "agent_id": "a1", "agent_name": "Ada"}'


class RawWorker:
    """A worker connection without the framework: register, then read and answer by hand."""

    def __init__(
        self, standin: LiveKitStandin, agent_name: str = "hivecall", *, token: str | None = None
    ) -> None:
        self.standin = standin
        self.agent_name = agent_name
        self.token = token or standin.token(grants=api.VideoGrants(agent=True))
        self.session = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.worker_id = ""

    async def connect(self) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(
            f"{self.standin.ws_url}/agent?protocol=1",
            headers={"Authorization": f"Bearer {self.token}"},
        )

    async def __aenter__(self) -> RawWorker:
        self.ws = await self.connect()
        register = agent.RegisterWorkerRequest(
            type=agent.JobType.JT_ROOM,
            agent_name=self.agent_name,
            version="test",
            allowed_permissions=models.ParticipantPermission(
                can_publish=True, can_subscribe=True, can_publish_data=True, agent=True
            ),
        )
        await self.send(agent.WorkerMessage(register=register))
        reply = await self.receive()
        assert reply.WhichOneof("message") == "register"
        self.worker_id = reply.register.worker_id
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.session.close()

    async def send(self, message: agent.WorkerMessage) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(message.SerializeToString())

    async def receive(self, timeout: float = 5.0) -> agent.ServerMessage:
        assert self.ws is not None
        data = await self.ws.receive_bytes(timeout=timeout)
        return agent.ServerMessage.FromString(data)

    async def answer(self, job_id: str, **fields: Any) -> None:
        await self.send(
            agent.WorkerMessage(availability=agent.AvailabilityResponse(job_id=job_id, **fields))
        )


@pytest.fixture
async def worker(livekit_standin: LiveKitStandin) -> AsyncIterator[RawWorker]:
    async with RawWorker(livekit_standin) as raw:
        yield raw


async def test_registration_and_pings(livekit_standin: LiveKitStandin, worker: RawWorker) -> None:
    assert worker.worker_id.startswith("AW_")
    (record,) = livekit_standin.workers
    assert (record.id, record.agent_name, record.job_type, record.connected) == (
        worker.worker_id,
        "hivecall",
        agent.JobType.JT_ROOM,
        True,
    )
    assert record.claims.video is not None and record.claims.video.agent
    await worker.send(agent.WorkerMessage(ping=agent.WorkerPing(timestamp=1234)))
    pong = await worker.receive()
    assert pong.pong.last_timestamp == 1234 and pong.pong.timestamp > 0
    await worker.send(
        agent.WorkerMessage(
            update_worker=agent.UpdateWorkerStatus(
                status=agent.WorkerStatus.WS_FULL, load=0.9, job_count=3
            )
        )
    )
    await livekit_standin.wait_for(lambda: record.status == agent.WorkerStatus.WS_FULL)
    assert record.load == pytest.approx(0.9)
    assert record.job_count == 3


async def test_workers_need_the_agent_grant(livekit_standin: LiveKitStandin) -> None:
    joiner = livekit_standin.token("x", grants=api.VideoGrants(room_join=True, room="r"))
    for token in (joiner, "not-a-jwt"):
        raw = RawWorker(livekit_standin, token=token)
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await raw.connect()
        await raw.session.close()
        assert caught.value.status == 401
    refused_grant, refused_token = livekit_standin.worker_refusals
    assert refused_grant.reason == "no permissions to access the room"
    assert refused_grant.grants is not None and refused_grant.grants.room_join
    assert refused_token.reason.startswith("invalid token: DecodeError")
    assert livekit_standin.workers == []


async def test_a_dispatch_becomes_a_job_assignment(
    lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin, worker: RawWorker
) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="hivecall-call_1", max_participants=8))
    dispatch = await lkapi.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(
            agent_name="hivecall", room="hivecall-call_1", metadata=METADATA
        )
    )
    request = (await worker.receive()).availability
    job = request.job
    assert job.id.startswith("AJ_")
    assert (job.dispatch_id, job.agent_name, job.metadata, job.type) == (
        dispatch.id,
        "hivecall",
        METADATA,
        agent.JobType.JT_ROOM,
    )
    assert (job.room.name, job.room.max_participants) == ("hivecall-call_1", 8)
    assert (job.state.status, job.state.worker_id) == (agent.JobStatus.JS_RUNNING, worker.worker_id)

    await worker.answer(
        job.id,
        available=True,
        participant_identity="agent-a1",
        participant_name="Ada",
        participant_metadata="m",
        participant_attributes={"hivecall.kind": "agent", "hivecall.agent_id": "a1"},
    )
    assignment = (await worker.receive()).assignment
    assert assignment.job.id == job.id
    assert assignment.url == livekit_standin.ws_url
    claims = api.TokenVerifier(livekit_standin.api_key, livekit_standin.api_secret).verify(
        assignment.token
    )
    assert (claims.identity, claims.name, claims.kind, claims.metadata) == (
        "agent-a1",
        "Ada",
        "agent",
        "m",
    )
    assert claims.attributes == {
        "hivecall.kind": "agent",
        "hivecall.agent_id": "a1",
        AGENT_NAME_ATTRIBUTE: "hivecall",
    }
    assert claims.video is not None
    assert (claims.video.room_join, claims.video.room, claims.video.agent) == (
        True,
        "hivecall-call_1",
        True,
    )
    assert (claims.video.can_publish, claims.video.can_subscribe) == (True, True)
    assert not claims.video.room_admin and not claims.video.room_create

    record = livekit_standin.job_for(dispatch.id)
    assert record is not None
    assert (record.worker_id, record.status_name) == (worker.worker_id, "JS_RUNNING")
    assert record.token_claims == claims
    assert record.availability is not None
    assert record.availability.participant_identity == "agent-a1"
    # The agent is not in the room: it would have to connect to /rtc, and there is no SFU.
    assert livekit_standin.participants("hivecall-call_1") == []

    await worker.send(
        agent.WorkerMessage(
            update_job=agent.UpdateJobStatus(
                job_id=job.id, status=agent.JobStatus.JS_FAILED, error="e"
            )
        )
    )
    await livekit_standin.wait_for(lambda: record.updates)
    assert (record.status_name, record.error) == ("JS_FAILED", "e")


async def test_ending_the_room_terminates_the_job(
    lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin, worker: RawWorker
) -> None:
    await lkapi.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="hivecall", room="r")
    )
    job = (await worker.receive()).availability.job
    await worker.answer(job.id, available=True, participant_identity="agent-x")
    assert (await worker.receive()).WhichOneof("message") == "assignment"
    await lkapi.room.delete_room(api.DeleteRoomRequest(room="r"))
    termination = (await worker.receive()).termination
    assert termination.job_id == job.id
    assert livekit_standin.jobs[0].terminations == 1


async def test_a_refusal_goes_to_the_next_worker(
    lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin, worker: RawWorker
) -> None:
    async with RawWorker(livekit_standin) as second:
        await lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name="hivecall", room="r")
        )
        # Both workers are idle: the stand-in asks one, and the other after a refusal.
        asked, job_id, other = await first_asked(worker, second)
        await asked.answer(job_id, available=False)
        request = (await other.receive()).availability
        assert request.job.id == job_id
        await other.answer(job_id, available=True, participant_identity="agent-y")
        assert (await other.receive()).assignment.job.id == job_id
        (record,) = livekit_standin.jobs
        assert record.tried == [asked.worker_id, other.worker_id]
        assert record.worker_id == other.worker_id
        assert [r.available for r in record.refusals] == [False]


async def first_asked(a: RawWorker, b: RawWorker) -> tuple[RawWorker, str, RawWorker]:
    """The worker that got the AvailabilityRequest, the job id, and the other worker."""
    tasks = {asyncio.create_task(w.receive()): w for w in (a, b)}
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    (task,) = done
    asked = tasks[task]
    return asked, task.result().availability.job.id, b if asked is a else a


async def test_a_job_no_worker_takes_is_dropped(
    lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin
) -> None:
    """As on livekit-server v1.13.5: a dispatch made while no worker has its agent name never
    reaches a worker that registers later; a new dispatch does."""
    early = await lkapi.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="late", room="r", metadata="early")
    )
    (record,) = livekit_standin.jobs
    await livekit_standin.wait_for(lambda: record.dropped)
    assert (record.error, record.status) == ("no worker available", agent.JobStatus.JS_FAILED)
    async with (
        RawWorker(livekit_standin, agent_name="other"),
        RawWorker(livekit_standin, agent_name="late") as late,
    ):
        await lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name="late", room="r", metadata="again")
        )
        # The first offer the late worker gets is the new dispatch's job, not the dropped one.
        request = (await late.receive()).availability
        assert request.job.metadata == "again"
        await late.answer(request.job.id, terminate=True)
        fresh = livekit_standin.jobs[1]
        await livekit_standin.wait_for(lambda: fresh.status == agent.JobStatus.JS_SUCCESS)
        assert record.tried == [] and record.dropped
        listed = await lkapi.agent_dispatch.list_dispatch("r")
        assert [list(d.state.jobs) for d in listed if d.id == early.id] == [[]]


async def test_agents_can_join_on_assignment(
    lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin, worker: RawWorker
) -> None:
    """With `agents_join_on_assignment` the assigned agent shows up as a participant, as if it
    had connected (for hub tests that list participants)."""
    livekit_standin.agents_join_on_assignment = True
    await lkapi.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="hivecall", room="r")
    )
    job = (await worker.receive()).availability.job
    await worker.answer(
        job.id, available=True, participant_identity="agent-a1", participant_name="Ada"
    )
    await worker.receive()
    (participant,) = (
        await lkapi.room.list_participants(api.ListParticipantsRequest(room="r"))
    ).participants
    assert (participant.identity, participant.name, participant.kind) == (
        "agent-a1",
        "Ada",
        models.ParticipantInfo.Kind.AGENT,
    )
