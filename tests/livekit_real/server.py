"""A real livekit-server (the Go SFU) from scripts/livekit-server.sh, for tests and benchmarks.

`install()` builds it once (a cached `go install`) and returns the binary, raising `NoGo` when
there is no Go and `Unavailable` when the build fails; `running(...)` starts it on free ports of
127.0.0.1 with the given key and secret, waits until `GET /` answers "OK", and always stops it.
The server runs in a process group of its own, dies with the process that started it
(PR_SET_PDEATHSIG), and is stopped with SIGTERM twice, then SIGKILL. `client_interface()` gives
LiveKit's own clients the network interface they need in the loopback-only namespace.
No pytest here: tests/livekit_real/conftest.py turns these errors into skips and failures.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ipaddress
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from livekit import api

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "livekit-server.sh"
NO_GO = 3  # scripts/livekit-server.sh's exit status when there is no Go to build with
INSTALL_TIMEOUT = 1800.0  # a first build takes minutes
START_TIMEOUT = 30.0
START_ATTEMPTS = 3
# The veth pair client_interface() adds inside the test namespace, and its address.
CLIENT_IF, CLIENT_PEER, CLIENT_IP = "hc-lk0", "hc-lk1", "198.18.0.1"

PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # bound before any fork: the child only calls it


class Unavailable(RuntimeError):
    """No livekit-server to run here (it could not be built, or its clients have no network)."""


class NoGo(Unavailable):
    """No Go toolchain to build livekit-server with."""


class StartFailed(RuntimeError):
    """The server is installed but did not come up."""


@dataclass(frozen=True)
class RealLiveKit:
    """A running livekit-server: `url` (http://127.0.0.1:PORT, for LiveKitAPI and the hub's
    LIVEKIT_URL), `ws_url` (for participants and workers), its ports, credentials, process id
    (the binary's: the script execs it), binary, log file, and how long install and start
    took."""

    url: str
    port: int
    udp_port: int
    api_key: str
    api_secret: str
    pid: int
    binary: Path
    log: Path
    install_seconds: float
    start_seconds: float

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def token(self, identity: str, room: str, *, name: str = "", agent: bool = False) -> str:
        """A participant's join token for one room (publish, subscribe, data)."""
        grants = api.VideoGrants(
            room_join=True,
            room=room,
            can_publish=True,
            can_subscribe=True,
            can_publish_data=True,
            agent=agent or None,
        )
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_grants(grants)
            .with_ttl(timedelta(minutes=10))
        )
        if name:
            token = token.with_name(name)
        if agent:
            token = token.with_kind("agent")
        return token.to_jwt()


def install() -> tuple[Path, float]:
    """The server's binary, built first if needed, and the seconds that took."""
    started = time.monotonic()
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
    if done.returncode == NO_GO:
        raise NoGo(f"no Go to build livekit-server with: {done.stderr.strip()[-300:]}")
    if done.returncode != 0:
        raise Unavailable(f"scripts/livekit-server.sh install failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1]), time.monotonic() - started


def version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip().rsplit(" ", 1)[-1] or "unknown"


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop(proc: subprocess.Popen[bytes]) -> None:
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


def start(key: str, secret: str, log: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start the server on free ports and wait until it answers `GET /` with OK. A port taken
    between choosing and binding makes it exit at once: then try other ports. Call this from
    the thread that outlives the server (the main thread): the death signal fires when the
    *thread* that forked it ends, not only the process."""
    proc: subprocess.Popen[bytes] | None = None
    for _attempt in range(START_ATTEMPTS):
        port, udp_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
        env = os.environ | {"LIVEKIT_API_KEY": key, "LIVEKIT_API_SECRET": secret}
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["bash", str(SCRIPT), "run", "--port", str(port), "--udp-port", str(udp_port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # prctl only (no import or allocation in the child)
            )
        atexit.register(stop, proc)
        deadline = time.monotonic() + START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                if answer.status_code == 200 and answer.text == "OK":
                    return proc, port, udp_port
            time.sleep(0.02)
        if proc.poll() is None:
            stop(proc)
            raise StartFailed(
                f"livekit-server did not answer in {START_TIMEOUT:.0f} s:\n{_tail(log)}"
            )
    status = proc.returncode if proc else None
    raise StartFailed(f"livekit-server exited at start (status {status}):\n{_tail(log)}")


@contextlib.contextmanager
def running(*, api_key: str, api_secret: str, log: Path | None = None) -> Iterator[RealLiveKit]:
    """Install (if needed) and run the server for the block. Without `log`, its log lives in a
    temporary directory removed after."""
    binary, install_seconds = install()
    with contextlib.ExitStack() as stack:
        if log is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="hivecall-livekit-"))
            log = Path(tmp) / "server.log"
        started = time.monotonic()
        proc, port, udp_port = start(api_key, api_secret, log)
        stack.callback(stop, proc)
        yield RealLiveKit(
            url=f"http://127.0.0.1:{port}",
            port=port,
            udp_port=udp_port,
            api_key=api_key,
            api_secret=api_secret,
            pid=proc.pid,
            binary=binary,
            log=log,
            install_seconds=install_seconds,
            start_seconds=time.monotonic() - started,
        )


def _other_ipv4_address() -> bool:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) > 3 and not ipaddress.ip_interface(fields[3]).ip.is_loopback:
            return True
    return False


@contextlib.contextmanager
def client_interface() -> Iterator[None]:
    """What LiveKit's own clients need to reach the server in the loopback-only namespace.

    The Rust SDK under `livekit.rtc` (and so `livekit-agents` workers) is libwebrtc, which
    gathers no ICE candidates on loopback interfaces: with only `lo`, it never connects
    ("wait_pc_connection timed out"). A veth pair inside the namespace, with an address of the
    benchmarking range 198.18.0.0/15, gives it one; its packets to 127.0.0.1 stay on `lo`.
    It is taken down after the block, so what runs next sees the namespace as
    scripts/with-netns.sh made it. Outside that namespace the machine's own interfaces serve
    (and are never changed)."""
    if os.environ.get("HIVECALL_TEST_NETNS") != "1" or _other_ipv4_address():
        yield
        return
    if os.geteuid() != 0:
        raise Unavailable("LiveKit clients need a non-loopback interface; adding one takes root")
    for cmd in (
        ["ip", "link", "add", CLIENT_IF, "type", "veth", "peer", "name", CLIENT_PEER],
        ["ip", "addr", "add", f"{CLIENT_IP}/32", "dev", CLIENT_IF],
        ["ip", "link", "set", CLIENT_PEER, "up"],
        ["ip", "link", "set", CLIENT_IF, "up"],
    ):
        subprocess.run(cmd, check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["ip", "link", "del", CLIENT_IF], capture_output=True)
