"""A real livekit-server (the Go SFU) for benchmarks, from scripts/livekit-server.sh.

`install()` builds it once (a cached `go install`) and returns the binary, or raises
`Unavailable` when there is no Go or the build fails; `running(...)` starts it on free ports of
127.0.0.1 with the given key and secret, waits until `GET /` answers "OK", and always stops it.
The same lifecycle as tests/livekit_real/conftest.py's fixture, without pytest: the server runs
in a process group of its own, dies with this process (PR_SET_PDEATHSIG), and is stopped with
SIGTERM twice, then SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "livekit-server.sh"
NO_GO = 3  # scripts/livekit-server.sh's exit status when there is no Go to build with
INSTALL_TIMEOUT = 1800.0  # a first build takes minutes
START_TIMEOUT = 30.0
START_ATTEMPTS = 3

PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # bound before any fork: the child only calls it


class Unavailable(RuntimeError):
    """No livekit-server to run here (no Go, or it could not be built)."""


class StartFailed(RuntimeError):
    """The server is installed but did not come up."""


@dataclass(frozen=True)
class LiveKitServer:
    """A running server: `url` (http://127.0.0.1:PORT, for LiveKitAPI and LIVEKIT_URL), `ws_url`,
    its ports, credentials, process id (the binary's: the script execs it), version and log."""

    url: str
    port: int
    udp_port: int
    api_key: str
    api_secret: str
    pid: int
    version: str
    log: Path

    @property
    def ws_url(self) -> str:
        """For participants and workers (as conftest.py's RealLiveKit has it)."""
        return f"ws://127.0.0.1:{self.port}"


def install() -> Path:
    """The server's binary, built first if needed."""
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT), "install"],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise Unavailable(f"building livekit-server took over {INSTALL_TIMEOUT:.0f} s") from e
    last = (done.stderr.strip().splitlines() or [""])[-1]
    if done.returncode == NO_GO:
        raise Unavailable(f"no Go to build livekit-server with ({last[:200]})")
    if done.returncode != 0:
        raise Unavailable(f"scripts/livekit-server.sh install failed: {last[:300]}")
    return Path(done.stdout.strip().splitlines()[-1])


def version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip().rsplit(" ", 1)[-1] or "unknown"


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, again (livekit-server drops one that comes in its first ~100 ms, and a second
    one stops it without waiting for participants to leave), then SIGKILL: the whole group."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def _start(key: str, secret: str, log: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    # A port taken between choosing and binding makes the server exit at once: try others.
    proc: subprocess.Popen[bytes] | None = None
    for _attempt in range(START_ATTEMPTS):
        port, udp_port = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
        env = os.environ | {"LIVEKIT_API_KEY": key, "LIVEKIT_API_SECRET": secret}
        with log.open("ab") as out:
            # Call this from the thread that outlives the server (the main thread): the death
            # signal fires when the *thread* that forked it ends, not only the process.
            proc = subprocess.Popen(
                ["bash", str(SCRIPT), "run", "--port", str(port), "--udp-port", str(udp_port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # prctl only (no import or allocation in the child)
            )
        atexit.register(_stop, proc)
        deadline = time.monotonic() + START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                if answer.status_code == 200 and answer.text == "OK":
                    return proc, port, udp_port
            time.sleep(0.02)
        if proc.poll() is None:
            _stop(proc)
            raise StartFailed(
                f"livekit-server did not answer in {START_TIMEOUT:.0f} s:\n{_tail(log)}"
            )
    status = proc.returncode if proc else None
    raise StartFailed(f"livekit-server exited at start (status {status}):\n{_tail(log)}")


@contextlib.contextmanager
def running(binary: Path, *, api_key: str, api_secret: str) -> Iterator[LiveKitServer]:
    """Run the server for the block; its log lives in a temporary directory removed after."""
    with tempfile.TemporaryDirectory(prefix="hivecall-bench-livekit-") as tmp:
        log = Path(tmp) / "server.log"
        proc, port, udp_port = _start(api_key, api_secret, log)
        try:
            yield LiveKitServer(
                url=f"http://127.0.0.1:{port}",
                port=port,
                udp_port=udp_port,
                api_key=api_key,
                api_secret=api_secret,
                pid=proc.pid,
                version=version(binary),
                log=log,
            )
        finally:
            _stop(proc)
