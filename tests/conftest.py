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
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from hivecall.app import create_app
from hivecall.settings import Settings
from tests.keys import WATCHED_SECRETS
from tests.leakscan import LeakScanner, install, report

OWNER = "test-owner-token-0123456789abcdefghij"
# The address test clients reach the app at: a name the hub answers to (web/boundary.py).
HUB_URL = "http://127.0.0.1:8765"
SCRIPTS = Path(__file__).parent / "scripts"


SCANNER = LeakScanner(WATCHED_SECRETS)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config.add_cleanup(install(SCANNER))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The user's OpenAI key never reaches a response or a log line (see tests/leakscan.py)."""
    if SCANNER.leaks:
        session.config.get_terminal_writer().line(report(SCANNER.leaks), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
    yield base.rsplit("/", 1)[0] + f"/{name}"
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


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url=HUB_URL,
        headers={"authorization": f"Bearer {OWNER}"},
        timeout=30,
    ) as c:
        yield c


def script(name: str) -> str:
    """A command template running one of tests/scripts/ with this Python."""
    return f"{sys.executable} {SCRIPTS / name}"
