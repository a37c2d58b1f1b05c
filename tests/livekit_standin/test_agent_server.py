"""The real livekit-agents AgentServer (agent_app.py, in its own process) against the stand-in:
it registers, a CreateDispatch reaches its request handler, its accept() arguments come back to
the stand-in, the library starts the job process and the entrypoint gets the job with the exact
dispatch metadata; its ctx.connect() then reaches /rtc with the agent token and is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit import agents, api
from livekit.protocol import agent

from tests.livekit_standin.rtc import NO_SFU
from tests.livekit_standin.server import LiveKitStandin
from tests.livekit_standin.worker_proc import WorkerProcess
from tests.livekit_standin.workers import AGENT_NAME_ATTRIBUTE

ROOM = "hivecall-call_0f1e2d3c"
METADATA = json.dumps(
    {"hivecall": 1, "call_id": "call_0f1e2d3c", "agent_id": "a1", "agent_name": "Ada Lovelace"}
)
ACCEPTED_ATTRIBUTES = {"hivecall.kind": "agent", "hivecall.agent_id": "a1"}


def events(report: Path, kind: str) -> list[dict[str, Any]]:
    if not report.exists():
        return []
    lines = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    return [e for e in lines if e["event"] == kind]


@pytest.fixture
def worker(livekit_standin: LiveKitStandin, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess.agent_app(
        livekit_standin,
        agent_name="hivecall",
        report=tmp_path / "report.jsonl",
        log=tmp_path / "worker.log",
    )
    with process:
        try:
            yield process
        finally:
            # Shown by pytest when the test fails.
            print(process.log()[-6000:])
    assert process.process is None


@pytest.mark.slow
async def test_the_real_agent_server_runs_the_dispatched_job(
    livekit_standin: LiveKitStandin,
    lkapi: api.LiveKitAPI,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    report = tmp_path / "report.jsonl"
    (registered,) = await livekit_standin.wait_for(
        lambda: livekit_standin.workers, timeout=30, what="the AgentServer to register"
    )
    assert (registered.agent_name, registered.job_type) == ("hivecall", agent.JobType.JT_ROOM)
    assert registered.register.version == agents.__version__
    assert registered.claims.video is not None and registered.claims.video.agent
    # The worker's default permissions, sent at registration and used for the agent token.
    assert registered.permissions.can_publish and registered.permissions.can_subscribe

    await lkapi.room.create_room(api.CreateRoomRequest(name=ROOM, max_participants=8))
    dispatch = await lkapi.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="hivecall", room=ROOM, metadata=METADATA)
    )

    # on_request's accept(identity=, name=, attributes=) reached the stand-in...
    job = await livekit_standin.wait_for(
        lambda: (j := livekit_standin.job_for(dispatch.id)) and j.assignment and j,
        what="the job assignment",
    )
    assert job.worker_id == registered.id
    assert job.availability is not None
    assert job.availability.participant_identity == "agent-a1"
    assert job.availability.participant_name == "Ada Lovelace"
    assert ACCEPTED_ATTRIBUTES.items() <= dict(job.availability.participant_attributes).items()
    # ...and went into the agent token the stand-in minted.
    claims = job.token_claims
    assert claims is not None and claims.video is not None
    assert (claims.identity, claims.name, claims.kind) == ("agent-a1", "Ada Lovelace", "agent")
    assert (claims.video.room_join, claims.video.room, claims.video.agent) == (True, ROOM, True)
    assert claims.attributes is not None
    assert claims.attributes[AGENT_NAME_ATTRIBUTE] == "hivecall"

    # The entrypoint ran, in a job process of its own, with the exact job and metadata.
    (seen,) = await livekit_standin.wait_for(
        lambda: events(report, "job"), timeout=20, what="the entrypoint"
    )
    (request,) = events(report, "request")
    assert seen["pid"] != request["pid"]  # the job process, not the worker's
    assert seen["metadata"] == METADATA
    assert (seen["job_id"], seen["dispatch_id"], seen["room"], seen["agent_name"]) == (
        job.id,
        dispatch.id,
        ROOM,
        "hivecall",
    )
    assert (seen["identity"], seen["name"], seen["kind"]) == ("agent-a1", "Ada Lovelace", "agent")
    assert ACCEPTED_ATTRIBUTES.items() <= seen["attributes"].items()

    # ctx.connect() went to the stand-in's /rtc with that token and was refused (no SFU).
    (failed,) = await livekit_standin.wait_for(
        lambda: events(report, "connect_failed"), timeout=20, what="ctx.connect() to fail"
    )
    assert failed["type"] == "ConnectError"
    assert NO_SFU in failed["error"]
    attempt = next(a for a in livekit_standin.rtc_attempts if a.websocket)
    assert (attempt.room, attempt.identity, attempt.name, attempt.kind) == (
        ROOM,
        "agent-a1",
        "Ada Lovelace",
        "agent",
    )
    assert attempt.attributes == claims.attributes
    assert livekit_standin.participants(ROOM) == []

    # The worker reported the job running, then over (the entrypoint shut it down).
    await livekit_standin.wait_for(
        lambda: job.status == agent.JobStatus.JS_SUCCESS, what="the job to end"
    )
    assert job.updates[0].status == agent.JobStatus.JS_RUNNING

    assert worker.stop() == 0
    assert events(report, "closed")
    await livekit_standin.wait_for(lambda: not registered.connected, what="the worker to leave")
