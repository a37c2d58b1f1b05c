"""Long agent turns: how fast their progress reaches a follower, and how fast cancel stops them.

A command agent works for a minute (full run; a few seconds with --quick) printing one line
every half second, each carrying the time it was printed. A follower on
`GET /api/turns/{id}/events` notes when each line arrives as a `progress` event: the difference
is what the hub adds (read the agent's pipe, rate-limit, fan out over SSE). Then an agent that
sleeps with a child in its process group is cancelled (`POST /api/turns/{id}/cancel`) and the
time until both processes are gone is taken. The agent and the follower are on one machine, so
their clocks agree.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx

from harness import BenchError, Hub, Options, Result, Samples, hub, machine, table

NAME = "long_turns"
GOAL_PROGRESS_P50_MS = 50.0
GOAL_CANCEL_MS = 200.0

TICKER = (
    "import sys, time\n"
    "for i in range(int(sys.argv[1])):\n"
    "    print(f'tick {time.time():.6f}', flush=True)\n"
    "    time.sleep(0.5)\n"
    "print('finished')\n"
)
SLEEPER = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(f'pids {os.getpid()} {child.pid}', flush=True)\n"
    "time.sleep(600)\n"
)


async def add_agent(
    running: Hub, client: httpx.AsyncClient, name: str, source: str, *args: str
) -> None:
    script = running.home / f"bench-{name}.py"
    script.write_text(source)
    command = " ".join([sys.executable, str(script), *args, "{message}"])
    r = await client.post("/api/agents", json={"name": name, "command": command})
    if r.status_code != 201:
        raise BenchError(f"could not add {name}: {r.status_code} {r.text[:300]}")


async def start(client: httpx.AsyncClient, agent: str) -> str:
    r = await client.post("/api/phone", json={"agent_id": agent, "message": "go"})
    body = r.json()
    if r.status_code != 200 or body.get("status") not in ("running", "done"):
        raise BenchError(f"/api/phone answered {r.status_code}: {r.text[:300]}")
    return str(body["turn_id"])


async def follow(client: httpx.AsyncClient, turn_id: str):  # type: ignore[no-untyped-def]
    """(arrival time, kind, data) of each event until done."""
    async with client.stream("GET", f"/api/turns/{turn_id}/events") as r:
        if r.status_code != 200:
            raise BenchError(f"events answered {r.status_code}")
        kind = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                yield time.time(), kind, json.loads(line[6:])


async def progress_latency(running: Hub, ticks: int) -> Samples:
    samples = Samples()
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth, timeout=120) as c:
        await add_agent(running, c, "ticker", TICKER, str(ticks))
        turn_id = await start(c, "ticker")
        t0 = time.monotonic()
        async for arrived, kind, data in follow(c, turn_id):
            if kind == "progress" and data["text"].startswith("tick "):
                samples.latencies.append(arrived - float(data["text"].split()[1]))
            if kind == "done" and data["status"] != "done":
                raise BenchError(f"the ticker ended {data['status']}")
        samples.wall = time.monotonic() - t0
    if len(samples.latencies) < ticks * 0.9:
        raise BenchError(f"{ticks} lines printed, {len(samples.latencies)} progress events came")
    return samples


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()  # exited, not reaped
    except FileNotFoundError:
        return True


async def cancel_time(running: Hub, rounds: int) -> Samples:
    samples = Samples()
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth, timeout=60) as c:
        await add_agent(running, c, "sleeper", SLEEPER)
        for _ in range(rounds):
            turn_id = await start(c, "sleeper")
            events = follow(c, turn_id)
            pids: list[int] = []
            async for _, kind, data in events:
                if kind == "progress" and data["text"].startswith("pids "):
                    pids = [int(p) for p in data["text"].split()[1:]]
                    break
            t0 = time.perf_counter()
            r = await c.post(f"/api/turns/{turn_id}/cancel")
            if r.status_code != 200:
                raise BenchError(f"cancel answered {r.status_code}: {r.text[:300]}")
            while not all(gone(p) for p in pids):
                if time.perf_counter() - t0 > 10:
                    raise BenchError("the cancelled agent's processes are still running after 10 s")
                await asyncio.sleep(0.002)
            samples.latencies.append(time.perf_counter() - t0)
            async for _, kind, data in events:
                if kind == "done" and data["status"] != "cancelled":
                    raise BenchError(f"a cancelled turn ended {data['status']}")
            await events.aclose()
    return samples


async def run(options: Options) -> Result:
    ticks, rounds = (10, 5) if options.quick else (120, 20)
    before = machine()
    # The tool call answers "started" at once, so the follower is there from the first line.
    async with hub(options, env={"HIVECALL_VOICE_ACK_S": "0"}) as running:
        progress = await progress_latency(running, ticks)
        cancel = await cancel_time(running, rounds)
        backend = running.backend
    p50, c50 = progress.pct(50), cancel.pct(50)
    met = p50 <= GOAL_PROGRESS_P50_MS and c50 <= GOAL_CANCEL_MS
    rows = [
        ["progress line -> follower", len(progress.latencies), p50, progress.pct(90),
         progress.pct(99), f"p50 <= {GOAL_PROGRESS_P50_MS:g} ms"],
        ["cancel -> process group gone", len(cancel.latencies), c50, cancel.pct(90),
         cancel.pct(99), f"p50 <= {GOAL_CANCEL_MS:g} ms"],
    ]  # fmt: skip
    mode = "quick" if options.quick else "full"
    return Result(
        title=f"{NAME}: progress and cancel of long agent turns",
        lines=[
            f"{mode} run; store: {backend}; a {ticks * 0.5:g} s turn printing a line every "
            f"0.5 s; {rounds} cancels of an agent with a child",
            "",
            *table(["what", "samples", "p50 ms", "p90 ms", "p99 ms", "goal"], rows),
            "",
            f"machine before: {before}; after: {machine()}",
        ],
        goal_met=met,
    )
