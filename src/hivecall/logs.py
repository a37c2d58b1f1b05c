"""Logging: static messages with structured fields (`extra=`), one line each.

Messages never carry transcripts, keys or tokens; fields carry ids, counts and codes. The
libraries below the hub are held to that too: the database and websocket loggers are pinned at
WARNING, and a logged database error shows its statement but never its values.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

# Their debug (and SQLAlchemy's info) lines print what the hub must never log: every statement's
# bound values (aiosqlite, asyncpg, sqlalchemy.engine) and each HiveMind handshake's request line,
# whose `authorization` query carries the client's access key (websockets). WARNING always, also
# at HIVECALL_LOG_LEVEL=debug: nothing a person could want from them outweighs that.
PINNED = (
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "aiosqlite",
    "asyncpg",
    "websockets",
    "websockets.server",
    "websockets.client",
)

# Noise rather than danger: alembic announces every migration step at INFO, aioice every ICE
# candidate pair of a local call. Quiet unless asked for with HIVECALL_LOG_LEVEL=debug.
QUIET = ("alembic", "aioice", "aiortc")

# Exceptions whose text may quote a statement's values: PostgreSQL's messages quote bad input
# ("invalid input syntax for type integer: ..."), asyncpg's DataError the value it could not
# encode, and SQLAlchemy's wrap the driver's text (and its parameters, unless hidden). SQLite's
# own messages name constraints and columns only, so theirs are kept.
_DATABASE_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3")
_VALUE_FREE_MODULES = ("sqlite3",)


def _module(exc: BaseException) -> str:
    return type(exc).__module__.split(".")[0]


def _name(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def safe_exception_text(exc: BaseException) -> str:
    """What a log may say about `exc`: a database error's class, statement and (SQLite's) message,
    never its values; any other exception as Python prints it."""
    if isinstance(exc, BaseExceptionGroup):
        members = "".join(f"\n  - {safe_exception_text(e)}" for e in exc.exceptions)
        return f"{_name(exc)}: {exc.message}{members}"
    if _module(exc) not in _DATABASE_MODULES or _module(exc) in _VALUE_FREE_MODULES:
        return "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
    text = _name(exc)
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        told = f"{orig}" if _module(orig) in _VALUE_FREE_MODULES else "(message withheld)"
        text += f" ({_name(orig)}: {told})"
    statement = getattr(exc, "statement", None)
    return f"{text} [SQL: {statement}]" if isinstance(statement, str) else text


def format_exception_safely(
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> str:
    """A traceback (frames and the chain of causes) with each exception told by
    `safe_exception_text`."""
    if exc is None:
        return ""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.format_tb(current.__traceback__ if current is not exc else tb))
        block = "Traceback (most recent call last):\n" + frames if frames else ""
        parts.append(block + safe_exception_text(current))
        cause = current.__cause__
        current = cause or (None if current.__suppress_context__ else current.__context__)
        if current is not None:
            parts.append(
                "\nThe above exception was the direct cause of the following exception:\n"
                if cause is not None
                else "\nDuring handling of the above exception, another exception occurred:\n"
            )
    return "\n".join(reversed(parts))


def _holds_database_error(exc: BaseException | None, seen: set[int] | None = None) -> bool:
    """Whether `exc`, its causes and contexts, or a group's members hold a database error."""
    seen = set() if seen is None else seen
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _module(exc) in _DATABASE_MODULES:
            return True
        if isinstance(exc, BaseExceptionGroup) and any(
            _holds_database_error(e, seen) for e in exc.exceptions
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def guard_database_errors() -> None:
    """Make every log record (of any logger, for any handler) that carries a database error
    tell it by `format_exception_safely`: the record's traceback text is settled when it is made,
    and formatters print that text instead of the exception's own. Idempotent."""
    current = logging.getLogRecordFactory()
    if getattr(current, "hivecall_guard", False):
        return

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        if record.exc_info and _holds_database_error(record.exc_info[1]):
            record.exc_text = format_exception_safely(*record.exc_info)
        return record

    make_record.hivecall_guard = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)


class FieldsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if fields:
            base += " " + " ".join(f"{k}={v!r}" for k, v in sorted(fields.items()))
        return base


def pin_library_loggers(level: str) -> None:
    """The levels of the libraries' loggers for a hub logging at `level`."""
    for name in PINNED:
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in QUIET:
        logging.getLogger(name).setLevel(quiet)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.hivecall = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    # Replace only hivecall's own handler: a host process (or a test's log watcher) keeps its.
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "hivecall", False)]
    root.addHandler(handler)
    root.setLevel(
        level.upper() if level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO"
    )
    pin_library_loggers(level)
    guard_database_errors()
