"""The leak scanner itself: it sees responses, logs at DEBUG and the store, and it catches a leak
when there is one.

The session-wide scanner (tests/conftest.py) fails the run if any hub response, log record or
database file during the suite holds a watched secret; these tests prove that net has no holes.
"""

from __future__ import annotations

import base64
import logging
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hivecall.hivemind.clients import HiveClients
from hivecall.secretbox import SecretBox
from hivecall.settings import Settings
from hivecall.store import Store
from hivecall.store.models import Meta
from tests import keys
from tests.conftest import HUB_URL, SCANNER
from tests.keys import FAKE_OPENAI_KEY, WATCHED_SECRETS
from tests.leakscan import CLIENT_EXCUSE, PINNED_EXCUSE, LeakScanner, failing, install

TESTS = Path(__file__).parent


@pytest.fixture
def planted() -> Iterator[None]:
    """The session scanner sees the leaks these tests plant, and they are not the hub's: they
    are taken off its list again."""
    before = len(SCANNER.leaks)
    yield
    del SCANNER.leaks[before:]


@pytest.fixture
def scanner(planted: None) -> Iterator[LeakScanner]:
    """A scanner of its own, installed for the test."""
    mine = LeakScanner((FAKE_OPENAI_KEY,), client_url=HUB_URL)
    uninstall = install(mine)
    try:
        yield mine
    finally:
        uninstall()


async def test_the_session_scanner_is_watching(client: httpx.AsyncClient) -> None:
    before = (SCANNER.scanned_responses, SCANNER.scanned_logs)
    await client.get("/api/health")
    logging.getLogger("hivecall.test").info("a line")
    assert SCANNER.scanned_responses > before[0] and SCANNER.scanned_logs > before[1]
    assert set(WATCHED_SECRETS) <= set(SCANNER.secrets)


def test_every_logger_speaks_at_debug_to_the_scanner() -> None:
    """hivecall's own debug lines, and the libraries' the hub pins at WARNING (what they would
    say if the pin were gone): each test runs with every logger at DEBUG."""
    for name in ("hivecall.anything", "aiosqlite", "sqlalchemy.engine.Engine", "websockets.server"):
        logger = logging.getLogger(name)
        assert logger.isEnabledFor(logging.DEBUG), name
        before = SCANNER.scanned_logs
        logger.debug("a debug line")
        assert SCANNER.scanned_logs == before + 1, name


async def test_a_leak_is_caught(scanner: LeakScanner) -> None:
    async def leaky(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"your key is {FAKE_OPENAI_KEY}")

    app = Starlette(routes=[Route("/leak", leaky)])
    app.state.hub = object()  # looks like a hub to the scanner
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c:
        await c.get("/leak")
    logging.getLogger("hivecall.leaky").warning("key=%s", FAKE_OPENAI_KEY)
    logging.getLogger("hivecall.leaky").info("fields", extra={"key": FAKE_OPENAI_KEY})
    wheres = [leak.where for leak in scanner.leaks]
    assert wheres == [
        "response body of /leak",
        "log record of hivecall.leaky",
        "log record of hivecall.leaky",
    ]


def test_a_debug_record_is_caught_even_where_no_handler_would_see_it(
    scanner: LeakScanner,
) -> None:
    hidden = logging.getLogger("some.library")
    hidden.propagate = False  # as uvicorn's loggers are: the root's handlers never see these
    try:
        hidden.debug("connecting with %s", FAKE_OPENAI_KEY)
    finally:
        hidden.propagate = True
    logging.getLogger("aiosqlite").debug("executing %r", ("INSERT …", (FAKE_OPENAI_KEY,)))
    logging.getLogger("websockets.server").warning("%s went wrong", FAKE_OPENAI_KEY)
    found = [(leak.where, leak.excuse) for leak in scanner.leaks]
    assert found == [
        ("log record of some.library", ""),
        # below WARNING from a pinned logger: a hub never emits it, so it is only reported
        ("log record of aiosqlite", PINNED_EXCUSE),
        ("log record of websockets.server", ""),
    ]
    assert failing(scanner.leaks) == [scanner.leaks[0], scanner.leaks[2]]


def test_a_test_clients_own_request_line_is_only_reported(scanner: LeakScanner) -> None:
    """httpx logs the URL of each request: a test signing in by /?token=… says the token itself.
    The same line for a request the hub makes (to anywhere else) fails the run."""
    line = 'HTTP Request: %s %s "%s %d %s"'
    for url in (f"{HUB_URL}/?token={FAKE_OPENAI_KEY}", f"https://api.example/?k={FAKE_OPENAI_KEY}"):
        logging.getLogger("httpx").info(line, "GET", httpx.URL(url), "HTTP/1.1", 303, "See Other")
    assert [leak.excuse for leak in scanner.leaks] == [CLIENT_EXCUSE, ""]
    assert failing(scanner.leaks) == [scanner.leaks[1]]


@pytest.mark.parametrize("useragent", ["", "a", "ab", "hivemind-satellite"])
def test_an_encoded_secret_is_caught(useragent: str) -> None:
    """A HiveMind `authorization` query is base64 of `useragent:access_key`, whatever the
    useragent's length; URLs percent-encode."""
    scanner = LeakScanner(("k3y/with+odd=chars-0123456789",))
    secret = scanner.secrets[0]
    auth = base64.b64encode(f"{useragent}:{secret}".encode()).decode()
    for text in (
        f"< GET /?authorization={auth} HTTP/1.1",
        f"/?authorization={urllib.parse.quote(auth)}",
        base64.urlsafe_b64encode(f"{useragent}{secret}!".encode()).decode(),
        f"https://hub/?key={urllib.parse.quote(secret)}",
    ):
        assert scanner.found_in(text) == [secret], text
    assert scanner.found_in("nothing to see " + base64.b64encode(b"other").decode()) == []


async def test_a_secret_in_a_sqlite_file_is_caught(planted: None) -> None:
    scanner = LeakScanner((FAKE_OPENAI_KEY,))
    folder = Path(tempfile.mkdtemp())  # not under tmp_path: the session scanner reads that
    try:
        store = Store(url=f"sqlite:///{folder / 'home' / 'hub.db'}")
        await store.migrate()
        await store.set_meta("planted", FAKE_OPENAI_KEY)
        scanner.scan_database_files(folder, test="t")  # the WAL file holds it while open
        await store.aclose()
        scanner.scan_database_files(folder, test="t")  # the database file after the checkpoint
        scanner.scan_database_files(folder, test="t")  # unchanged files are not read again
    finally:
        shutil.rmtree(folder)
    assert [leak.where for leak in scanner.leaks] == [
        f"database file {folder / 'home' / 'hub.db-wal'}",
        f"database file {folder / 'home' / 'hub.db'}",
    ]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_secret_in_a_postgresql_table_is_caught(database_url: str, planted: None) -> None:
    scanner = LeakScanner((FAKE_OPENAI_KEY,))
    store = Store(url=database_url)
    await store.migrate()
    await store.set_meta("planted", f"json-ish {{'k': '{FAKE_OPENAI_KEY}'}}")
    try:
        await scanner.scan_postgres(database_url, test="t")
    finally:
        async with store.session() as s, s.begin():
            await s.execute(delete(Meta).where(Meta.key == "planted"))
        await store.aclose()
    assert [leak.where for leak in scanner.leaks] == ["PostgreSQL table meta"]
    assert scanner.scanned_rows >= 1


async def test_hivemind_credentials_are_watched_from_when_they_are_made(
    app: Starlette, settings: Settings
) -> None:
    hub = app.state.hub
    clients = HiveClients(store=hub.store, box=SecretBox.open(settings.home), agents=hub.agents)
    _, key, password = await clients.add(name="sat")  # both generated
    assert SCANNER.found_in(f"x {password} y") == [password]
    assert SCANNER.found_in(base64.b64encode(f"ua:{key}".encode()).decode()) == [key]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("runtimes/conftest.py", keys.HUB_OPENAI_KEY),
        ("runtimes/test_openai_chat.py", keys.OPENAI_CHAT_AGENT_KEY),
        ("hivemind/test_client.py", keys.HIVEMIND_AGENT_PASSWORD),
        ("test_agent_isolation.py", keys.ISOLATION_OWNER_TOKEN),
        ("test_agent_isolation.py", keys.ISOLATION_DB_PASSWORD),
        ("scripts/fake_agent.py", keys.AGENT_STDERR_KEY),
    ],
)
def test_the_secrets_other_tests_configure_are_the_watched_ones(where: str, value: str) -> None:
    """tests/keys.py repeats them: a test that changes its value must change it there too."""
    assert value in (TESTS / where).read_text() and value in WATCHED_SECRETS
