"""Fixtures that boot the real app on SQLite and on PostgreSQL.

Every test that uses `hub_url` (and so `app`, `client`) runs once per backend. PostgreSQL comes
from HIVECALL_TEST_PG_URL (make test starts a throwaway server); each test gets a database of
its own. Without that URL the PostgreSQL cases are skipped, unless HIVECALL_TEST_REQUIRE_PG=1
(as in make test and CI), where they fail instead.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest
from starlette.applications import Starlette

from hivecall.app import create_app
from hivecall.settings import Settings
from tests.keys import OWNER_TOKEN, WATCHED_SECRETS
from tests.leakscan import LeakScanner, failing, install, report

OWNER = OWNER_TOKEN
# What every owner's request carries (read-only: spread it to add headers).
OWNER_HEADERS: Mapping[str, str] = MappingProxyType({"authorization": f"Bearer {OWNER}"})
# The address test clients reach the app at: a name the hub answers to (boundary.py).
HUB_URL = "http://127.0.0.1:8765"
SCRIPTS = Path(__file__).parent / "scripts"


SCANNER = LeakScanner(WATCHED_SECRETS, client_url=HUB_URL)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config.add_cleanup(install(SCANNER))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No watched secret reaches a response, a log record or the store (tests/leakscan.py)."""
    if failing(SCANNER.leaks):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(SCANNER.summary())
    if SCANNER.leaks:
        terminalreporter.write_line(report(SCANNER.leaks), red=bool(failing(SCANNER.leaks)))


@pytest.fixture(scope="session", autouse=True)
def _scan_long_lived_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The SQLite files of fixtures that outlive a test are read once the run is over."""
    yield
    SCANNER.scan_database_files(tmp_path_factory.getbasetemp(), test="(end of the run)")


@pytest.fixture(autouse=True)
def _leak_scan(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test is watched at DEBUG, and the SQLite files it leaves are read for secrets."""
    SCANNER.every_logger_at_debug()
    yield
    tmp = request.node.funcargs.get("tmp_path")
    if isinstance(tmp, Path):
        SCANNER.scan_database_files(tmp)
    SCANNER.forget_made()


@pytest.fixture(autouse=True)
def _drop_cli_log_handlers() -> Iterator[None]:
    """A CLI command run in-process (CliRunner) installs hivecall's stderr log handler on a
    stream that closes with the run: take it off again."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "hivecall", False)]:
        root.removeHandler(handler)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
        return
    base = os.environ.get("HIVECALL_TEST_PG_URL")
    if not base:
        if os.environ.get("HIVECALL_TEST_REQUIRE_PG") == "1":
            pytest.fail("HIVECALL_TEST_PG_URL is not set but PostgreSQL tests are required")
        pytest.skip("no PostgreSQL (set HIVECALL_TEST_PG_URL or run `make test`)")
    import asyncpg

    name = f"hc_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = base.rsplit("/", 1)[0] + f"/{name}"
    yield url
    try:
        await SCANNER.scan_postgres(url)
    finally:
        admin = await asyncpg.connect(base)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    return ws


@pytest.fixture
def environ() -> dict[str, str]:
    """The environment agent processes get: PATH without any real coding CLIs on it."""
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url, owner_token=OWNER)


@pytest.fixture
async def app(
    settings: Settings, environ: dict[str, str], workspace: Path
) -> AsyncIterator[Starlette]:
    application = create_app(settings, environ=environ, workspace=workspace)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def anon(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=HUB_URL) as c:
        yield c


def owner_client(app: Starlette | None = None, *, base_url: str = HUB_URL) -> httpx.AsyncClient:
    """The owner's HTTP client: on `app` in-process when given, else over the network."""
    transport = httpx.ASGITransport(app=app) if app is not None else None
    return httpx.AsyncClient(
        transport=transport, base_url=base_url, headers=OWNER_HEADERS, timeout=30
    )


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with owner_client(app) as c:
        yield c


def script(name: str) -> str:
    """A command template running one of tests/scripts/ with this Python."""
    return f"{sys.executable} {SCRIPTS / name}"
