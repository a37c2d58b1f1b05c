"""The whole cloud-call stack on the real livekit-server, for tests and benchmarks to share.

    from tests.livekit_real.stack import (  # noqa: F401 (fixtures)
        CloudStack, Person, cloud_stack, cloud_stack_module,
    )

    async def test_something(cloud_stack: CloudStack) -> None:
        started = await cloud_stack.start_call("oscar")          # POST /api/calls, mode cloud
        person = await Person.join(started.livekit)             # a livekit.rtc participant
        await person.wait_for_agent(started.agent_identity)      # the worker's job joined
        spoken = await person.say("Oscar, is the build green?") # Piper speech, then silence
        heard = await person.track_of(started.agent_identity).wait_audible(spoken.ended)
        await cloud_stack.end_call(started.call_id)

`cloud_stack` is the stack of the test module (`cloud_stack_module`: one per module, as starting
the worker takes seconds; import both fixtures), made ready for one test (the stand-in's script,
hearing and speaking reset; its records kept). It is:

- the real livekit-server of the session (`server`, from conftest.py's `livekit_server`) and
  the veth its libwebrtc clients need (`client_network`);
- the OpenAI Realtime stand-in (`realtime`, `RealtimeStandin(api_key=FAKE_OPENAI_KEY)`): set its
  `script` (or its hearing/speaking attributes) before starting the call it should affect; each
  agent job opens one websocket to it (`realtime.sockets`, `CloudStack.socket_of(agent)`);
- a hub served over HTTP on 127.0.0.1 (`hub`, a tests/live.py LiveHub; `hub.url`,
  `hub.login_url`, `hub.headers`) with cloud calls on, LIVEKIT_* pointing at the server and
  OPENAI_BASE_URL at the stand-in; besides the seeded `echo` it has the command agents of
  `INSTANT` (`oscar`, `victor`, `robert`), whose runtimes answer at once with `ANSWERS[name]`;
- the real `hivecall worker` CLI in a subprocess (`worker`, a WorkerProcess; its log is
  `worker.log()`), started and waited for until LiveKit registered it (a dispatch made while no
  worker is registered is never delivered by the real server), with a health endpoint whose
  `/worker` says how many jobs run and the load it reports (`active_jobs()`, `worker_info()`).

Helpers: `start_call(agent)` → StartedCall (the call id, the caller's LiveKit URL, token and
identity, the agent's participant identity), `add_agent(call_id, agent)`, `end_call(call_id)`,
`call(call_id)` (the call record: state, lines, turns), `turns(agent)` (that agent's turns,
newest first), `agent_id(name)`, `wait_for(...)`.

Audio: `Person` publishes a microphone track (silence when not speaking, continuously, like a
browser) and records every agent's audio track (`Recording`). `Person.say(text)` sends Piper
speech and returns when its last voiced sample left the source (`Spoken.ended`, monotonic
clock); `Recording.wait_audible(after)` gives the monotonic time of the first audible frame
received after a moment; `answer_latency()` is the figure benchmarks report: end of speech to
first audible sample of the answer. `await Recording.transcript(since)` is what Whisper hears in
it. With the stand-in's `hears`, `speaks` and `relay_script()`, what a Person says reaches the
agent's runtime and its answer comes back as speech.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import shlex
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

import httpx
import numpy as np
import pytest
from livekit import rtc

from hivecall.speech import workers
from hivecall.speech.models import shared
from hivecall.speech.stt import RATE as STT_RATE
from hivecall.speech.stt import pcm16_to_float
from hivecall.speech.tts import RATE as TTS_RATE
from hivecall.speech.tts import resample
from tests.keys import FAKE_OPENAI_KEY
from tests.live import LiveHub, serve_hub
from tests.livekit_real.server import RealLiveKit
from tests.livekit_standin.worker_proc import WorkerProcess
from tests.local.speech import STEADY
from tests.standins.realtime import RealtimeSession, RealtimeStandin
from tests.standins.threaded import free_port

T = TypeVar("T")

RATE = TTS_RATE  # 48 kHz: Piper's output, what participants publish and record (Opus's)
FRAME = RATE // 100  # 10 ms frames
AUDIBLE = 300  # |sample| above this is sound (Piper's speech peaks in the thousands)
WORKER_START_TIMEOUT = 60.0  # importing livekit-agents and registering, on a loaded machine
WAIT_FOR_HUMAN = 20.0  # the worker's worker_wait_for_human (its default is a minute)

# Command agents whose runtimes answer at once with a known text (any message).
ANSWERS = {
    "oscar": "Oscar here. The build is green and all forty tests pass.",
    "victor": "Victor here. The deploy finished and the site is up.",
    # Piper says "Victor" so that Whisper hears "Baker": a name to call out loud is robert's.
    "robert": "Robert here. The nightly backup finished without errors.",
}
INSTANT = tuple(ANSWERS)

# -- waiting ---------------------------------------------------------------------------------


@overload
async def wait_for(
    what: str, probe: Callable[[], Awaitable[T | None]], timeout: float = ...
) -> T: ...
@overload
async def wait_for(what: str, probe: Callable[[], T | None], timeout: float = ...) -> T: ...
async def wait_for(what: str, probe: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll `probe` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


# -- the stack -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartedCall:
    """What `POST /api/calls` (mode cloud) answered."""

    call_id: str
    agent: str  # the agent's name
    agent_id: str
    livekit: dict[str, str]  # url, room, token, identity, expires_at (the caller's join)
    answer: dict[str, Any]  # the whole response body

    @property
    def room(self) -> str:
        return self.livekit["room"]

    @property
    def agent_identity(self) -> str:
        return agent_identity_of(self.agent_id)


def agent_identity_of(agent_id: str) -> str:
    from hivecall.cloud.room import agent_identity

    return agent_identity(agent_id)


@dataclass
class CloudStack:
    server: RealLiveKit
    hub: LiveHub
    realtime: RealtimeStandin
    worker: WorkerProcess
    health_url: str  # the worker's health endpoint (GET / → OK, GET /worker → its jobs)
    workspace: Path
    agents: dict[str, str] = field(default_factory=dict)  # name -> id, as far as looked up

    @property
    def url(self) -> str:
        return self.hub.url

    @property
    def headers(self) -> dict[str, str]:
        return self.hub.headers

    @contextlib.asynccontextmanager
    async def owner(self) -> AsyncIterator[httpx.AsyncClient]:
        """The owner's client for the hub (one per use: the stack outlives any test's loop)."""
        async with httpx.AsyncClient(
            base_url=self.hub.url, headers=self.hub.headers, timeout=30
        ) as client:
            yield client

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async with self.owner() as client:
            return await client.request(method, path, **kw)

    async def agent_id(self, name: str) -> str:
        if name not in self.agents:
            r = await self.request("GET", f"/api/agents/{name}")
            assert r.status_code == 200, r.text
            self.agents[name] = r.json()["agent"]["id"]
        return self.agents[name]

    async def start_call(self, agent: str = "echo") -> StartedCall:
        """Start a cloud call with `agent`; the hub makes the room and dispatches the worker."""
        agent_id = await self.agent_id(agent)
        r = await self.request("POST", "/api/calls", json={"agent_id": agent_id, "mode": "cloud"})
        assert r.status_code == 201, r.text
        body = r.json()
        call = body["call"]
        return StartedCall(call["id"], agent, agent_id, call["livekit"], body)

    async def add_agent(self, call_id: str, agent: str) -> dict[str, Any]:
        """Dispatch another agent into the call's room (`POST /api/calls/{id}/agents`)."""
        r = await self.request(
            "POST", f"/api/calls/{call_id}/agents", json={"agent_id": await self.agent_id(agent)}
        )
        assert r.status_code == 201, r.text
        added: dict[str, Any] = r.json()
        return added

    async def end_call(self, call_id: str) -> dict[str, Any]:
        """The host ends the call (`POST /api/calls/{id}/end`); the hub deletes the room."""
        r = await self.request("POST", f"/api/calls/{call_id}/end")
        assert r.status_code == 200, r.text
        ended: dict[str, Any] = r.json()
        return ended

    async def call(self, call_id: str) -> dict[str, Any]:
        """The call record (`GET /api/calls/{id}`): `call` (state…), `lines`, `turns`."""
        r = await self.request("GET", f"/api/calls/{call_id}")
        assert r.status_code == 200, r.text
        shown: dict[str, Any] = r.json()
        return shown

    async def participants(self, call_id: str) -> list[dict[str, Any]]:
        r = await self.request("GET", f"/api/calls/{call_id}/participants")
        assert r.status_code == 200, r.text
        people: list[dict[str, Any]] = r.json()["participants"]
        return people

    async def turns(self, agent: str, *, call_id: str | None = None) -> list[dict[str, Any]]:
        """The agent's turns on the hub (`GET /api/turns?agent=…`), newest first."""
        params = {"agent": agent, "limit": "100"}
        if call_id:
            params["call_id"] = call_id
        r = await self.request("GET", "/api/turns", params=params)
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["turns"]
        return found

    def worker_info(self) -> dict[str, Any]:
        """The worker's own account of itself (its health endpoint's `/worker`): agent_name,
        active_jobs, worker_load (what it tells LiveKit), …"""
        answer = httpx.get(f"{self.health_url}/worker", timeout=5)
        answer.raise_for_status()
        info: dict[str, Any] = answer.json()
        return info

    def active_jobs(self) -> int:
        """How many jobs the worker runs now."""
        return int(self.worker_info().get("active_jobs", 0))

    async def socket_of(self, agent: str, *, after: int = 0) -> RealtimeSession:
        """The Realtime websocket of `agent`'s job (opened after the first `after` sockets;
        the job names its agent in the session's instructions)."""

        def find() -> RealtimeSession | None:
            for socket in self.realtime.sockets[after:]:
                text = str(socket.session.get("instructions") or "")
                if socket.session.get("tools") and f"You are the voice of {agent}," in text:
                    return socket
            return None

        return await wait_for(f"{agent}'s Realtime session", find, timeout=30)


def _instant_command(name: str) -> str:
    """A command template printing the agent's known answer (the message is its argument)."""
    code = f"print({ANSWERS[name]!r})"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} {{message}}"


def _start_worker(
    tmp: Path, server: RealLiveKit, hub: LiveHub, realtime: RealtimeStandin
) -> tuple[WorkerProcess, str]:
    """`hivecall worker` in a subprocess, returned once LiveKit registered it."""
    port = free_port()
    worker = WorkerProcess.hivecall_worker(
        livekit_url=server.ws_url,
        api_key=server.api_key,
        api_secret=server.api_secret,
        openai_base_url=realtime.base_url,
        hub_url=hub.url,
        home=tmp / "worker-home",
        log=tmp / "worker.log",
        health_port=port,
        env={"HIVECALL_WORKER_WAIT_FOR_HUMAN": str(WAIT_FOR_HUMAN)},
    )
    worker.start()
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while not worker.registered:
        if not worker.running or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(
                f"hivecall worker did not register with LiveKit:\n{worker.log()[-4000:]}"
            )
        time.sleep(0.1)
    return worker, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def running_stack(server: RealLiveKit, tmp: Path) -> Iterator[CloudStack]:
    """The stack on `server` for the block (the hub's home, logs and workspace under `tmp`).
    LiveKit's clients need a network interface: see server.py's `client_interface`."""
    workspace = tmp / "workspace"
    workspace.mkdir()
    environ = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    hubs = contextlib.contextmanager(serve_hub)
    with (
        RealtimeStandin(api_key=FAKE_OPENAI_KEY) as realtime,
        hubs(
            tmp,
            environ=environ,
            workspace=workspace,
            openai_base_url=realtime.base_url,
            cloud_calls=True,
            livekit_url=server.url,
            livekit_api_key=server.api_key,
            livekit_api_secret=server.api_secret,
            turn_timeout=30.0,
        ) as hub,
    ):
        agents: dict[str, str] = {}
        for name in INSTANT:
            r = httpx.post(
                f"{hub.url}/api/agents",
                headers=hub.headers,
                json={"name": name, "command": _instant_command(name), "workspace": str(workspace)},
                timeout=30,
            )
            assert r.status_code == 201, r.text
            agents[name] = r.json()["agent"]["id"]
        worker, health = _start_worker(tmp, server, hub, realtime)
        try:
            yield CloudStack(server, hub, realtime, worker, health, workspace, agents)
        finally:
            worker.drain()
            if os.environ.get("HIVECALL_TEST_SHOW_WORKER_LOG") == "1":
                print(worker.log()[-20000:])


@pytest.fixture(scope="module")
def cloud_stack_module(
    livekit_server: RealLiveKit, client_network: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CloudStack]:
    with running_stack(livekit_server, tmp_path_factory.mktemp("cloud-stack")) as stack:
        yield stack


@pytest.fixture
def cloud_stack(cloud_stack_module: CloudStack) -> CloudStack:
    """The module's stack, for one test: the Realtime stand-in's script back to its default
    (its records are kept: read what came after the test began), and uvicorn's log at the
    level uvicorn sets when a server starts (the stand-in outlives the test's start, where the
    leak scanner lowers every logger to DEBUG: then the stand-in's websocket handshake would
    log the OpenAI key the worker sends it, which is OpenAI's side of the wire)."""
    cloud_stack_module.realtime.clear()
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    return cloud_stack_module


# -- people ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spoken:
    """One utterance a Person sent: when its first and last voiced samples left the source
    (monotonic clock, estimated from the source's queue), and the text."""

    text: str
    started: float
    ended: float


def speech_pcm(text: str) -> np.ndarray:
    """`text` spoken by the hub's Piper voice, 48 kHz mono int16, trailing quiet trimmed."""
    samples = np.frombuffer(shared().synthesizer().pcm(text, STEADY), dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples) > AUDIBLE)
    return samples[: int(loud[-1]) + 1] if len(loud) else samples


@dataclass
class Recording:
    """An agent's audio track as this person receives it: 10 ms frames with arrival times."""

    identity: str
    times: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def audible_after(self, after: float) -> float | None:
        """The arrival time of the first frame after `after` with sound in it, or None."""
        for at, frame in zip(self.times, self.frames, strict=False):
            if at > after and len(frame) and int(np.abs(frame).max()) > AUDIBLE:
                return at
        return None

    def audible_seconds(self, after: float = 0.0) -> float:
        """How much sound (in seconds of frames with sound in them) arrived after `after`."""
        loud = [
            len(f) / RATE
            for at, f in zip(self.times, self.frames, strict=False)
            if at > after and len(f) and int(np.abs(f).max()) > AUDIBLE
        ]
        return sum(loud)

    async def wait_audible(self, after: float, timeout: float = 20.0) -> float:
        return await wait_for(
            f"sound from {self.identity}", lambda: self.audible_after(after), timeout
        )

    async def wait_quiet(self, seconds: float = 1.5, timeout: float = 30.0) -> None:
        """Until no sound arrived for `seconds` (the agent finished speaking)."""

        def quiet() -> bool:
            last = max(
                (
                    at
                    for at, f in zip(self.times, self.frames, strict=False)
                    if len(f) and int(np.abs(f).max()) > AUDIBLE
                ),
                default=0.0,
            )
            return time.monotonic() - last > seconds

        await wait_for(f"{self.identity} to fall quiet", quiet, timeout)

    def pcm(self, since: float = 0.0, until: float | None = None) -> np.ndarray:
        """The samples that arrived in [since, until), 48 kHz int16."""
        chosen = [
            f
            for at, f in zip(self.times, self.frames, strict=False)
            if at >= since and (until is None or at < until)
        ]
        return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int16)

    async def transcript(self, since: float = 0.0, until: float | None = None) -> str:
        """What Whisper hears in what arrived in [since, until) (on the speech thread the
        Realtime stand-in's hearing shares)."""
        samples = self.pcm(since, until)
        if not len(samples):
            return ""
        pad = bytes(int(0.3 * STT_RATE) * 2)
        pcm16k = pad + resample(samples, RATE, STT_RATE) + pad
        return await workers.recognise(
            lambda: shared().transcriber().transcribe(pcm16_to_float(pcm16k))
        )


class Person:
    """A person in a call's room (a livekit.rtc participant with the hub's join token): a
    microphone that sends silence until `say()`, and a Recording of every agent's audio."""

    def __init__(self, room: rtc.Room) -> None:
        self.room = room
        self.tracks: dict[str, Recording] = {}
        self.disconnected: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=100)
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[Spoken], str]] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        room.on("track_subscribed", self._on_track)
        room.on("disconnected", self._on_disconnected)

    @classmethod
    async def join(cls, livekit: dict[str, str], *, publish: bool = True) -> Person:
        """Join with a join answer's `livekit` ({url, token, …}) and start the microphone."""
        room = rtc.Room()
        person = cls(room)
        await room.connect(livekit["url"], livekit["token"], rtc.RoomOptions(connect_timeout=15))
        for p in room.remote_participants.values():
            for pub in p.track_publications.values():
                if pub.track is not None and pub.kind == rtc.TrackKind.KIND_AUDIO:
                    person._record(pub.track, p)
        if publish:
            track = rtc.LocalAudioTrack.create_audio_track("microphone", person.source)
            await room.local_participant.publish_track(
                track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            )
            person._pump = asyncio.create_task(person._microphone(), name="person-microphone")
        return person

    @property
    def identity(self) -> str:
        return self.room.local_participant.identity

    def _on_track(
        self, track: rtc.Track, _pub: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self._record(track, who)

    def _on_disconnected(self, reason: int) -> None:
        if not self.disconnected.done():
            self.disconnected.set_result(reason)

    def _record(self, track: rtc.Track, who: rtc.RemoteParticipant) -> None:
        if who.identity in self.tracks:
            return
        recording = Recording(who.identity)
        recording.task = asyncio.create_task(self._listen(track, recording))
        self.tracks[who.identity] = recording

    @staticmethod
    async def _listen(track: rtc.Track, recording: Recording) -> None:
        stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
        try:
            async for event in stream:
                recording.times.append(time.monotonic())
                recording.frames.append(np.frombuffer(event.frame.data, dtype=np.int16).copy())
        finally:
            await stream.aclose()

    async def _microphone(self) -> None:
        """10 ms frames for as long as the person is in the room: speech when there is some
        to say, silence otherwise (a browser's microphone never stops sending)."""
        quiet = np.zeros(FRAME, dtype=np.int16)
        while True:
            try:
                samples, done, text = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                await self.source.capture_frame(rtc.AudioFrame(quiet.tobytes(), RATE, 1, FRAME))
                continue
            started = 0.0
            for start in range(0, len(samples), FRAME):
                chunk = samples[start : start + FRAME]
                if len(chunk) < FRAME:
                    chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.int16)])
                await self.source.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, FRAME))
                if not started:
                    started = time.monotonic() + self.source.queued_duration
            ended = time.monotonic() + self.source.queued_duration
            if not done.done():
                done.set_result(Spoken(text, started, ended))

    async def say(self, text: str) -> Spoken:
        """Speak `text` (Piper); returns once its last voiced sample was sent."""
        samples = await workers.synthesise(lambda: speech_pcm(text))
        done: asyncio.Future[Spoken] = asyncio.get_running_loop().create_future()
        await self._queue.put((samples, done, text))
        spoken = await done
        # Until it has left the source's queue: the time is when, not before.
        await asyncio.sleep(max(0.0, spoken.ended - time.monotonic()))
        return spoken

    async def wait_for_agent(self, identity: str, timeout: float = 30.0) -> rtc.RemoteParticipant:
        """Until the participant `identity` is in the room; returns it."""
        return await wait_for(
            f"participant {identity}", lambda: self.room.remote_participants.get(identity), timeout
        )

    async def track_of(self, identity: str, timeout: float = 30.0) -> Recording:
        """The Recording of `identity`'s audio track, once this person is subscribed to it."""
        return await wait_for(
            f"{identity}'s audio track", lambda: self.tracks.get(identity), timeout
        )

    async def leave(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        with contextlib.suppress(Exception):
            await self.room.disconnect()
        for recording in self.tracks.values():
            if recording.task is not None:
                recording.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await recording.task
        with contextlib.suppress(Exception):
            await self.source.aclose()


@contextlib.asynccontextmanager
async def person_in(started: StartedCall) -> AsyncIterator[Person]:
    """A Person in the call's room for the block, who leaves after it."""
    person = await Person.join(started.livekit)
    try:
        yield person
    finally:
        await person.leave()


async def answer_latency(person: Person, agent_identity: str, text: str) -> tuple[float, Spoken]:
    """Say `text` and measure, in seconds, from the end of speech (last voiced sample sent) to
    the first audible sample of `agent_identity`'s answer received. For an instant agent this
    is the whole pipeline: LiveKit → the worker → Realtime (VAD, the tool call) → the hub's
    runtime → Realtime's speech → LiveKit → the person."""
    recording = await person.track_of(agent_identity)
    spoken = await person.say(text)
    heard = await recording.wait_audible(spoken.ended, timeout=30)
    return heard - spoken.ended, spoken
