"""What the hub adds to starting a cloud call (room + dispatch + join token), over LiveKit's own
time.

A real hub (subprocess) whose LiveKit URL points at a real livekit-server (scripts/
livekit-server.sh, started and stopped here by tests/livekit_real/server.py), or, only when that
server cannot be had (no Go to build it), at the LiveKit stand-in from tests/livekit_standin (a
thread of this process). HIVECALL_BENCH_LIVEKIT=real refuses the fallback, =standin forces it.
Two kinds of request, alternating in rounds (ABBA) so machine noise falls on both alike:

- direct: what any app must do at least, with the same `livekit-api` client: CreateRoom and
  CreateDispatch with the hub's own fields, and a join token signed locally — LiveKit's own
  time as a client sees it;
- hub: `POST /api/calls {mode: "cloud"}` — auth, validation, the agent, the call record, the
  room, the dispatch (with its row), the caller's token and the answer.

Each setup is undone untimed right after it (the room deleted; the hub's call ended, which
deletes its room), so LiveKit holds at most one room and the hub's sweeper has no calls to fail.
No worker is registered: on the real server the dispatch stays unassigned, which set-up time
does not depend on. Added = hub percentile minus direct percentile. Requests are sequential.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
from livekit import api
from livekit.protocol import agent_dispatch, room

from harness import BenchError, Hub, Options, Result, Samples, hub, machine, table
from hivecall.calls.cloud.wire import KIND, JobMeta, room_name

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.livekit_real import server as livekit_server
from tests.livekit_standin.server import LiveKitStandin

NAME = "cloud"
GOAL_P50_MS = 10.0
AGENT_NAME = "hivecall"  # the hub's default livekit_agent_name
# The hub's defaults for a cloud call's room (cloud_empty_timeout, cloud_max_participants).
EMPTY_TIMEOUT, DEPARTURE_TIMEOUT, MAX_PARTICIPANTS = 300, 20, 8
CHOICE_ENV = "HIVECALL_BENCH_LIVEKIT"  # "real", "standin", or unset: real if it can be had


@dataclass
class Target:
    """The LiveKit server the hub and the direct client talk to."""

    url: str
    api_key: str
    api_secret: str
    label: str  # for the title: which server
    note: str  # why the stand-in, or ""
    pid: int | None = None  # the real server's process (its CPU is measured)
    standin: LiveKitStandin | None = None

    def create_seconds(self) -> float:
        """The stand-in's own handling time of the recorded CreateRoom/CreateDispatch calls."""
        if self.standin is None:
            return 0.0
        with self.standin.lock:
            return sum(
                r.seconds
                for r in self.standin.requests
                if r.method in ("CreateRoom", "CreateDispatch")
            )


@contextlib.contextmanager
def livekit_target() -> Iterator[Target]:
    choice = os.environ.get(CHOICE_ENV, "")
    if choice not in ("", "real", "standin"):
        raise BenchError(f"{CHOICE_ENV} must be real, standin or unset, not {choice!r}")
    note = f"{CHOICE_ENV}=standin"
    if choice != "standin":
        key, secret = f"APIbench{secrets.token_hex(4)}", secrets.token_urlsafe(32)
        with contextlib.ExitStack() as stack:
            try:
                server = stack.enter_context(livekit_server.running(api_key=key, api_secret=secret))
            except livekit_server.StartFailed as e:
                raise BenchError(str(e)) from e
            except livekit_server.Unavailable as e:
                if choice == "real":
                    raise BenchError(f"no real livekit-server ({CHOICE_ENV}=real): {e}") from e
                note = str(e)
            else:
                label = f"livekit-server {livekit_server.version(server.binary)} (real)"
                yield Target(server.url, key, secret, label, "", pid=server.pid)
                return
    key, secret = "APIbenchHivecall", "lk-bench-secret-hivecall-0123456789abcdefgh"
    with LiveKitStandin(api_key=key, api_secret=secret) as standin:
        yield Target(standin.url, key, secret, "the LiveKit stand-in", note, standin=standin)


def cpu_seconds(pid: int) -> float:
    """CPU time of all a process's threads so far, to the nanosecond (/proc/PID/task/*/
    schedstat; /proc/PID/stat counts in 10 ms ticks, too coarse for one request)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    return total / 1e9


# One setup: do it (timed) and return how to undo it (untimed).
Setup = Callable[[], Awaitable[Callable[[], Awaitable[None]]]]


@dataclass
class Kind:
    """One kind of setup, its latencies, and the CPU each measured process spent during them."""

    setup: Setup
    samples: Samples = field(default_factory=Samples)
    cpu: dict[str, float] = field(default_factory=dict)

    def cpu_ms(self, process: str) -> float:
        return self.cpu[process] / len(self.samples.latencies) * 1000


async def alternating_undone(
    count: int, rounds: int, kinds: list[Kind], processes: dict[str, int]
) -> None:
    """harness.alternating's ABBA rounds, with each setup undone outside its timing, and the
    CPU of `processes` (name -> pid) taken around each setup."""
    per_round = count // rounds
    for i in range(rounds):
        for kind in kinds if i % 2 == 0 else kinds[::-1]:
            for _ in range(per_round):
                cpu0 = {name: cpu_seconds(pid) for name, pid in processes.items()}
                t0 = time.perf_counter()
                undo = await kind.setup()
                kind.samples.latencies.append(time.perf_counter() - t0)
                for name, pid in processes.items():
                    kind.cpu[name] = kind.cpu.get(name, 0.0) + cpu_seconds(pid) - cpu0[name]
                await undo()


async def measure(
    running: Hub, lk: api.LiveKitAPI, target: Target, count: int, rounds: int
) -> tuple[Kind, Kind]:
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth, timeout=30) as c:

        async def delete(name: str) -> None:
            await lk.room.delete_room(room.DeleteRoomRequest(room=name))

        async def setup_direct() -> Callable[[], Awaitable[None]]:
            call_id = uuid.uuid4().hex  # unique: CreateRoom on an existing room returns it
            name = room_name(call_id)
            await lk.room.create_room(
                room.CreateRoomRequest(
                    name=name,
                    empty_timeout=EMPTY_TIMEOUT,
                    departure_timeout=DEPARTURE_TIMEOUT,
                    max_participants=MAX_PARTICIPANTS,
                    metadata=json.dumps({"call_id": call_id}),
                )
            )
            await lk.agent_dispatch.create_dispatch(
                agent_dispatch.CreateAgentDispatchRequest(
                    agent_name=AGENT_NAME,
                    room=name,
                    metadata=JobMeta(call_id=call_id, agent_id="echo", agent_name="echo").encode(),
                )
            )
            token = (
                api.AccessToken(target.api_key, target.api_secret)
                .with_identity("human-bench")
                .with_name("bench")
                .with_attributes({KIND: "human"})
                .with_grants(
                    api.VideoGrants(
                        room_join=True,
                        room=name,
                        can_publish=True,
                        can_subscribe=True,
                        can_publish_data=True,
                        can_publish_sources=["microphone"],
                    )
                )
                .with_ttl(timedelta(minutes=15))
                .to_jwt()
            )
            if not token:
                raise BenchError("no token")
            return lambda: delete(name)

        async def start_call() -> Callable[[], Awaitable[None]]:
            r = await c.post("/api/calls", json={"agent_id": "echo", "mode": "cloud"})
            if r.status_code != 201 or not r.json()["call"]["livekit"]["token"]:
                raise BenchError(f"POST /api/calls answered {r.status_code}: {r.text[:300]}")
            call_id = r.json()["call"]["id"]

            async def end() -> None:
                done = await c.post(f"/api/calls/{call_id}/end")
                if done.status_code != 200:
                    raise BenchError(f"ending call {call_id}: {done.status_code} {done.text[:300]}")

            return end

        direct, via_hub = Kind(setup_direct), Kind(start_call)
        processes = {"hub": running.process.pid}
        if target.pid is not None:
            processes["livekit"] = target.pid
        await alternating_undone(count, rounds, [direct, via_hub], processes)
    return direct, via_hub


async def check_a_call(running: Hub, lk: api.LiveKitAPI) -> None:
    """One hub call, checked on the LiveKit server itself: its room exists with the hub's
    dispatch of the agent, and ending the call deletes the room."""
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth, timeout=30) as c:
        r = await c.post("/api/calls", json={"agent_id": "echo", "mode": "cloud"})
        if r.status_code != 201:
            raise BenchError(f"POST /api/calls answered {r.status_code}: {r.text[:300]}")
        call_id, name = r.json()["call"]["id"], r.json()["call"]["livekit"]["room"]
        rooms = (await lk.room.list_rooms(room.ListRoomsRequest(names=[name]))).rooms
        # livekit-server also lists its own dispatch for unnamed (automatic) workers.
        found = [
            (JobMeta.parse(d.metadata) or JobMeta("", "", "")).call_id
            for d in await lk.agent_dispatch.list_dispatch(name)
            if d.agent_name == AGENT_NAME
        ]
        if [x.name for x in rooms] != [name] or found != [call_id]:
            raise BenchError(f"LiveKit has rooms {rooms} and dispatches {found} for call {call_id}")
        done = await c.post(f"/api/calls/{call_id}/end")
        left = (await lk.room.list_rooms(room.ListRoomsRequest(names=[name]))).rooms
        if done.status_code != 200 or left:
            raise BenchError(f"ending call {call_id}: {done.status_code}; rooms left {left}")


async def run(options: Options) -> Result:
    count, warmup, rounds = (200, 40, 4) if options.quick else (2000, 200, 10)
    before = machine()
    with livekit_target() as target:
        env = {
            "HIVECALL_CLOUD_CALLS": "1",
            "LIVEKIT_URL": target.url,
            "LIVEKIT_API_KEY": target.api_key,
            "LIVEKIT_API_SECRET": target.api_secret,
        }
        lk = api.LiveKitAPI(target.url, target.api_key, target.api_secret, failover=False)
        try:
            async with hub(options, env=env) as running:
                await check_a_call(running, lk)
                await measure(running, lk, target, warmup, 2)
                if target.standin is not None:
                    target.standin.reset_records()
                direct, via_hub = await measure(running, lk, target, count, rounds)
                rooms_left = len((await lk.room.list_rooms(room.ListRoomsRequest())).rooms)
                backend = running.backend
        finally:
            await lk.aclose()
        handled = target.create_seconds() / (2 * count) * 1000
    if rooms_left:
        raise BenchError(f"{rooms_left} rooms left on LiveKit after every setup was undone")
    d, h = direct.samples, via_hub.samples
    added = {p: h.pct(p) - d.pct(p) for p in (50, 95, 99)}
    met = added[50] <= GOAL_P50_MS
    server = "livekit-server" if target.standin is None else "stand-in"
    # CPU per setup (mean): the hub's process (every thread), and the real server's.
    cpu_header = ["hub CPU ms"] + (["LiveKit CPU ms"] if target.pid is not None else [])
    processes = ["hub", "livekit"][: len(cpu_header)]
    rows = [
        [
            f"direct: CreateRoom + CreateDispatch + token (client → {server})",
            len(d.latencies),
            *(d.pct(p) for p in (50, 95, 99)),
            *(direct.cpu_ms(x) for x in processes),
        ],
        [
            f"POST /api/calls cloud (client → hub → {server})",
            len(h.latencies),
            *(h.pct(p) for p in (50, 95, 99)),
            *(via_hub.cpu_ms(x) for x in processes),
        ],
        [
            "added by the hub",
            "",
            *added.values(),
            *(via_hub.cpu_ms(x) - direct.cpu_ms(x) for x in processes),
        ],
    ]
    mode = "quick" if options.quick else "full"
    against = target.label + (f" — fallback: {target.note}" if target.note else "")
    details = [
        f"{mode} run; LiveKit: {against}; store: {backend}; Python "
        f"{platform.python_version()}; sequential requests in {rounds} alternating rounds "
        f"after {warmup} warm-up requests of each kind, each setup undone untimed"
    ]
    if target.standin is not None:
        details.append(
            f"the stand-in's CreateRoom + CreateDispatch handlers took {handled:.2f} ms per "
            "setup (mean, both kinds)"
        )
    return Result(
        title=f"{NAME}: what the hub adds to starting a cloud call, against {target.label}",
        lines=[
            *details,
            "",
            *table(["", "setups", "p50 ms", "p95 ms", "p99 ms", *cpu_header], rows),
            "",
            f"goal: added p50 <= {GOAL_P50_MS:g} ms — {'met' if met else 'MISSED'}",
            f"machine before: {before}; after: {machine()}",
        ],
        goal_met=met,
    )
