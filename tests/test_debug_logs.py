"""What the hub's log says about its store and its HiveMind handshakes, at any log level: never a
statement's values, never a client's access key.

SQLAlchemy and the drivers log every statement's bound values at DEBUG (aiosqlite) or INFO
(sqlalchemy.engine), and websockets logs each handshake's request line, whose `authorization`
query carries a HiveMind client's access key. hivecall pins them at WARNING, also at
HIVECALL_LOG_LEVEL=debug; and a failing statement's error names the statement, not its values.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, StatementError

from hivecall.logs import PINNED, FieldsFormatter, setup_logging
from hivecall.store import Store
from tests.hivemind.peer import Peer
from tests.hivemind.test_serve import credentials, hivecall, serve
from tests.leakscan import LeakScanner
from tests.standins.threaded import free_port

SECRET_VALUE = "a-bound-value-the-log-never-shows-0123456789"


LOGGERS = ("hivecall.http_api", "uvicorn.error")  # the hub logs an unexpected error, then uvicorn


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """The records of LOGGERS, as any handler of the host process would get them."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep(level=logging.DEBUG)
    for name in LOGGERS:
        logging.getLogger(name).addHandler(keep)
    try:
        yield seen
    finally:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(keep)


def told(record: logging.LogRecord) -> str:
    """The record as the hub's formatter and as a plain one (uvicorn's, a host's) print it."""
    plain = logging.Formatter("%(levelname)s %(name)s %(message)s").format(record)
    return FieldsFormatter("%(message)s").format(record) + "\n" + plain


async def test_a_failing_statement_is_logged_without_its_values(
    database_url: str, records: list[logging.LogRecord]
) -> None:
    store = Store(url=database_url)
    await store.migrate()
    await store.set_meta("taken", "x")
    try:
        with pytest.raises(StatementError) as duplicate:
            async with store.engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO meta (key, value) VALUES (:k, :v)"),
                    {"k": "taken", "v": SECRET_VALUE},
                )
        # PostgreSQL quotes the input it refuses (asyncpg's DataError the value it could not
        # encode); SQLite refuses to bind a value that is neither a number nor text.
        wrong: object = {SECRET_VALUE: 1} if store.is_sqlite else SECRET_VALUE
        with pytest.raises(StatementError) as bad_input:
            async with store.engine.begin() as conn:
                await conn.execute(text("SELECT CAST(:v AS INTEGER)"), {"v": wrong})
    finally:
        await store.aclose()
    try:
        raise RuntimeError("the turn could not be stored") from bad_input.value
    except RuntimeError as e:
        caused = e
    grouped = ExceptionGroup("a task group failed", [ValueError("other"), bad_input.value])
    hub_log, uvicorn_log = (logging.getLogger(name) for name in LOGGERS)
    for caught in (duplicate.value, bad_input.value, caused, grouped):
        hub_log.error("unhandled error", exc_info=caught, extra={"path": "/api/x"})
        uvicorn_log.error("Exception in ASGI application", exc_info=caught)
    logged = [r for r in records if r.exc_info]
    assert len(logged) == 8
    for record in logged:
        shown = told(record)
        assert SECRET_VALUE[:20] not in shown, shown
        assert "[parameters" not in shown
    # What was wrong and where is still said: the statement and the error's class.
    assert "[SQL: INSERT INTO meta (key, value) VALUES" in told(logged[0])
    assert "IntegrityError" in told(logged[0]) or "UniqueViolation" in told(logged[0])
    assert isinstance(duplicate.value, DBAPIError) and duplicate.value.hide_parameters


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_library_loggers_are_pinned_at_warning_even_at_debug(restored_logging: None) -> None:
    setup_logging("debug")
    assert logging.getLogger("hivecall.bridge").isEnabledFor(logging.DEBUG)
    for name in (*PINNED, "sqlalchemy.engine.Engine", "websockets.server"):
        logger = logging.getLogger(name)
        assert not logger.isEnabledFor(logging.INFO), name
        assert logger.isEnabledFor(logging.WARNING), name


@pytest.mark.slow
def test_a_hub_at_debug_logs_no_statement_values_nor_access_keys(tmp_path: Path) -> None:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HIVECALL_HOME": str(tmp_path / "hub"),
        "HIVECALL_OWNER_TOKEN": "owner-token-for-debug-log-tests-0123",
        "HIVECALL_LOG_LEVEL": "debug",
    }
    key, password = credentials(hivecall(env, "hivemind", "add-client", "--name", "sat"))
    hm_port = free_port()

    async def talk() -> None:
        peer = await Peer.connect(hm_port, key, password)
        await peer.handshake()
        await peer.utter("hello over the wire")
        await peer.recv_bus()
        await peer.aclose()

    with serve(env, tmp_path, "--hivemind-port", str(hm_port)) as hub:
        asyncio.run(talk())
    err = hub.err
    assert " DEBUG hivecall.store.db: store opened backend='sqlite'" in err  # at DEBUG indeed
    assert "INFO hivecall.hivemind.server: HiveMind client connected client='sat'" in err
    pinned = "|".join(re.escape(name) for name in PINNED)
    below_warning = re.compile(rf" (?:DEBUG|INFO) (?:{pinned})[.:]")
    assert not below_warning.search(err), below_warning.search(err)
    assert LeakScanner((key, password, env["HIVECALL_OWNER_TOKEN"])).found_in(err) == []
