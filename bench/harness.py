"""What every benchmark shares: a real hub in a subprocess, a load generator, percentiles.

Everything runs on 127.0.0.1, every loop is bounded, and the hub subprocess is always stopped
(terminate, then kill) when its `with` block ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

BENCH = Path(__file__).resolve().parent
OWNER_TOKEN = "bench-owner-token-0123456789abcdef"
STARTUP_SECONDS = 60.0
STOP_SECONDS = 10.0


class BenchError(RuntimeError):
    """The thing being measured misbehaved: the benchmark stops and says why."""


# -- options and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    quick: bool = False
    # "" = SQLite in a fresh temporary HIVECALL_HOME; a postgresql:// URL = a throwaway database
    # created on that server for the run and dropped afterwards.
    database_url: str = ""
    # Write a cProfile of the hub process here (profiles the event-loop thread only).
    profile: Path | None = None


@dataclass
class Result:
    title: str
    lines: list[str] = field(default_factory=list)
    goal_met: bool = True


# -- the hub subprocess ----------------------------------------------------------------------


def machine() -> str:
    """CPU count and load, to judge how quiet the machine was (other work skews latency)."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average {load}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Hub:
    """A running hub: where to reach it, how to authenticate, where its store is."""

    url: str
    token: str
    home: Path
    database_url: str
    process: subprocess.Popen[bytes]

    @property
    def backend(self) -> str:
        return "sqlite" if not self.database_url else "postgresql"

    @contextlib.asynccontextmanager
    async def clients(self, concurrency: int) -> AsyncIterator[list[httpx.AsyncClient]]:
        """One httpx client per worker, each holding one HTTP/1.1 keep-alive connection.

        Not one client with a pool of `concurrency` connections: httpx's shared pool collapses
        under concurrency (encode/httpx#3215; at 64 workers it served ~300 req/s where 64
        one-connection clients serve over 1,000), which would measure the client, not the hub.
        """
        async with contextlib.AsyncExitStack() as stack:
            yield [
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=self.url,
                        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                        timeout=httpx.Timeout(60.0),
                    )
                )
                for _ in range(concurrency)
            ]

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    async def count_turns(self) -> dict[str, int]:
        """Turns in the store by status, read straight from the database (not the API)."""
        query = "SELECT status, count(*) FROM turns GROUP BY status"
        if not self.database_url:
            db = self.home / "hivecall.db"
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                return {str(s): int(n) for s, n in conn.execute(query).fetchall()}
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(_plain_pg(self.database_url))
        try:
            return {str(r[0]): int(r[1]) for r in await conn.fetch(query)}
        finally:
            await conn.close()


def _plain_pg(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def _pg_database(base_url: str) -> AsyncIterator[str]:
    """A fresh database on the server of `base_url`, dropped afterwards (as tests/conftest.py)."""
    import asyncpg

    name = f"hc_bench_{uuid.uuid4().hex[:12]}"
    admin_url = _plain_pg(base_url)
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield str(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def hub(options: Options, *, env: Mapping[str, str] | None = None) -> AsyncIterator[Hub]:
    """Start bench/server.py on a free port with a fresh HIVECALL_HOME; stop it afterwards.

    `env` adds to the server's environment (e.g. an OpenAI base URL pointing at a stand-in)."""
    home = Path(tempfile.mkdtemp(prefix="hivecall-bench-"))
    try:
        async with contextlib.AsyncExitStack() as stack:
            database_url = ""
            if options.database_url:
                database_url = await stack.enter_async_context(_pg_database(options.database_url))
            port = free_port()
            argv = [
                sys.executable,
                str(BENCH / "server.py"),
                "--home",
                str(home),
                "--port",
                str(port),
                "--owner-token",
                OWNER_TOKEN,
            ]
            if database_url:
                argv += ["--database-url", database_url]
            if options.profile:
                argv += ["--profile", str(options.profile.resolve())]
            server_env = {k: v for k, v in os.environ.items() if not k.startswith("HIVECALL_")}
            server_env.update(env or {})
            log_path = home / "server.log"
            process = await asyncio.to_thread(_spawn, argv, server_env, log_path)
            try:
                running = Hub(f"http://127.0.0.1:{port}", OWNER_TOKEN, home, database_url, process)
                await _wait_ready(running, log_path)
                await _ensure_echo_agent(running)
                yield running
            finally:
                _stop(process)
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def _wait_ready(running: Hub, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=running.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if running.process.poll() is not None:
                break
            with contextlib.suppress(httpx.TransportError):
                r = await client.get("/api/health")
                if r.status_code == 200 and r.json().get("ok") is True:
                    return
            await asyncio.sleep(0.05)
    tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-4000:]
    raise BenchError(f"the hub did not come up on {running.url}; its output:\n{tail}")


async def _ensure_echo_agent(running: Hub) -> None:
    """The hub seeds `echo` on first start unless a coding CLI is on PATH; make sure it exists."""
    async with httpx.AsyncClient(base_url=running.url, headers=running.auth) as client:
        r = await client.get("/api/agents/echo")
        if r.status_code == 404:
            r = await client.post("/api/agents", json={"name": "echo", "runtime": "echo"})
        if r.status_code not in (200, 201) or r.json()["agent"]["runtime"] != "echo":
            raise BenchError(f"no echo agent: {r.status_code} {r.text[:300]}")


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    # Its own session: a Ctrl-C on the terminal reaches the runner, which then stops the hub.
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # SIGINT lets uvicorn run the lifespan shutdown (and write a profile, when asked).
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_SECONDS)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_SECONDS)


# -- load generation -------------------------------------------------------------------------

# One request: send it, check the answer (raise BenchError if it is wrong).
Call = Callable[[httpx.AsyncClient], Awaitable[None]]


async def closed_loop(
    clients: Sequence[httpx.AsyncClient], call: Call, *, count: int
) -> tuple[list[float], float]:
    """`count` calls from one worker per client, each sending its next as soon as one returns.

    Returns per-request latencies in seconds and the wall time of the whole batch.
    """
    latencies: list[float] = []
    todo = iter(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in todo:
            t0 = time.perf_counter()
            await call(client)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as tg:
            for client in clients[:count]:
                tg.create_task(worker(client))
    except ExceptionGroup as group:
        first = group.exceptions[0]
        if isinstance(first, BenchError):
            raise first from None
        raise BenchError(f"a request failed: {first!r}") from first
    return latencies, time.perf_counter() - started


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0

    def add(self, latencies: Sequence[float], wall: float) -> None:
        self.latencies.extend(latencies)
        self.wall += wall

    def pct(self, p: float) -> float:
        """Nearest-rank percentile, in milliseconds."""
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1] * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table; numbers right-aligned."""
    cells = [[str(h) for h in header], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_is_num(row[i]) for row in rows) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if n else ("-" * (w + 2))
            for w, n in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    return [line(cells[0]), rule, *(line(r) for r in cells[1:])]


def _is_num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


async def alternating(
    count: int, rounds: int, kinds: Sequence[tuple[Samples, Callable[[], Awaitable[None]]]]
) -> None:
    """Sequential requests of each kind, `count` in all per kind, in `rounds` rounds whose order
    flips every round (ABBA), so machine noise falls on every kind alike."""
    per_round = count // rounds
    for i in range(rounds):
        order = list(kinds) if i % 2 == 0 else list(reversed(kinds))
        for samples, request in order:
            started = time.perf_counter()
            for _ in range(per_round):
                t0 = time.perf_counter()
                await request()
                samples.latencies.append(time.perf_counter() - t0)
            samples.wall += time.perf_counter() - started
