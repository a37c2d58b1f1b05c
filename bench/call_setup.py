"""What the hub adds to starting a BYOK call, over the Realtime service's own minting time.

A real hub (subprocess) whose OpenAI base URL points at the Realtime stand-in from
tests/standins (a thread of this process, real HTTP on 127.0.0.1). Two kinds of request,
alternating in rounds (ABBA) so machine noise falls on both alike:

- direct: the openai SDK mints a client secret from the stand-in itself — the stand-in's own
  minting time as a client sees it (its HTTP, its handler);
- hub: `POST /api/calls` — auth, validation, the agent and its cached context, the
  instructions, the hub's own SDK request to the stand-in, the call record and the answer.

Added = hub percentile minus direct percentile. Requests are sequential (one at a time), so the
stand-in and the load generator share this process without contending.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import httpx
import openai

from harness import BenchError, Hub, Options, Result, Samples, alternating, hub, machine, table
from hivecall.settings import Settings
from hivecall.voice.realtime import session_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.standins.realtime import RealtimeStandin

NAME = "calls"
GOAL_P50_MS = 3.0
KEY = "sk-bench-hivecall-0123456789abcdef0123"
# The direct mint sends a session of the same shape and size as the hub's.
SESSION = session_config(Settings(), "You are the voice of echo. " * 60)


async def measure(
    running: Hub, standin: RealtimeStandin, count: int, rounds: int
) -> tuple[Samples, Samples]:
    direct, via_hub = Samples(), Samples()
    sdk = openai.AsyncOpenAI(api_key=KEY, base_url=standin.base_url, max_retries=0)
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth, timeout=30) as c:

        async def mint_direct() -> None:
            made = await sdk.realtime.client_secrets.create(
                expires_after={"anchor": "created_at", "seconds": 120},
                extra_body={"session": SESSION},
            )
            if not made.value.startswith("ek_"):
                raise BenchError(f"the stand-in minted {made.value!r}")

        async def start_call() -> None:
            r = await c.post("/api/calls", json={"agent_id": "echo", "mode": "byok"})
            if r.status_code != 201 or not r.json()["call"]["realtime"]["client_secret"]:
                raise BenchError(f"POST /api/calls answered {r.status_code}: {r.text[:300]}")

        await alternating(count, rounds, [(direct, mint_direct), (via_hub, start_call)])
    await sdk.close()
    return direct, via_hub


async def run(options: Options) -> Result:
    count, warmup, rounds = (200, 40, 4) if options.quick else (2000, 200, 10)
    before = machine()
    with RealtimeStandin(api_key=KEY) as standin:
        env = {"OPENAI_API_KEY": KEY, "HIVECALL_OPENAI_BASE_URL": standin.base_url}
        async with hub(options, env=env) as running:
            await measure(running, standin, warmup, 2)
            direct, via_hub = await measure(running, standin, count, rounds)
            backend = running.backend
        handler = Samples(latencies=standin.mint_seconds[-2 * count :])
    added50 = via_hub.pct(50) - direct.pct(50)
    added99 = via_hub.pct(99) - direct.pct(99)
    met = added50 <= GOAL_P50_MS
    rows = [
        [
            "stand-in handler (inside the stand-in)",
            len(handler.latencies),
            handler.pct(50),
            handler.pct(99),
        ],
        [
            "direct SDK mint (client → stand-in)",
            len(direct.latencies),
            direct.pct(50),
            direct.pct(99),
        ],
        [
            "POST /api/calls (client → hub → stand-in)",
            len(via_hub.latencies),
            via_hub.pct(50),
            via_hub.pct(99),
        ],
        ["added by the hub", "", added50, added99],
    ]
    mode = "quick" if options.quick else "full"
    return Result(
        title=f"{NAME}: what the hub adds to starting a BYOK call",
        lines=[
            f"{mode} run; store: {backend}; Python {platform.python_version()}; sequential "
            f"requests in {rounds} alternating rounds after {warmup} warm-up requests of each kind "
            "(the agent's context is cached after the first call)",
            "",
            *table(["", "requests", "p50 ms", "p99 ms"], rows),
            "",
            f"goal: added p50 <= {GOAL_P50_MS:g} ms — {'met' if met else 'MISSED'}",
            f"machine before: {before}; after: {machine()}",
        ],
        goal_met=met,
    )
