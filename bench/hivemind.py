"""hivemind: hivecall's HiveMind listener against upstream hivemind-core 4.0.0, same client.

Each server runs in a subprocess on 127.0.0.1 with a fresh home: hivecall (`hivecall serve`, the
echo agent) and hivemind-core 4.0.0 with hivemind-persona-agent-plugin answering from
ovos-solver-failure-plugin (an instant canned answer), installed by bench/hivemind_venv.sh into
bench/.venv-hivemind only. Both are driven by one client, hivecall's protocol peer
(tests/hivemind/peer.py: the frames upstream's hivemind-bus-client sends, AES-GCM, JSON-B64):
- handshake: connect + v1 password handshake + encrypted hello, one at a time (median);
- round trips: closed loop of encrypted utterance -> speak (the latency) -> handled, at 1 and
  32 clients, each client sending its next utterance when the last one was handled;
- idle: N authenticated clients held open, then one must still be answered; memory per
  client is the server's RSS growth / N.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from harness import BenchError, Options, Result, Samples, _spawn, _stop, free_port, machine, table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hivemind.peer import Peer  # noqa: E402

from hivecall.hivemind_protocol.wire import bus  # noqa: E402

NAME = "hivemind"
BENCH = Path(__file__).resolve().parent
UPSTREAM_VENV = BENCH / ".venv-hivemind"
KEY = "bench-access-key-0123456789abcdef"
PASSWORD = "Bench-password-0123456789-xyz"
STARTUP_SECONDS = 60.0


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"process {pid} has no VmRSS")


async def _ready(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            peer = await Peer.connect(server.port, KEY, PASSWORD)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        try:
            await peer.handshake(session=peer_id(peer))
            return
        except Exception:
            await asyncio.sleep(0.2)
        finally:
            with contextlib.suppress(Exception):
                await peer.aclose()
    tail = server.log.read_text(errors="replace")[-4000:]
    raise BenchError(f"{server.name} did not come up on port {server.port}; its output:\n{tail}")


@contextlib.asynccontextmanager
async def hivecall_server() -> AsyncIterator[Server]:
    home = Path(tempfile.mkdtemp(prefix="hivecall-bench-hm-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVECALL_")}
    env.update(
        HIVECALL_HOME=str(home),
        HIVECALL_OWNER_TOKEN="bench-owner-token-0123456789abcdef",  # 32+ characters
        HIVECALL_LOG_LEVEL="warning",
    )
    hivecall = [sys.executable, "-m", "hivecall"]
    add = [*hivecall, "hivemind", "add-client", "--name", "bench"]
    add += ["--access-key", KEY, "--password", PASSWORD]
    await asyncio.to_thread(subprocess.run, add, env=env, capture_output=True, check=True)
    port = free_port()
    argv = [*hivecall, "serve", "--port", str(free_port()), "--hivemind-port", str(port)]
    log = home / "server.log"
    process = await asyncio.to_thread(_spawn, argv, env, log)
    try:
        server = Server("hivecall", port, process, log)
        await _ready(server)
        yield server
    finally:
        _stop(process)
        shutil.rmtree(home, ignore_errors=True)


@contextlib.asynccontextmanager
async def upstream_server() -> AsyncIterator[Server]:
    await asyncio.to_thread(subprocess.run, ["bash", str(BENCH / "hivemind_venv.sh")], check=True)
    home = Path(tempfile.mkdtemp(prefix="hivemind-core-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIVECALL_", "XDG_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_STATE_HOME=str(home / "state"),
    )
    port = free_port()
    config = {
        "agent_protocol": {
            "module": "hivecall-bench-echo",
            "hivecall-bench-echo": {},
        },
        "binary_protocol": {"module": None},
        "network_protocol": {
            "hivemind-websocket-plugin": {"host": "127.0.0.1", "port": port, "ssl": False}
        },
    }
    where = home / "config" / "hivemind-core"
    where.mkdir(parents=True)
    (where / "server.json").write_text(json.dumps(config))
    # Warnings only, as hivecall runs here (its default INFO logs every message it receives).
    (home / "config" / "mycroft").mkdir()
    (home / "config" / "mycroft" / "mycroft.conf").write_text(json.dumps({"log_level": "WARNING"}))
    core = str(UPSTREAM_VENV / "bin" / "hivemind-core")
    add = [core, "add-client", "--name", "bench", "--access-key", KEY, "--password", PASSWORD]
    await asyncio.to_thread(subprocess.run, add, env=env, capture_output=True, check=True)
    log = home / "server.log"
    process = await asyncio.to_thread(_spawn, [core, "listen"], env, log)
    try:
        server = Server("hivemind-core 4.0.0", port, process, log)
        await _ready(server)
        yield server
    finally:
        _stop(process)
        shutil.rmtree(home, ignore_errors=True)


def peer_id(peer: Peer) -> str:
    return f"bench-{id(peer):x}"


async def _answer(peer: Peer) -> float:
    """Send one utterance; seconds until its `speak`, then wait for `handled`."""
    t0 = time.perf_counter()
    # As upstream's client sends it: with the session in the context (hivemind-core drops
    # non-admin clients whose bus messages carry none).
    context = {
        "source": "bench",
        "destination": "HiveMind",
        "session": {"session_id": peer_id(peer)},
    }
    data = {"utterances": ["what is the time"], "lang": "en-us"}
    await peer.send(bus("recognizer_loop:utterance", data, context))
    spoke: float | None = None
    while True:
        kind, _ = await peer.recv_bus(30)
        if kind == "speak" and spoke is None:
            spoke = time.perf_counter() - t0
        elif kind == "ovos.utterance.handled":
            if spoke is None:
                raise BenchError("handled without a speak")
            return spoke
        elif kind == "hive.message.refused":
            raise BenchError("the server refused the utterance")


async def handshakes(server: Server, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        peer = await Peer.connect(server.port, KEY, PASSWORD)
        await peer.handshake(session=peer_id(peer))
        times.append(time.perf_counter() - t0)
        await peer.aclose()
    times.sort()
    return times[len(times) // 2] * 1e3


async def round_trips(server: Server, clients: int, seconds: float) -> tuple[Samples, float]:
    """Closed loop for `seconds`; the samples and the server's CPU ms per round trip."""
    peers = [await Peer.connect(server.port, KEY, PASSWORD) for _ in range(clients)]
    await asyncio.gather(*(p.handshake(session=peer_id(p)) for p in peers))
    await asyncio.gather(*(_answer(p) for p in peers))  # warm-up
    latencies: list[float] = []
    cpu0 = _cpu_seconds(server.process.pid)
    t0 = time.monotonic()
    stop = t0 + seconds

    async def loop(p: Peer) -> None:
        while time.monotonic() < stop:
            latencies.append(await _answer(p))

    await asyncio.gather(*(loop(p) for p in peers))
    wall = time.monotonic() - t0
    cpu = _cpu_seconds(server.process.pid) - cpu0
    for p in peers:
        await p.aclose()
    samples = Samples()
    samples.add(latencies, wall)
    return samples, cpu * 1e3 / max(len(latencies), 1)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def idle(server: Server, n: int) -> tuple[int, float]:
    before = rss_kib(server.process.pid)
    peers: list[Peer] = []
    gate = asyncio.Semaphore(16)

    async def one() -> None:
        async with gate:
            p = await Peer.connect(server.port, KEY, PASSWORD)
            await p.handshake(session=peer_id(p))
            peers.append(p)

    try:
        await asyncio.gather(*(one() for _ in range(n)))
        await asyncio.sleep(2)
        after = rss_kib(server.process.pid)
        await _answer(peers[0])  # still serving, with all of them connected
    finally:
        await asyncio.gather(*(p.aclose() for p in peers), return_exceptions=True)
    return len(peers), (after - before) / max(len(peers), 1)


async def measure(server: Server, quick: bool) -> dict[str, float]:
    out: dict[str, float] = {"handshake_ms": await handshakes(server, 5 if quick else 20)}
    seconds = 2.0 if quick else 10.0
    for clients in (1, 32):
        samples, cpu_ms = await round_trips(server, clients, seconds)
        out[f"rps_{clients}"] = samples.rate
        out[f"p50_{clients}"] = samples.pct(50)
        out[f"p99_{clients}"] = samples.pct(99)
        out[f"cpu_{clients}"] = cpu_ms
    held, kib = await idle(server, 200 if quick else 5000)
    out["idle"], out["kib"] = held, kib
    return out


def pbkdf2_ms() -> float:
    """The client's own key derivation (PBKDF2-SHA256, 100,000 rounds, which v1 fixes): a
    floor under every v1 handshake, whichever the server."""
    from hivecall.hivemind_protocol.crypto import derive_key, new_iv

    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        derive_key(PASSWORD, new_iv(), new_iv())
        times.append(time.perf_counter() - t0)
    return sorted(times)[2] * 1e3


async def run(options: Options) -> Result:
    before = machine()
    floor = pbkdf2_ms()
    results: dict[str, dict[str, float]] = {}
    async with hivecall_server() as server:
        results[server.name] = await measure(server, options.quick)
    async with upstream_server() as server:
        results[server.name] = await measure(server, options.quick)
    ours, theirs = results["hivecall"], results["hivemind-core 4.0.0"]
    header = ["", *results]
    rows = [
        ["handshake, median ms", *(r["handshake_ms"] for r in results.values())],
        ["(of which the client's own PBKDF2, ms)", floor, floor],
        *(
            [
                f"{label} at {c} client{'s' if c > 1 else ''}",
                *(r[f"{key}_{c}"] for r in results.values()),
            ]
            for c in (1, 32)
            for key, label in (
                ("rps", "round trips/s"),
                ("p50", "p50 ms"),
                ("p99", "p99 ms"),
                ("cpu", "server CPU ms per round trip"),
            )
        ),
        ["idle clients held", *(r["idle"] for r in results.values())],
        ["KiB per idle client", *(r["kib"] for r in results.values())],
    ]
    speedup = ours["rps_32"] / max(theirs["rps_32"], 1e-9)
    met = (
        speedup >= 10
        and ours["p99_32"] <= 50
        and ours["handshake_ms"] <= theirs["handshake_ms"] / 3
        and ours["idle"] >= (200 if options.quick else 5000)
        and ours["kib"] <= 20
    )
    lines = [
        *table(header, rows),
        "",
        f"hivecall/upstream throughput at 32 clients: {speedup:.1f}x. Goal: >= 10x, p99 <= 50 ms "
        "at 32 clients, handshakes in a third of upstream's time, 5,000 idle clients at <= 20 KiB "
        f"each: {'met' if met else 'MISSED'}.",
        f"machine before: {before}; after: {machine()}",
    ]
    return Result(title="HiveMind: hivecall vs hivemind-core 4.0.0", lines=lines, goal_met=met)
