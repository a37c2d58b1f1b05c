"""Chat completions per second: hivecall's OpenAI-compatible API vs ovos-persona-server.

Both servers answer `POST …/chat/completions` for a model that replies at once: hivecall's
`echo` agent (each request a bridge turn, written to the store before it runs and again before
it answers), and an ovos-persona-server persona whose only solver is
ovos-solver-failure-plugin (an instant canned answer, no store). They run side by side on
127.0.0.1 with the same uvicorn settings and the same event loop and HTTP parser (uvloop and
httptools when hivecall's venv has them, else asyncio and h11; the persona's own venv,
bench/.venv-persona, is made to match), and take turns in rounds (ABBA) so machine noise falls
on both. Load is closed-loop from a lean raw-socket client (bench/compat_client.py): at these
rates httpx would measure itself.

Every hivecall answer must be 200 with the message echoed; every persona answer 200 with some
content; at the end the hivecall store must hold one `done` turn per request sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from compat_client import Check, Connection, closed_loop, connections, post
from harness import (
    BENCH,
    BenchError,
    Hub,
    Options,
    Result,
    Samples,
    _spawn,
    _stop,
    free_port,
    hub,
    machine,
    table,
)

NAME = "compat"
GOAL_RATIO = 3.0  # hivecall req/s over persona req/s at 16 clients
GOAL_AT = 16
MESSAGE = "what is the status of the build?"
PERSONA_VENV = BENCH / ".venv-persona"
PERSONA_STARTUP_SECONDS = 180.0


@dataclass(frozen=True)
class Level:
    concurrency: int
    requests: int  # measured requests per server
    warmup: int  # per server, not measured
    rounds: int


FULL = (Level(1, 3000, 300, 6), Level(16, 9600, 960, 6), Level(64, 12800, 1280, 8))
QUICK = (Level(1, 300, 30, 2), Level(16, 960, 160, 2), Level(64, 1280, 256, 2))


def stack() -> str:
    """What uvicorn picks in this venv (and so for hivecall's server): fast or plain."""
    fast = all(importlib.util.find_spec(m) is not None for m in ("uvloop", "httptools"))
    return "fast" if fast else "plain"


STACKS = {"fast": "uvloop + httptools", "plain": "asyncio + h11"}


# -- the two servers -------------------------------------------------------------------------


@dataclass
class Subject:
    name: str
    port: int
    request: bytes
    check: Check
    conns: list[Connection]
    sent: int = 0


def hivecall_check(status: int, body: bytes) -> None:
    if status != 200:
        raise BenchError(f"hivecall answered {status}: {body[:300]!r}")
    content = json.loads(body)["choices"][0]["message"]["content"]
    if MESSAGE not in content:
        raise BenchError(f"hivecall answered something else: {content[:300]!r}")


def persona_check(status: int, body: bytes) -> None:
    if status != 200:
        raise BenchError(f"ovos-persona-server answered {status}: {body[:300]!r}")
    content = json.loads(body)["choices"][0]["message"]["content"]
    if not isinstance(content, str) or not content:
        raise BenchError(f"ovos-persona-server gave no answer: {body[:300]!r}")


def chat_body() -> dict[str, object]:
    return {"model": "echo", "messages": [{"role": "user", "content": MESSAGE}]}


async def api_key(running: Hub) -> str:
    """An API key limited to the echo agent, made by the owner as a person would."""
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as client:
        r = await client.post("/api/keys", json={"name": "bench", "agent": "echo"})
    if r.status_code != 201:
        raise BenchError(f"could not make an API key: {r.status_code} {r.text[:300]}")
    key: str = r.json()["token"]
    return key


@contextlib.asynccontextmanager
async def persona(stack_name: str) -> AsyncIterator[int]:
    """ovos-persona-server on a free port of 127.0.0.1, in its own venv and its own HOME."""
    made = await asyncio.to_thread(
        subprocess.run,
        ["bash", str(BENCH / "compat_persona_venv.sh"), stack_name],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if made.returncode != 0:
        raise BenchError(f"could not make {PERSONA_VENV}: {made.stderr[-2000:]}")
    home = Path(tempfile.mkdtemp(prefix="hivecall-bench-persona-"))
    try:
        spec = home / "echo.json"
        spec.write_text(
            json.dumps(
                {
                    "name": "echo",
                    "solvers": ["ovos-solver-failure-plugin"],
                    "ovos-solver-failure-plugin": {},
                }
            )
        )
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
        }
        port = free_port()
        argv = [
            str(PERSONA_VENV / "bin" / "python"),
            str(BENCH / "compat_persona.py"),
            "--persona",
            str(spec),
            "--port",
            str(port),
        ]
        log_path = home / "server.log"
        process = await asyncio.to_thread(_spawn, argv, env, log_path)
        try:
            await _persona_ready(port, process, log_path)
            yield port
        finally:
            _stop(process)
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def _persona_ready(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + PERSONA_STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                r = await client.post("/openai/v1/chat/completions", json=chat_body())
                if r.status_code == 200:
                    return
            await asyncio.sleep(0.2)
    tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-4000:]
    raise BenchError(f"ovos-persona-server did not come up on port {port}; its output:\n{tail}")


# -- measuring -------------------------------------------------------------------------------


async def measure(subjects: list[Subject], level: Level) -> dict[str, Samples]:
    samples = {s.name: Samples() for s in subjects}
    for s in subjects:
        s.conns = await connections("127.0.0.1", s.port, level.concurrency)
    try:
        for s in subjects:
            await closed_loop(s.conns, s.request, s.check, count=level.warmup)
            s.sent += level.warmup
        per_round = level.requests // level.rounds
        for i in range(level.rounds):
            for s in subjects if i % 2 == 0 else list(reversed(subjects)):
                samples[s.name].add(
                    *await closed_loop(s.conns, s.request, s.check, count=per_round)
                )
                s.sent += per_round
    finally:
        for s in subjects:
            for conn in s.conns:
                conn.close()
    return samples


async def run(options: Options) -> Result:
    levels = QUICK if options.quick else FULL
    chosen = stack()
    before = machine()
    rows: list[list[object]] = []
    ratio_at_goal = 0.0
    async with hub(options) as running, persona(chosen) as persona_port:
        key = await api_key(running)
        port = int(running.url.rsplit(":", 1)[1])
        ours = Subject(
            "hivecall",
            port,
            post(
                "127.0.0.1",
                port,
                "/v1/chat/completions",
                chat_body(),
                {"Authorization": f"Bearer {key}"},
            ),
            hivecall_check,
            [],
        )
        theirs = Subject(
            "persona",
            persona_port,
            post("127.0.0.1", persona_port, "/openai/v1/chat/completions", chat_body(), {}),
            persona_check,
            [],
        )
        for level in levels:
            got = await measure([ours, theirs], level)
            h, p = got["hivecall"], got["persona"]
            ratio = h.rate / p.rate if p.rate else 0.0
            if level.concurrency == GOAL_AT:
                ratio_at_goal = ratio
            rows.append(
                [
                    level.concurrency,
                    len(h.latencies),
                    h.rate,
                    h.pct(50),
                    h.pct(99),
                    p.rate,
                    p.pct(50),
                    p.pct(99),
                    f"{ratio:.2f}x",
                ]
            )
        turns = await running.count_turns()
        backend = running.backend
    stored = sum(turns.values())
    if stored != ours.sent or turns.get("done", 0) != ours.sent:
        raise BenchError(f"sent {ours.sent} chat completions but the store holds {turns}")
    met = ratio_at_goal >= GOAL_RATIO
    header = [
        "clients",
        "requests/server",
        "hivecall req/s",
        "hivecall p50 ms",
        "hivecall p99 ms",
        "persona req/s",
        "persona p50 ms",
        "persona p99 ms",
        "hivecall/persona",
    ]
    mode = "quick" if options.quick else "full"
    return Result(
        title=f"{NAME}: chat completions per second, hivecall vs ovos-persona-server",
        lines=[
            f"{mode} run; hivecall store: {backend}; both on uvicorn with {STACKS[chosen]}; "
            f"Python {platform.python_version()} ({sys.platform}); client: raw HTTP/1.1, "
            "one keep-alive connection per client",
            "",
            *table(header, rows),
            "",
            f"goal: hivecall >= {GOAL_RATIO:g}x persona at {GOAL_AT} clients: "
            f"{'met' if met else 'MISSED'} ({ratio_at_goal:.2f}x)",
            f"turns persisted: {stored} of {ours.sent} hivecall requests (warm-up included), "
            "all done",
            f"machine before: {before}; after: {machine()}",
        ],
        goal_met=met,
    )
