"""Crash safety, measured: a real `hivecall serve` SIGKILLed under load and started again.

Each round loads the hub with concurrent `/api/phone` turns on four agents (two that hang with a
child, so there are process groups to orphan; one that works a while, one turn at a time; echo),
a local call in `talking` (a real aiortc caller that asks for something), and two HiveMind
clients with utterances in flight, then kills it mid-flight and starts it again on the same home
and store. The store, read directly, is the truth about what the hub accepted: every such turn
ends `done`, `failed` or `interrupted`, never left queued or running; fake_agent's log holds each
turn at most once (nothing is run again after the restart); no process of an old turn survives
the restart (found as the hub finds them, by HIVECALL_TURN_ID in /proc); and a local call whose
media died with the hub is not left `talking`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from hivecall.agents.records import AgentCreate
from hivecall.hivemind.clients import HiveClients
from hivecall.hub import Hub
from hivecall.runtimes.orphans import orphan_groups
from hivecall.secretbox import SecretBox
from hivecall.settings import Settings
from hivecall.store.db import async_url
from hivecall.store.models import Call, Turn
from tests.conftest import script
from tests.hivemind.peer import Peer
from tests.local.caller import Caller
from tests.local.speech import said, silence
from tests.procs import alive
from tests.standins.threaded import free_port
from tests.test_serve_e2e import HIVECALL

pytestmark = pytest.mark.slow

TOKEN = "crash-safety-owner-token-0123456789abcdef"
ROUNDS = 3
# First burst per agent, then a late burst fired just before the kill (some of it never lands).
BURST = {"echo": 16, "worker": 16, "sleeper-a": 8, "sleeper-b": 8}
LATE = {"echo": 4, "worker": 4}
HM_UTTERANCES = 2
ENDED = {"done", "failed", "interrupted"}
UNFINISHED = {"queued", "running"}
REQUEST = "Please run the tests again."


# -- the hub process ----------------------------------------------------------------------------


class HubProcess:
    """`hivecall serve` with its output in a file: after a SIGKILL nobody drains a pipe, and its
    agents' processes must not hold the test's pipes either."""

    def __init__(self, env: dict[str, str], cwd: Path, port: int, logs: Path) -> None:
        self.env, self.cwd, self.port, self.logs = env, cwd, port, logs
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def log(self) -> Path:
        return self.logs / f"serve-{self.runs}.log"

    async def start(self) -> float:
        """Start it; returns the seconds until GET /api/health answers 200."""
        self.runs += 1
        t0 = time.monotonic()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*HIVECALL, "serve", "--port", str(self.port)],
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        async with httpx.AsyncClient(base_url=self.url, timeout=1) as c:
            while time.monotonic() - t0 < 40:
                if self.proc.poll() is not None:
                    break
                with contextlib.suppress(httpx.TransportError):
                    if (await c.get("/api/health")).status_code == 200:
                        return time.monotonic() - t0
                await asyncio.sleep(0.05)
        self.kill()
        raise AssertionError(f"the hub did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(30)

    def reported_kills(self) -> int:
        """Agent process groups the hub says it killed at this start (its own log line)."""
        m = re.search(r"killed agent processes a stopped hub left running.*groups=(\d+)", self.text)
        return int(m.group(1)) if m else 0

    @property
    def text(self) -> str:
        return self.log.read_text(errors="replace")


# -- what the store and the agents say ----------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: str
    message: str
    status: str
    error_code: str | None
    source: str
    call_id: str | None


class Truth:
    """The store read with SQLAlchemy directly, not through the hub."""

    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_async_engine(async_url(url), poolclass=NullPool)

    async def turns(self) -> dict[str, Row]:
        q = select(Turn.id, Turn.message, Turn.status, Turn.error_code, Turn.source, Turn.call_id)
        async with self.engine.connect() as conn:
            return {r.id: Row(*r) for r in (await conn.execute(q)).all()}

    async def call(self, call_id: str) -> tuple[str, str | None]:
        q = select(Call.state, Call.error_code).where(Call.id == call_id)
        async with self.engine.connect() as conn:
            state, code = (await conn.execute(q)).one()
        return state, code


def runs(log: Path) -> list[dict[str, Any]]:
    """fake_agent's log: one line per process it started."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


async def until(check: Callable[[], Awaitable[str]], timeout: float) -> None:
    """Poll `check` until it returns "" (else what it still waits for)."""
    deadline = time.monotonic() + timeout
    while waiting := await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {waiting}")
        await asyncio.sleep(0.1)


# -- set-up -------------------------------------------------------------------------------------


@dataclass
class Rig:
    hub: HubProcess
    truth: Truth
    agent_log: Path
    child_pids: dict[str, Path]
    hm_port: int
    clients: list[tuple[str, str, str]]  # name, access key, password
    figures: list[dict[str, Any]] = field(default_factory=list)


async def prepare(tmp_path: Path, database_url: str) -> Rig:
    """Agents and HiveMind clients written to the store before the hub first starts."""
    home = tmp_path / "hub"
    agent_log = tmp_path / "agents.log"
    settings = Settings(home=home, database_url=database_url, owner_token=TOKEN)
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    hub = await Hub.open(settings, environ={"PATH": path})
    child_pids: dict[str, Path] = {}
    clients: list[tuple[str, str, str]] = []
    try:
        await hub.agents.create(AgentCreate(name="echo", runtime="echo"))
        modes = {"worker": "work:2:0.2", "sleeper-a": "sleep", "sleeper-b": "sleep"}
        for name, mode in modes.items():
            ws = tmp_path / name
            ws.mkdir()
            child_pids[name] = tmp_path / f"{name}.child"
            await hub.agents.create(
                AgentCreate(
                    name=name,
                    command=f"{script('fake_agent.py')} --mode {mode} {{message}}",
                    workspace=str(ws),
                    # Agents get an allowlisted environment: what the script needs is named.
                    env=[f"FAKE_AGENT_LOG={agent_log}", f"FAKE_AGENT_CHILD_PID={child_pids[name]}"],
                )
            )
        hive = HiveClients(store=hub.store, box=SecretBox.open(home), agents=hub.agents)
        for name, agent in (("hm1", "worker"), ("hm2", "sleeper-b")):
            _, key, password = await hive.add(name=name, agent=agent)
            clients.append((name, key, password))
    finally:
        await hub.aclose()
    hm_port = free_port()
    env = {
        "PATH": path,
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "HIVECALL_HOME": str(home),
        "HIVECALL_DATABASE_URL": database_url,
        "HIVECALL_OWNER_TOKEN": TOKEN,
        "HIVECALL_HIVEMIND_PORT": str(hm_port),
        "HIVECALL_LOG_LEVEL": "info",
        # /api/phone answers `running` (with the turn id) for a turn still running after 1 s.
        "HIVECALL_VOICE_ACK_S": "1",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    process = HubProcess(env, tmp_path, free_port(), logs)
    return Rig(process, Truth(database_url), agent_log, child_pids, hm_port, clients)


@pytest.fixture
async def rig(tmp_path: Path, database_url: str) -> AsyncIterator[Rig]:
    rig = await prepare(tmp_path, database_url)
    try:
        yield rig
    finally:
        rig.hub.kill()
        # Whatever a failed run left behind goes too: no 600-second sleepers after the test.
        leftovers = orphan_groups(await rig.truth.turns())
        for pgid in leftovers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        await rig.truth.engine.dispose()


# -- one round: load, SIGKILL, restart, check ---------------------------------------------------


@dataclass
class Sent:
    message: str
    agent: str
    late: bool
    reply: dict[str, Any] | None = None
    error: str | None = None

    @property
    def status(self) -> str | None:
        """The turn's status as answered (`running`: answered that it had started)."""
        return str(self.reply["status"]) if self.reply else None


async def phone(http: httpx.AsyncClient, sent: Sent) -> None:
    try:
        r = await http.post(
            "/api/phone",
            json={"agent_id": sent.agent, "message": sent.message, "session_id": sent.message},
        )
    except httpx.TransportError as e:  # the hub died with the request in hand
        sent.error = type(e).__name__
        return
    assert r.status_code == 200, r.text
    sent.reply = r.json()


async def start_call(http: httpx.AsyncClient) -> tuple[str, Caller]:
    """A local call on the worker agent, talking: the caller has heard its greeting."""
    r = await http.post("/api/calls", json={"agent_id": "worker", "mode": "local"})
    assert r.status_code == 201, r.text
    call = r.json()["call"]
    caller = Caller()
    offer = await http.post(
        call["local"]["offer_url"],
        content=await caller.offer(),
        headers={"content-type": "application/sdp"},
    )
    assert offer.status_code == 201, offer.text
    await caller.answered(offer.text)
    await caller.until(lambda: "response.done" in caller.types(), timeout=40)  # the greeting
    shown = (await http.get(f"/api/calls/{call['id']}")).json()["call"]
    assert shown["state"] == "talking", shown
    return call["id"], caller


async def one_round(rig: Rig, n: int, http: httpx.AsyncClient) -> None:
    tag = f"r{n}"
    truth, hub = rig.truth, rig.hub
    call_id, caller = await start_call(http)
    peers: list[Peer] = []
    for name, key, password in rig.clients:
        peer = await Peer.connect(rig.hm_port, key, password)
        await peer.noise_handshake(session=f"{tag}-{name}")
        peers.append(peer)

    first = [Sent(f"{tag}-{a}-{i}", a, False) for a, k in BURST.items() for i in range(k)]
    tasks = [asyncio.create_task(phone(http, s)) for s in first]
    for (name, *_), peer in zip(rig.clients, peers, strict=True):
        for i in range(HM_UTTERANCES):
            await peer.utter(f"{tag}-{name}-{i}")
    assert caller.mic is not None
    caller.mic.say(said(REQUEST) + silence(1.2))  # a turn queued behind the worker's

    async def mid_flight() -> str:
        rows = (await truth.turns()).values()
        done = Counter(r.message.rsplit("-", 1)[0] for r in rows if r.status == "done")
        if done[f"{tag}-echo"] < BURST["echo"] or done[f"{tag}-worker"] < 2:
            return f"turns done on echo and the worker (have {dict(done)})"
        started = {r["agent"] for r in runs(rig.agent_log) if r["message"].startswith(f"{tag}-")}
        if not {"sleeper-a", "sleeper-b"} <= started:
            return f"both sleepers to run (running: {started})"
        hm = [r for r in rows if r.source == "hivemind" and r.message.startswith(f"{tag}-")]
        heard = [r for r in rows if r.call_id == call_id]
        if len(hm) < len(rig.clients) * HM_UTTERANCES or not heard:
            return f"HiveMind and call turns (have {len(hm)} and {len(heard)})"
        return ""

    try:
        await until(mid_flight, 40)
    except AssertionError as e:
        rows = (await truth.turns()).values()
        seen = Counter(
            (r.message.rsplit("-", 1)[0], r.status) for r in rows if r.message.startswith(f"{tag}-")
        )
        raise AssertionError(f"{e}; this round's turns in the store: {dict(seen)}") from None
    late = [Sent(f"{tag}-late-{a}-{i}", a, True) for a, k in LATE.items() for i in range(k)]
    tasks += [asyncio.create_task(phone(http, s)) for s in late]
    await asyncio.sleep(0.02)
    killed_at = time.time()
    hub.kill()
    await asyncio.gather(*tasks)
    await caller.close()
    for peer in peers:
        with contextlib.suppress(Exception):
            await peer.aclose()

    # -- what the killed hub left ------------------------------------------------------------
    before = await truth.turns()
    ours = {
        r.id: r for r in before.values() if r.message.startswith(f"{tag}-") or r.call_id == call_id
    }
    left = {i for i, r in ours.items() if r.status in UNFINISHED}
    everything_old = set(before)
    orphans = orphan_groups(left)
    pids = [r["pid"] for r in runs(rig.agent_log) if r["turn_id"] in left]
    pids += [int(p.read_text()) for p in rig.child_pids.values() if p.exists()]
    running_before = [p for p in pids if alive(p)]
    assert orphans, "the kill left no agent process group: the round measured nothing"
    state_before, _ = await truth.call(call_id)
    # A process the hub forked just before it died logs a moment after the kill: let it, so
    # that what is logged from here on can only be a run the restarted hub started.
    await asyncio.sleep(0.3)
    logged = len(runs(rig.agent_log))

    # -- the restart -------------------------------------------------------------------------
    restarted_at = time.time()
    ready_s = await hub.start()
    after = await truth.turns()
    mine = {turn_id: after[turn_id] for turn_id in ours}
    stuck = {turn_id: r.status for turn_id, r in mine.items() if r.status not in ENDED}
    assert not stuck, f"turns left unfinished after the restart: {stuck}"
    for turn_id in left:
        row = mine[turn_id]
        assert (row.status, row.error_code) == ("interrupted", "hub_restarted"), row
    # What the hub answered before it died is what the store kept.
    by_message = {r.message: r for r in mine.values()}
    for s in first + late:
        if s.reply is not None:
            row = after[s.reply["turn_id"]]
            assert row.message == s.message, (row, s.reply)
            if s.reply["status"] != "running":  # else only "started": any end will do
                assert row.status == s.reply["status"], (row, s.reply)
        elif s.message in by_message:
            assert s.error, s  # accepted, and the answer died with the hub
    assert all(s.reply for s in first if s.agent == "echo")
    # No process of an old turn outlives the start-up; nothing old is run again.
    assert not orphan_groups(everything_old), "an old turn's process survived the restart"
    assert not [p for p in pids if alive(p)], "a killed hub's agent (or its child) still runs"
    for pidfile in rig.child_pids.values():  # a later round must not look at a reused pid
        pidfile.unlink(missing_ok=True)
    await asyncio.sleep(0.5)
    again = [r for r in runs(rig.agent_log)[logged:] if r["turn_id"] in everything_old]
    assert not again, f"the restarted hub ran old turns again: {again}"
    call_state, call_code = await truth.call(call_id)
    # The call's media ran in the killed process: it is over, and says why.
    assert (call_state, call_code) == ("failed", "hub_restarted"), (state_before, call_state)

    statuses = Counter(r.status for r in mine.values())
    sent_n = len(first) + len(late) + len(rig.clients) * HM_UTTERANCES + 1
    rig.figures.append(
        {
            "round": n,
            "sent": sent_n,
            "accepted": len(mine),
            "not_accepted": sum(s.message not in by_message for s in first + late),
            "answered": sum(s.status not in (None, "running") for s in first + late),
            "acked_running": sum(s.status == "running" for s in first + late),
            "done": statuses["done"],
            "interrupted": statuses["interrupted"],
            "failed": statuses["failed"],
            "orphan_groups": len(orphans),
            "orphan_pids": len(running_before),
            "hub_killed_groups": hub.reported_kills(),
            "restart_s": round(ready_s, 2),
            "restart_after_kill_s": round(restarted_at - killed_at + ready_s, 2),
            "call": f"{state_before}->{call_state}" + (f" ({call_code})" if call_code else ""),
        }
    )


async def test_sigkill_under_load_loses_nothing_runs_nothing_twice_leaves_no_orphan(
    rig: Rig, database_url: str
) -> None:
    t0 = time.monotonic()
    await rig.hub.start()
    async with httpx.AsyncClient(
        base_url=rig.hub.url,
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=60,
        limits=httpx.Limits(max_connections=200),
    ) as http:
        for n in range(1, ROUNDS + 1):
            await one_round(rig, n, http)
            # The restarted hub serves: a turn on the worker (whose queue the crash emptied).
            r = await http.post("/api/phone", json={"agent_id": "worker", "message": f"r{n}-after"})
            assert r.status_code == 200 and r.json()["ok"], r.text

    assert rig.hub.stop() == 0
    backend = database_url.split(":", 1)[0]
    print(f"\ncrash safety on {backend}: {time.monotonic() - t0:.1f} s")
    for f in rig.figures:
        print("  " + " ".join(f"{k}={v}" for k, v in f.items()))
    everything = runs(rig.agent_log)
    twice = Counter(r["turn_id"] for r in everything)
    assert max(twice.values()) == 1, f"a turn ran twice: {twice.most_common(3)}"
    # Each request's text is unique (the call's spoken ones repeat each round: their turns do).
    asked = Counter(r["message"] for r in everything if r["message"].startswith("r"))
    assert max(asked.values()) == 1, f"a request ran twice: {asked.most_common(3)}"
