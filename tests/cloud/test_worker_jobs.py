"""The worker's job handling without an SFU: which jobs it takes and as whom, and what it reads
from its room (who is a person, the agents' order, whose audio it hears, when to go)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import cast

import pytest
from livekit import rtc
from livekit.agents import JobRequest
from livekit.agents.job import JobAcceptArguments
from livekit.protocol import agent as agent_proto
from livekit.protocol import models

from hivecall.calls.cloud.wire import JobMeta
from hivecall.cloud import room as room_module
from hivecall.cloud.room import Room, agent_identity, is_agent, is_human
from hivecall.cloud.running_turns import Session
from hivecall.cloud.worker import on_request
from tests.cloud.worker_fakes import (
    EGRESS,
    SIP,
    STANDARD,
    FakeParticipant,
    FakePublication,
    FakeRoom,
    FakeRoomIO,
    FakeSession,
    agent,
    person,
)

META = {"hivecall": 1, "call_id": "call_0f1e2d3c", "agent_id": "a1b2", "agent_name": "echo"}


# -- which jobs, as whom -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (json.dumps(META), JobMeta("call_0f1e2d3c", "a1b2", "echo")),
        (json.dumps(META | {"agent_name": " "}), JobMeta("call_0f1e2d3c", "a1b2", "a1b2")),
        (json.dumps(META | {"extra": "ignored"}), JobMeta("call_0f1e2d3c", "a1b2", "echo")),
        ("", None),
        ("not json", None),
        ("[1]", None),
        (json.dumps(META | {"hivecall": 2}), None),
        (json.dumps({k: v for k, v in META.items() if k != "hivecall"}), None),
        (json.dumps(META | {"call_id": "../../etc"}), None),
        (json.dumps(META | {"agent_id": 7}), None),
        (json.dumps(META | {"agent_id": "x" * 65}), None),
    ],
)
def test_only_hivecall_metadata_is_a_job(raw: str, expected: JobMeta | None) -> None:
    assert JobMeta.parse(raw) == expected


def test_the_metadata_the_hub_writes_is_the_job_the_worker_reads() -> None:
    meta = JobMeta("call_0f1e2d3c", "a1b2", "echo")
    assert json.loads(meta.encode()) == META
    assert JobMeta.parse(meta.encode()) == meta


def test_agent_identities_are_safe() -> None:
    assert agent_identity("a1b2") == "agent-a1b2"
    assert agent_identity("we.ird:id") == "agent-we_ird_id"


@dataclass
class Answers:
    accepted: list[JobAcceptArguments] = field(default_factory=list)
    rejected: list[bool] = field(default_factory=list)


async def request(metadata: str, room: str = "hivecall-call_0f1e2d3c") -> Answers:
    answers = Answers()

    async def on_accept(args: JobAcceptArguments) -> None:
        answers.accepted.append(args)

    async def on_reject(terminate: bool) -> None:
        answers.rejected.append(terminate)

    job = agent_proto.Job(
        id="AJ_1", room=models.Room(name=room), metadata=metadata, agent_name="hivecall"
    )
    await on_request(JobRequest(job=job, on_reject=on_reject, on_accept=on_accept))
    return answers


async def test_a_hivecall_job_is_accepted_as_its_agent() -> None:
    answers = await request(json.dumps(META))
    assert answers.rejected == []
    (args,) = answers.accepted
    assert (args.identity, args.name) == ("agent-a1b2", "echo")
    assert args.attributes == {"hivecall.kind": "agent", "hivecall.agent_id": "a1b2"}
    assert args.metadata == ""


@pytest.mark.parametrize(
    ("metadata", "room"),
    [
        ("", "hivecall-call_0f1e2d3c"),
        ('{"job": "someone else\'s"}', "hivecall-call_0f1e2d3c"),
        (json.dumps(META), "hivecall-call_other"),  # metadata naming another call's room
    ],
)
async def test_other_jobs_are_rejected(metadata: str, room: str) -> None:
    answers = await request(metadata, room)
    assert answers.accepted == [] and answers.rejected == [True]


# -- the room, with a fake of the rtc.Room surface the worker reads ------------------------------


def room_of(fake: FakeRoom, *, me: str = "echo", known: tuple[str, ...] = ("echo",)) -> Room:
    return Room(cast(rtc.Room, fake), me=me, known=known)


def test_people_are_heard_agents_are_not() -> None:
    def check(p: FakeParticipant) -> tuple[bool, bool]:
        return is_human(cast(rtc.Participant, p)), is_agent(cast(rtc.Participant, p))

    assert check(person("human-1")) == (True, False)
    assert check(FakeParticipant("guest-1")) == (True, False)  # no attributes: a browser
    assert check(FakeParticipant("sip-1", kind=SIP)) == (True, False)
    assert check(agent("claude")) == (False, True)
    # Another worker's agent that joined as a standard participant still says what it is.
    sneaky = FakeParticipant("bot", kind=STANDARD, attributes={"hivecall.kind": "agent"})
    assert check(sneaky) == (False, True)
    assert check(FakeParticipant("egress", kind=EGRESS)) == (False, False)


def test_the_agents_in_join_order() -> None:
    fake = FakeRoom(
        agent("goose", joined=1),  # not the call's (yet): after the call's agents
        agent("echo", joined=5),
        agent("helper", joined=3),
        person("human-1", "Sam"),
    )
    # claude was dispatched second: after echo, before those the hub did not list.
    room = room_of(fake, me="claude", known=("echo", "claude"))
    assert room.agents() == ("echo", "claude", "goose", "helper")
    assert [p.identity for p in room.humans()] == ["human-1"]
    assert room_of(FakeRoom(), me="echo").agents() == ("echo",)


def test_only_peoples_audio_is_subscribed() -> None:
    sam = person("human-1", track_publications={"TR_a": FakePublication()})
    claude = agent("claude", track_publications={"TR_b": FakePublication()})
    fake = FakeRoom(sam, claude)
    room_of(fake).subscribe_humans()
    assert sam.track_publications["TR_a"].subscribed
    assert not claude.track_publications["TR_b"].subscribed
    later = [
        (FakePublication(), person("guest-1")),
        (FakePublication(), agent("goose")),
        (FakePublication(kind=rtc.TrackKind.KIND_VIDEO), person("guest-2")),
    ]
    for pub, who in later:
        fake.emit("track_published", pub, who)
    assert [pub.subscribed for pub, _ in later] == [True, False, False]


async def test_waiting_for_people_and_for_the_room_to_empty() -> None:
    fake = FakeRoom(agent("claude"))
    room = room_of(fake)
    assert not await room.until(lambda: bool(room.humans()), 0.05)  # nobody came
    waiting = asyncio.create_task(room.until(lambda: bool(room.humans()), 5))
    await asyncio.sleep(0.01)
    fake.arrive(person("human-1"))
    assert await waiting
    gone = asyncio.create_task(room.until(lambda: not room.humans(), None))
    await asyncio.sleep(0.01)
    assert not gone.done()
    fake.depart("human-1")
    assert await gone
    # Leaving the room (the owner removed the agent, or the room was closed) ends any wait.
    waiting = asyncio.create_task(room.until(lambda: bool(room.humans()), None))
    await asyncio.sleep(0.01)
    fake.connected = False
    fake.emit("disconnected", None)
    assert not await waiting


def test_the_agent_hears_whoever_speaks_and_someone_else_when_they_leave() -> None:
    sam, kim = person("human-1", "Sam"), person("human-2", "Kim")
    claude = agent("claude")
    fake = FakeRoom(sam, kim, claude)
    room = room_of(fake)
    session = FakeSession(FakeRoomIO(fake))
    session.room_io.set_participant("human-1")
    room.follow_speakers(cast(Session, session))
    assert room.speaker(cast(Session, session)) == "Sam"

    fake.emit("active_speakers_changed", [claude])  # an agent speaking: nothing to hear
    fake.emit("active_speakers_changed", [sam, kim])  # Sam still speaks: stay
    assert session.room_io.links == ["human-1"]
    session.user_state = "speaking"  # Sam's turn is not over: do not cut it
    fake.emit("active_speakers_changed", [kim])
    assert session.room_io.links == ["human-1"]
    session.user_state = "listening"
    fake.emit("active_speakers_changed", [kim])
    assert session.room_io.links == ["human-1", "human-2"]
    assert room.speaker(cast(Session, session)) == "Kim"

    fake.depart("human-1")  # not the one heard: nothing changes
    assert session.room_io.links == ["human-1", "human-2"]
    fake.arrive(sam)
    fake.depart("human-2")  # the one heard left: hear Sam
    assert session.room_io.links == ["human-1", "human-2", "human-1"]


async def test_an_agent_named_later_waits_for_those_named_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(room_module, "START_WITHIN", 0.3)
    claude, goose = agent("claude"), agent("goose")
    fake = FakeRoom(claude, goose, person("human-1"))
    room = room_of(fake, known=("echo", "claude", "goose"))

    async def claude_answers() -> None:
        await asyncio.sleep(0.15)
        claude.attributes["lk.agent.state"] = "thinking"
        await asyncio.sleep(0.3)
        claude.attributes["lk.agent.state"] = "speaking"
        await asyncio.sleep(0.3)
        claude.attributes["lk.agent.state"] = "listening"

    loop = asyncio.get_running_loop()
    started = loop.time()
    answering = asyncio.create_task(claude_answers())
    # goose never starts: it gets START_WITHIN; a name not in the room is not waited for.
    await room.wait_for_answers(["claude", "goose", "nobody"])
    waited = loop.time() - started
    await answering
    assert 0.75 <= waited < 0.75 + 0.3 + 0.4
