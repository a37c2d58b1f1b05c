"""A real livekit-server for the session (`livekit_server`), the network its clients need
(`client_network`), and a hub whose LiveKit settings point at the server (`settings`).

The server is server.py's: scripts/livekit-server.sh `install` (a cached `go install`; without
Go the tests skip, or fail under HIVECALL_TEST_REQUIRE_BROWSER=1), then `run` on free ports of
127.0.0.1 with a key and secret made for this session. It runs in a process group of its own,
is stopped when the session ends, and is killed with the test process if that dies first
(PR_SET_PDEATHSIG), so no server outlives a run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from livekit import api, rtc

from hivecall.settings import Settings
from tests.conftest import OWNER, SCANNER
from tests.keys import FAKE_OPENAI_KEY
from tests.livekit_real.server import (
    NoGo,
    RealLiveKit,
    StartFailed,
    Unavailable,
    client_interface,
    running,
)

REQUIRED = os.environ.get("HIVECALL_TEST_REQUIRE_BROWSER") == "1"

TIMINGS: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in TIMINGS:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealLiveKit]:
    log = tmp_path_factory.mktemp("livekit-server") / "server.log"
    key, secret = f"APIreal{secrets.token_hex(4)}", secrets.token_urlsafe(32)
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running(api_key=key, api_secret=secret, log=log))
        except NoGo as e:
            if REQUIRED:
                pytest.fail(f"no real LiveKit server: {e} (HIVECALL_TEST_REQUIRE_BROWSER=1)")
            pytest.skip(f"no real LiveKit server: {e}")
        except (Unavailable, StartFailed) as e:
            pytest.fail(str(e))
        TIMINGS.append(
            f"livekit-server ({server.binary}): install {server.install_seconds:.2f} s, "
            f"start {server.start_seconds:.2f} s, log {log}"
        )
        yield server


@pytest.fixture(autouse=True)
def _watch_the_secret(livekit_server: RealLiveKit) -> None:
    """The server's secret is the hub's LIVEKIT_API_SECRET here: the leak scanner looks for it
    in every response, log record and store, as for the fixed test secrets."""
    SCANNER.watch(livekit_server.api_secret)


@pytest.fixture(scope="package")
def client_network() -> Iterator[None]:
    """The interface LiveKit's own clients need in the loopback-only namespace (server.py's
    `client_interface`), for this package's tests; taken down after them."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(client_interface())
        except Unavailable as e:
            pytest.skip(str(e))
        yield


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
