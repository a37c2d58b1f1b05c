"""A real livekit-server for the session (`livekit_server`), the network its clients need
(`client_network`), and a hub whose LiveKit settings point at the server (`settings`).

The server comes from scripts/livekit-server.sh: `install` (a cached `go install`; without Go
the tests skip, or fail under HIVECALL_TEST_REQUIRE_BROWSER=1), then `run` on free ports of
127.0.0.1 with a key and secret made for this session. It runs in a process group of its own,
is stopped when the session ends, and is killed with the test process if that dies first
(PR_SET_PDEATHSIG), so no server outlives a run.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from livekit import api, rtc

from hivecall.settings import Settings
from tests.conftest import OWNER, SCANNER
from tests.keys import FAKE_OPENAI_KEY

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "livekit-server.sh"
NO_GO = 3  # scripts/livekit-server.sh's exit status when there is no Go to build with
REQUIRED = os.environ.get("HIVECALL_TEST_REQUIRE_BROWSER") == "1"
START_TIMEOUT = 30.0
# The veth pair client_network adds inside the test namespace, and its address.
CLIENT_IF, CLIENT_PEER, CLIENT_IP = "hc-lk0", "hc-lk1", "198.18.0.1"

PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # bound before any fork: the child only calls it


@dataclass(frozen=True)
class RealLiveKit:
    """A running livekit-server: `url` (http://127.0.0.1:PORT, for LiveKitAPI and the hub's
    LIVEKIT_URL), `ws_url` (for participants and workers), its ports, credentials, process id,
    log file, and how long install and start took."""

    url: str
    ws_url: str
    port: int
    udp_port: int
    api_key: str
    api_secret: str
    pid: int
    log: Path
    install_seconds: float
    start_seconds: float

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


TIMINGS: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in TIMINGS:
        terminalreporter.write_line(line)


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _install() -> tuple[Path, float]:
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(SCRIPT), "install"], capture_output=True, text=True, timeout=1800
    )
    if done.returncode == NO_GO:
        reason = f"no real LiveKit server: {done.stderr.strip()}"
        if REQUIRED:
            pytest.fail(reason + " (HIVECALL_TEST_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    if done.returncode != 0:
        pytest.fail(f"scripts/livekit-server.sh install failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1]), time.monotonic() - started


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


def _start(log: Path, key: str, secret: str) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start the server on free ports and wait until it answers `GET /` with OK. A port taken
    between choosing and binding makes it exit at once: then try other ports."""
    for _attempt in range(3):
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
                # prctl only, bound before the fork (no import or allocation in the child)
                preexec_fn=_die_with_parent,
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
            pytest.fail(f"livekit-server did not answer in {START_TIMEOUT:.0f} s:\n{_tail(log)}")
    pytest.fail(f"livekit-server exited at start (status {proc.returncode}):\n{_tail(log)}")


@pytest.fixture(scope="session")
def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealLiveKit]:
    binary, install_seconds = _install()
    log = tmp_path_factory.mktemp("livekit-server") / "server.log"
    key, secret = f"APIreal{secrets.token_hex(4)}", secrets.token_urlsafe(32)
    started = time.monotonic()
    proc, port, udp_port = _start(log, key, secret)
    start_seconds = time.monotonic() - started
    TIMINGS.append(
        f"livekit-server ({binary}): install {install_seconds:.2f} s, "
        f"start {start_seconds:.2f} s, log {log}"
    )
    try:
        yield RealLiveKit(
            url=f"http://127.0.0.1:{port}",
            ws_url=f"ws://127.0.0.1:{port}",
            port=port,
            udp_port=udp_port,
            api_key=key,
            api_secret=secret,
            pid=proc.pid,
            log=log,
            install_seconds=install_seconds,
            start_seconds=start_seconds,
        )
    finally:
        _stop(proc)


@pytest.fixture(autouse=True)
def _watch_the_secret(livekit_server: RealLiveKit) -> None:
    """The server's secret is the hub's LIVEKIT_API_SECRET here: the leak scanner looks for it
    in every response, log record and store, as for the fixed test secrets."""
    SCANNER.watch(livekit_server.api_secret)


def _other_ipv4_address() -> bool:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) > 3 and not ipaddress.ip_interface(fields[3]).ip.is_loopback:
            return True
    return False


@pytest.fixture(scope="package")
def client_network() -> Iterator[None]:
    """What LiveKit's own clients need to reach the server in the loopback-only namespace.

    The Rust SDK under `livekit.rtc` (and so `livekit-agents` workers) is libwebrtc, which
    gathers no ICE candidates on loopback interfaces: with only `lo`, it never connects
    ("wait_pc_connection timed out"). A veth pair inside the namespace, with an address of the
    benchmarking range 198.18.0.0/15, gives it one; its packets to 127.0.0.1 stay on `lo`.
    It is taken down after this package's tests, so the other tests see the namespace as
    scripts/with-netns.sh made it. Outside a test namespace the machine's own interfaces
    serve."""
    if os.environ.get("HIVECALL_TEST_NETNS") != "1" or _other_ipv4_address():
        yield
        return
    if os.geteuid() != 0:
        pytest.skip("LiveKit clients need a non-loopback interface; adding one takes root")
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


@pytest.fixture
async def lkapi(livekit_server: RealLiveKit) -> AsyncIterator[api.LiveKitAPI]:
    """The unmodified `livekit-api` client pointed at the real server."""
    client = api.LiveKitAPI(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def join(livekit_server: RealLiveKit, client_network: None) -> AsyncIterator[JoinRoom]:
    """`await join(room, identity)`: a connected `rtc.Room`, disconnected after the test."""
    joiner = JoinRoom(livekit_server)
    try:
        yield joiner
    finally:
        await joiner.aclose()


class JoinRoom:
    def __init__(self, server: RealLiveKit) -> None:
        self.server = server
        self.rooms: list[rtc.Room] = []

    async def __call__(self, room: str, identity: str, *, token: str = "") -> rtc.Room:
        joined = rtc.Room()
        self.rooms.append(joined)
        await joined.connect(
            self.server.ws_url,
            token or self.server.token(identity, room),
            rtc.RoomOptions(connect_timeout=15),
        )
        return joined

    async def aclose(self) -> None:
        for joined in self.rooms:
            await joined.disconnect()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about LiveKit (both stores are covered elsewhere)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, livekit_server: RealLiveKit) -> Settings:
    """A hub with cloud calls on, its LIVEKIT_* settings pointing at the real server."""
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        owner_token=OWNER,
        openai_api_key=FAKE_OPENAI_KEY,
        cloud_calls=True,
        livekit_url=livekit_server.url,
        livekit_api_key=livekit_server.api_key,
        livekit_api_secret=livekit_server.api_secret,
    )
