"""What the bridge adds on top of an instant runtime.

Two routes on one hub server: `POST /bench/echo` (the bare ASGI route: parse JSON, return it)
and `POST /api/phone` on the `echo` agent (auth, validation, agent lookup, a turn written before
the runtime starts and updated when it ends, the speakable answer). The runtime answers
instantly, so phone minus echo is the bridge's own cost. The two routes are measured in
alternating rounds (ABBA) so machine noise falls on both alike.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass

import httpx

from harness import (
    BenchError,
    Call,
    Hub,
    Options,
    Result,
    Samples,
    closed_loop,
    hub,
    machine,
    table,
)

NAME = "bridge"
GOAL_P50_MS = 1.0
GOAL_P99_MS = 5.0
BODY = {"agent_id": "echo", "message": "what is the status of the build?"}


@dataclass(frozen=True)
class Level:
    concurrency: int
    requests: int  # measured requests per route
    warmup: int  # per route, not measured
    rounds: int


FULL = (Level(1, 2000, 200, 10), Level(64, 6400, 640, 10))
QUICK = (Level(1, 200, 20, 4), Level(64, 640, 64, 4))


async def call_echo(client: httpx.AsyncClient) -> None:
    r = await client.post("/bench/echo", json=BODY)
    if r.status_code != 200 or r.json() != BODY:
        raise BenchError(f"/bench/echo answered {r.status_code}: {r.text[:300]}")


def phone_call(token: str) -> Call:
    headers = {"authorization": f"Bearer {token}"}

    async def call_phone(client: httpx.AsyncClient) -> None:
        r = await client.post("/api/phone", json=BODY, headers=headers)
        data = r.json() if r.headers.get("content-type") == "application/json" else {}
        if r.status_code != 200 or data.get("ok") is not True or data.get("status") != "done":
            raise BenchError(f"/api/phone answered {r.status_code}: {r.text[:300]}")

    return call_phone


async def measure(running: Hub, level: Level) -> tuple[Samples, Samples]:
    call_phone = phone_call(running.token)
    echo, phone = Samples(), Samples()
    async with running.clients(level.concurrency) as clients:
        await closed_loop(clients, call_echo, count=level.warmup)
        await closed_loop(clients, call_phone, count=level.warmup)
        per_round = level.requests // level.rounds
        for i in range(level.rounds):
            order = [(echo, call_echo), (phone, call_phone)]
            if i % 2:
                order.reverse()
            for samples, call in order:
                samples.add(*await closed_loop(clients, call, count=per_round))
    return echo, phone


async def run(options: Options) -> Result:
    levels = QUICK if options.quick else FULL
    rows: list[list[object]] = []
    missed = False
    before = machine()
    async with hub(options) as running:
        sent = 0
        for level in levels:
            echo, phone = await measure(running, level)
            sent += level.warmup + len(phone.latencies)
            added50 = phone.pct(50) - echo.pct(50)
            added99 = phone.pct(99) - echo.pct(99)
            met = added50 <= GOAL_P50_MS and added99 <= GOAL_P99_MS
            missed |= not met
            rows.append(
                [
                    level.concurrency,
                    len(phone.latencies),
                    echo.pct(50),
                    echo.pct(99),
                    phone.pct(50),
                    phone.pct(99),
                    added50,
                    added99,
                    echo.rate,
                    phone.rate,
                    "met" if met else "MISSED",
                ]
            )
        turns = await running.count_turns()
        backend = running.backend
    stored = sum(turns.values())
    if stored != sent or turns.get("done", 0) != sent:
        raise BenchError(f"sent {sent} phone turns but the store holds {turns}")
    header = [
        "concurrency",
        "requests/route",
        "echo p50 ms",
        "echo p99 ms",
        "phone p50 ms",
        "phone p99 ms",
        "added p50 ms",
        "added p99 ms",
        "echo req/s",
        "phone req/s",
        "goal",
    ]
    mode = "quick" if options.quick else "full"
    return Result(
        title=f"{NAME}: what the bridge adds on top of an instant runtime",
        lines=[
            f"{mode} run; store: {backend}; Python {platform.python_version()} "
            f"({sys.platform}); client: httpx, one HTTP/1.1 keep-alive connection per worker",
            "",
            *table(header, rows),
            "",
            f"goal: added p50 <= {GOAL_P50_MS:g} ms and added p99 <= {GOAL_P99_MS:g} ms "
            "(added = phone percentile minus echo percentile)",
            f"turns persisted: {stored} of {sent} phone requests (warm-up included), all done",
            f"machine before: {before}; after: {machine()}",
        ],
        goal_met=not missed,
    )
