"""`hivecall serve` starts the HiveMind listener; `--hivemind-port 0` and a taken port do not."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hivemind.conftest import free_port
from tests.hivemind.peer import Peer

HIVECALL = [sys.executable, "-m", "hivecall"]
pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HIVECALL_HOME": str(tmp_path / "hub"),
        "HIVECALL_OWNER_TOKEN": "owner-token-for-serve-tests-0123",
    }


def hivecall(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([*HIVECALL, *args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        self.err = ""


@contextlib.contextmanager
def serve(env: dict[str, str], cwd: Path, *args: str) -> Iterator[Served]:
    port = free_port()
    proc = subprocess.Popen(
        [*HIVECALL, "serve", "--port", str(port), *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(proc, port)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("hub did not start")
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        served.err = proc.communicate(timeout=20)[1]


def credentials(out: str) -> tuple[str, str]:
    key = next(line.split()[-1] for line in out.splitlines() if "access key:" in line)
    pw = next(line.split()[-1] for line in out.splitlines() if "password:" in line)
    return key, pw


def test_serve_answers_hivemind_clients(env: dict[str, str], tmp_path: Path) -> None:
    key, password = credentials(hivecall(env, "hivemind", "add-client", "--name", "sat"))
    hm_port = free_port()

    async def talk() -> tuple[str, str]:
        peer = await Peer.connect(hm_port, key, password)
        await peer.handshake()
        await peer.utter("hello over the wire")
        first = (await peer.recv_bus())[0]
        second = (await peer.recv_bus())[0]
        await peer.aclose()
        return first, second

    async def revoked() -> tuple[int | None, str | None]:
        peer = await Peer.connect(hm_port, key, password)
        await peer.handshake()
        # revocation from another process reaches the open connection
        await asyncio.to_thread(hivecall, env, "hivemind", "delete-client", "sat")
        return await peer.closed(timeout=10)

    with serve(env, tmp_path, "--hivemind-port", str(hm_port)) as hub:
        assert asyncio.run(talk()) == ("speak", "ovos.utterance.handled")
        assert asyncio.run(revoked()) == (1008, "client revoked")
    assert f"HiveMind listener on 127.0.0.1:{hm_port}" in hub.err
    assert password not in hub.err and key not in hub.err


def test_a_taken_port_does_not_stop_the_hub(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with serve(env, tmp_path, "--hivemind-port", str(taken.getsockname()[1])) as hub:
            assert hub.proc.poll() is None
    assert "HiveMind listener not started" in hub.err


def test_hivemind_port_zero_starts_no_listener(env: dict[str, str], tmp_path: Path) -> None:
    hm_port = free_port()
    env = {**env, "HIVECALL_HIVEMIND_PORT": str(hm_port)}
    with (
        serve(env, tmp_path, "--hivemind-port", "0"),
        socket.socket() as probe,
        pytest.raises(OSError),
    ):
        probe.connect(("127.0.0.1", hm_port))
