"""What the hub adds to starting a cloud call (room + dispatch + join token), over LiveKit's own
time.

A real hub (subprocess) whose LiveKit URL points at the LiveKit stand-in from
tests/livekit_standin (a thread of this process, real HTTP + protobuf on 127.0.0.1). Two kinds
of request, alternating in rounds (ABBA) so machine noise falls on both alike:

- direct: what any app must do at least, with the same `livekit-api` client: CreateRoom,
  CreateDispatch, and a join token signed locally — the stand-in's own time as a client sees it;
- hub: `POST /api/calls {mode: "cloud"}` — auth, validation, the agent, the call record, the
  room, the dispatch (with its row), the caller's token and the answer.

Added = hub percentile minus direct percentile. Requests are sequential, so the stand-in and
the load generator share this process without contending.
"""

from __future__ import annotations

import platform
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from livekit import api
from livekit.protocol import agent_dispatch, room

from harness import BenchError, Hub, Options, Result, Samples, alternating, hub, machine, table
from hivecall.calls.cloud.wire import JobMeta

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.livekit_standin.server import LiveKitStandin

NAME = "cloud"
GOAL_P50_MS = 10.0
KEY, SECRET = "APIbenchHivecall", "lk-bench-secret-hivecall-0123456789abcdefgh"


async def measure(
    running: Hub, standin: LiveKitStandin, count: int, rounds: int
) -> tuple[Samples, Samples]:
    direct, via_hub = Samples(), Samples()
    lk = api.LiveKitAPI(standin.url, KEY, SECRET, failover=False)
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth, timeout=30) as c:

        async def setup_direct() -> None:
            name = f"direct-{uuid.uuid4().hex[:12]}"
            meta = JobMeta(call_id=name, agent_id="x", agent_name="x").encode()
            await lk.room.create_room(
                room.CreateRoomRequest(name=name, empty_timeout=300, max_participants=8)
            )
            await lk.agent_dispatch.create_dispatch(
                agent_dispatch.CreateAgentDispatchRequest(
                    agent_name="hivecall", room=name, metadata=meta
                )
            )
            token = (
                api.AccessToken(KEY, SECRET)
                .with_identity("human-bench")
                .with_grants(api.VideoGrants(room_join=True, room=name))
                .with_ttl(timedelta(minutes=15))
                .to_jwt()
            )
            if not token:
                raise BenchError("no token")

        async def start_call() -> None:
            r = await c.post("/api/calls", json={"agent_id": "echo", "mode": "cloud"})
            if r.status_code != 201 or not r.json()["call"]["livekit"]["token"]:
                raise BenchError(f"POST /api/calls answered {r.status_code}: {r.text[:300]}")

        await alternating(count, rounds, [(direct, setup_direct), (via_hub, start_call)])
    await lk.aclose()
    return direct, via_hub


async def run(options: Options) -> Result:
    count, warmup, rounds = (200, 40, 4) if options.quick else (2000, 200, 10)
    before = machine()
    with LiveKitStandin(api_key=KEY, api_secret=SECRET) as standin:
        env = {
            "HIVECALL_CLOUD_CALLS": "1",
            "LIVEKIT_URL": standin.url,
            "LIVEKIT_API_KEY": KEY,
            "LIVEKIT_API_SECRET": SECRET,
        }
        async with hub(options, env=env) as running:
            await measure(running, standin, warmup, 2)
            standin.reset_records()
            direct, via_hub = await measure(running, standin, count, rounds)
            backend = running.backend
        handled = standin.handling_seconds / (2 * count) * 1000
    added50 = via_hub.pct(50) - direct.pct(50)
    added99 = via_hub.pct(99) - direct.pct(99)
    met = added50 <= GOAL_P50_MS
    rows = [
        [
            "direct: CreateRoom + CreateDispatch + token (client → stand-in)",
            len(direct.latencies),
            direct.pct(50),
            direct.pct(99),
        ],
        [
            "POST /api/calls cloud (client → hub → stand-in)",
            len(via_hub.latencies),
            via_hub.pct(50),
            via_hub.pct(99),
        ],
        ["added by the hub", "", added50, added99],
    ]
    mode = "quick" if options.quick else "full"
    return Result(
        title=f"{NAME}: what the hub adds to starting a cloud call",
        lines=[
            f"{mode} run; store: {backend}; Python {platform.python_version()}; sequential "
            f"requests in {rounds} alternating rounds after {warmup} warm-up requests of each "
            "kind; "
            f"the stand-in's handlers took {handled:.2f} ms per setup (mean, both kinds)",
            "",
            *table(["", "setups", "p50 ms", "p99 ms"], rows),
            "",
            f"goal: added p50 <= {GOAL_P50_MS:g} ms — {'met' if met else 'MISSED'}",
            f"machine before: {before}; after: {machine()}",
        ],
        goal_met=met,
    )
