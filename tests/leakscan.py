"""Watch everything the hub says and keeps during the test run for the user's secrets.

Searched, for every secret the tests configure (tests/keys.py) and every HiveMind client's
access key and password as it is made, written plainly, base64-encoded (a HiveMind
`authorization` query carries base64) or percent-encoded:

- every HTTP response a hub app sends (JSON, pages, scripts, SSE streams), headers and body;
- every log record of every logger, at DEBUG: the run lowers every logger to DEBUG before each
  test, the pinned library loggers (hivecall.logs.PINNED) included, and reads records where
  they are made (Logger.handle), so loggers that do not propagate to the root are read too;
- the store: each SQLite file (`*.db`, `*.db-wal`, `*.db-journal`) under a test's tmp_path after
  the test, those of longer-lived fixtures at the end, and every row of every table of each
  test's PostgreSQL database before it is dropped.

A hit fails the run and names the test, the path, logger, file or table, and the secret's first
characters. Two kinds of hit are only reported, since they are not the hub speaking: a record
below WARNING from a pinned logger, which a hub never emits (tests/test_debug_logs.py proves the
pin), so it shows what the pin holds back; and the request line httpx logs for a test's own
client calling the app. HIVECALL_LEAKSCAN_STRICT=1 fails on those too. Installed for the whole
session by tests/conftest.py; `LeakScanner` is also used on its own to prove it catches leaks.
"""

from __future__ import annotations

import base64
import logging
import os
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from hivecall.hivemind.clients import HiveClients
from hivecall.logs import PINNED

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DATABASE_FILES = ("*.db", "*.db-wal", "*.db-journal", "*.sqlite", "*.sqlite3")
MIN_WATCHED = 12  # shorter values (test access keys such as "k") would match by chance


@dataclass
class Leak:
    test: str
    where: str
    secret: str
    excuse: str = ""  # why it does not fail the run: it is not the hub saying it

    def __str__(self) -> str:
        shown = self.secret[:6] + "…"
        note = f" ({self.excuse})" if self.excuse else ""
        return f"{self.test}: {self.where} contains the secret {shown}{note}"


def encodings(secret: str) -> set[str]:
    """Forms `secret` may take on the way out: itself, percent-encoded, and the part of its
    base64 (standard and URL-safe) that stays the same whatever bytes come before or after it."""
    raw = secret.encode()
    quote = urllib.parse.quote
    found = {secret, quote(secret), quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    for lead in range(3):
        encoded = base64.b64encode(b"\0" * lead + raw).decode()
        first = -(-lead // 3) * 4  # the first group made of the secret's bytes alone
        last = (lead + len(raw)) // 3 * 4
        if last - first >= 12:
            stable = encoded[first:last]
            found |= {stable, stable.replace("+", "-").replace("/", "_")}
    return found


def _test_name() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]


def _pinned(record: logging.LogRecord) -> bool:
    return record.levelno < logging.WARNING and any(
        record.name == name or record.name.startswith(name + ".") for name in PINNED
    )


PINNED_EXCUSE = "held back by the WARNING pin"
CLIENT_EXCUSE = "the test's own HTTP client's request line"


@dataclass
class LeakScanner:
    secrets: tuple[str, ...]
    # Where the tests' own httpx clients reach the app (ASGITransport): httpx logs each request's
    # URL, and a test that signs in by `/?token=…` is the caller saying the token, not the hub.
    client_url: str = ""
    leaks: list[Leak] = field(default_factory=list)
    scanned_responses: int = 0
    scanned_logs: int = 0
    scanned_files: int = 0
    scanned_rows: int = 0
    _needles: dict[str, str] = field(default_factory=dict)
    _made: dict[str, str] = field(default_factory=dict)
    _seen_files: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for secret in self.secrets:
            self._needles.update(dict.fromkeys(encodings(secret), secret))

    def watch(self, *secrets: str) -> None:
        """Look for these too until `forget_made` (secrets made during a test)."""
        for secret in secrets:
            if len(secret) >= MIN_WATCHED:
                self._made.update(dict.fromkeys(encodings(secret), secret))

    def forget_made(self) -> None:
        self._made.clear()

    def found_in(self, text: str | bytes) -> list[str]:
        needles = (self._needles | self._made).items()
        if isinstance(text, bytes):
            return sorted({secret for needle, secret in needles if needle.encode() in text})
        return sorted({secret for needle, secret in needles if needle in text})

    def check(
        self, text: str | bytes, where: str, *, test: str | None = None, excuse: str = ""
    ) -> None:
        for secret in self.found_in(text):
            self.leaks.append(Leak(test or _test_name(), where, secret, excuse))

    def summary(self) -> str:
        return (
            f"leak scanner: read {self.scanned_responses} responses, {self.scanned_logs} log "
            f"records, {self.scanned_files} SQLite files, {self.scanned_rows} PostgreSQL rows"
        )

    # -- HTTP ---------------------------------------------------------------------------------

    def wrap_send(self, scope: Scope, send: Send) -> Send:
        path = str(scope.get("path", "?"))
        chunks: list[bytes] = []
        headers: list[str] = []

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers.extend(
                    f"{k.decode('latin-1')}: {v.decode('latin-1')}"
                    for k, v in message.get("headers", [])
                )
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    self.scanned_responses += 1
                    self.check("\n".join(headers), f"response headers of {path}")
                    self.check(b"".join(chunks), f"response body of {path}")
            await send(message)

        return recording_send

    # -- logs ---------------------------------------------------------------------------------

    _formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")

    def scan_record(self, record: logging.LogRecord) -> None:
        self.scanned_logs += 1
        try:
            text = self._formatter.format(record)
        except Exception:  # a record whose arguments do not fit its message: read them raw
            text = f"{record.msg!r} {record.args!r}"
        extra = " ".join(f"{k}={v!r}" for k, v in record.__dict__.items() if k not in _PLAIN)
        self.check(f"{text} {extra}", f"log record of {record.name}", excuse=self._excuse(record))

    def _excuse(self, record: logging.LogRecord) -> str:
        if _pinned(record):
            return PINNED_EXCUSE
        args = record.args if isinstance(record.args, tuple) else ()
        if (
            self.client_url
            and record.name == "httpx"
            and len(args) > 1
            and str(args[1]).startswith(self.client_url + "/")
        ):
            return CLIENT_EXCUSE
        return ""

    @staticmethod
    def every_logger_at_debug() -> None:
        """Lower the root and every logger set above DEBUG (the pinned ones included) to DEBUG,
        so each test is watched at the most a logger could ever say."""
        logging.getLogger().setLevel(logging.DEBUG)
        for logger in list(logging.Logger.manager.loggerDict.values()):
            if isinstance(logger, logging.Logger) and logger.level > logging.DEBUG:
                logger.setLevel(logging.DEBUG)

    # -- the store ----------------------------------------------------------------------------

    def scan_database_files(self, root: Path, *, test: str | None = None) -> None:
        """Every SQLite file under `root` that is new or changed since it was last read."""
        for pattern in DATABASE_FILES:
            for path in root.rglob(pattern):
                try:
                    info = path.stat()
                    if self._seen_files.get(path) == (info.st_mtime_ns, info.st_size):
                        continue
                    data = path.read_bytes()
                except OSError:  # gone in between (a WAL file at close)
                    continue
                self._seen_files[path] = (info.st_mtime_ns, info.st_size)
                self.scanned_files += 1
                self.check(data, f"database file {path}", test=test)

    async def scan_postgres(self, url: str, *, test: str | None = None) -> None:
        """Every row of every table of the database at `url`, as PostgreSQL prints it."""
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            tables = await conn.fetch(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                "AND table_type = 'BASE TABLE'"
            )
            for schema, table in tables:
                name = f'"{schema}"."{table}"'
                rows = await conn.fetch(f"SELECT t::text FROM {name} AS t")  # noqa: S608
                self.scanned_rows += len(rows)
                self.check("\n".join(r[0] for r in rows), f"PostgreSQL table {table}", test=test)
        finally:
            await conn.close()


_PLAIN = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def install(scanner: LeakScanner) -> Callable[[], None]:
    """Scan every hub app's responses and every log record, and watch each HiveMind client's
    credentials as they are made; returns the uninstaller."""
    original_call = Starlette.__call__
    original_handle = logging.Logger.handle
    original_add = HiveClients.add

    async def scanned_call(self: Starlette, scope: Scope, receive: Receive, send: Send) -> None:
        # Only the hub (its state gains `hub` at start-up), not the stand-ins, which are
        # OpenAI's side of the wire and may legitimately see the key.
        if scope["type"] == "http" and getattr(self.state, "hub", None) is not None:
            send = scanner.wrap_send(scope, send)
        await original_call(self, scope, receive, send)

    def scanned_handle(self: logging.Logger, record: logging.LogRecord) -> Any:
        scanner.scan_record(record)
        return original_handle(self, record)

    async def watched_add(self: HiveClients, **kwargs: Any) -> Any:
        made = await original_add(self, **kwargs)
        scanner.watch(made[1], made[2])  # the access key and password, shown once
        return made

    Starlette.__call__ = scanned_call  # type: ignore[method-assign]
    logging.Logger.handle = scanned_handle  # type: ignore[method-assign]
    HiveClients.add = watched_add  # type: ignore[method-assign]
    root = logging.getLogger()
    level = root.level
    scanner.every_logger_at_debug()

    def uninstall() -> None:
        Starlette.__call__ = original_call  # type: ignore[method-assign]
        logging.Logger.handle = original_handle  # type: ignore[method-assign]
        HiveClients.add = original_add  # type: ignore[method-assign]
        root.setLevel(level)

    return uninstall


def failing(leaks: Iterable[Leak]) -> list[Leak]:
    strict = os.environ.get("HIVECALL_LEAKSCAN_STRICT") == "1"
    return [leak for leak in leaks if strict or not leak.excuse]


def report(leaks: Iterable[Leak]) -> str:
    return "secrets leaked during the tests:\n" + "\n".join(f"  {leak}" for leak in leaks)
