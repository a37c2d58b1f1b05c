"""Logging: static messages with structured fields (`extra=`), one line each.

Messages never carry transcripts, keys or tokens; fields carry ids, counts and codes.
"""

from __future__ import annotations

import logging
import sys

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class FieldsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if fields:
            base += " " + " ".join(f"{k}={v!r}" for k, v in sorted(fields.items()))
        return base


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
    # Alembic announces every migration step at INFO, and aioice every ICE candidate pair of a
    # local call: noise, unless asked for with HIVECALL_LOG_LEVEL=debug.
    quiet = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in ("alembic", "aioice", "aiortc"):
        logging.getLogger(name).setLevel(quiet)
