"""Measure the HiveMind listener: handshakes, encrypted utterance->speak round trips, idle clients.

    .venv/bin/python scripts/hivemind-bench.py [--clients 32] [--seconds 10] [--idle 1000]

Starts `hivecall serve` (echo agent, SQLite, a temp home) on 127.0.0.1 and drives it from this
process with hivecall's own protocol peer (tests/hivemind/peer.py: the same frames upstream's
client sends, AES-GCM, JSON-B64). Prints one JSON object. Bounded in time and count; only
127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hivemind.conftest import free_port  # noqa: E402
from tests.hivemind.peer import Peer  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def round_trips(
    port: int, key: str, pw: str, clients: int, seconds: float
) -> dict[str, float]:
    peers = [await Peer.connect(port, key, pw) for _ in range(clients)]
    await asyncio.gather(*(p.handshake() for p in peers))
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def loop(p: Peer) -> None:
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            await p.utter("what is the time")
            kind, _ = await p.recv_bus()
            assert kind == "speak", kind
            latencies.append(time.perf_counter() - t0)
            assert (await p.recv_bus())[0] == "ovos.utterance.handled"

    t0 = time.monotonic()
    await asyncio.gather(*(loop(p) for p in peers))
    elapsed = time.monotonic() - t0
    for p in peers:
        await p.aclose()
    latencies.sort()
    return {
        "clients": clients,
        "round_trips_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1e3, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1e3, 1),
    }


async def handshakes(port: int, key: str, pw: str, n: int = 20) -> dict[str, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = await Peer.connect(port, key, pw)
        await p.handshake()
        times.append(time.perf_counter() - t0)
        await p.aclose()
    return {"handshake_ms_median": round(statistics.median(times) * 1e3, 1)}


async def idle(port: int, key: str, pw: str, n: int, pid: int) -> dict[str, float]:
    before = rss_kib(pid)
    peers: list[Peer] = []
    sem = asyncio.Semaphore(16)

    async def one() -> None:
        async with sem:
            p = await Peer.connect(port, key, pw)
            await p.handshake()
            peers.append(p)

    await asyncio.gather(*(one() for _ in range(n)))
    await asyncio.sleep(2)
    after = rss_kib(pid)
    # all still answer
    await peers[0].utter("still there")
    assert (await peers[0].recv_bus())[0] == "speak"
    for p in peers:
        await p.aclose()
    return {"idle_clients": len(peers), "kib_per_client": round((after - before) / len(peers), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--idle", type=int, default=1000)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hm-bench-"))
    env = {
        **os.environ,
        "HIVECALL_HOME": str(home),
        "HIVECALL_OWNER_TOKEN": "bench-owner-token-0123456789",
        "HIVECALL_LOG_LEVEL": "warning",
    }
    hivecall = [sys.executable, "-m", "hivecall"]
    out = subprocess.run(
        [*hivecall, "hivemind", "add-client", "--name", "bench"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    key = next(x.split()[-1] for x in out.splitlines() if "access key:" in x)
    pw = next(x.split()[-1] for x in out.splitlines() if "password:" in x)
    port, hm_port = free_port(), free_port()
    proc = subprocess.Popen(
        [*hivecall, "serve", "--port", str(port), "--hivemind-port", str(hm_port)],
        env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(3)
        result: dict[str, object] = {}
        result.update(asyncio.run(handshakes(hm_port, key, pw)))
        for n in sorted({1, args.clients}):
            result[f"rt_{n}"] = asyncio.run(round_trips(hm_port, key, pw, n, args.seconds))
        if args.idle:
            result.update(asyncio.run(idle(hm_port, key, pw, args.idle, proc.pid)))
        print(json.dumps(result, indent=2))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
