"""Watch everything the hub says during the test run for the user's secrets.

Every HTTP response a hub app sends (JSON, pages, scripts, SSE streams) and every log record
any logger emits is searched for the OpenAI keys the tests configure. A hit fails the run and
names the test, the path or logger, and where the secret was found. Installed for the whole
session by tests/conftest.py; `LeakScanner` is also used on its own to prove it catches leaks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class Leak:
    test: str
    where: str
    secret: str

    def __str__(self) -> str:
        shown = self.secret[:6] + "…"
        return f"{self.test}: {self.where} contains the secret {shown}"


@dataclass
class LeakScanner:
    secrets: tuple[str, ...]
    leaks: list[Leak] = field(default_factory=list)
    scanned_responses: int = 0
    scanned_logs: int = 0

    def check(self, text: str | bytes, where: str) -> None:
        data = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        for secret in self.secrets:
            if secret in data:
                test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
                self.leaks.append(Leak(test, where, secret))

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

    def handler(self) -> logging.Handler:
        scanner = self

        class _Scan(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                scanner.scanned_logs += 1
                text = (
                    self.format(record)
                    + " "
                    + " ".join(f"{k}={v!r}" for k, v in record.__dict__.items() if k not in _PLAIN)
                )
                scanner.check(text, f"log record of {record.name}")

        h = _Scan(level=logging.DEBUG)
        h.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        return h


_PLAIN = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def install(scanner: LeakScanner) -> Callable[[], None]:
    """Scan every hub app's responses and every log record; returns the uninstaller."""
    original = Starlette.__call__

    async def scanned_call(self: Starlette, scope: Scope, receive: Receive, send: Send) -> None:
        # Only the hub (its state gains `hub` at start-up), not the stand-ins, which are
        # OpenAI's side of the wire and may legitimately see the key.
        if scope["type"] == "http" and getattr(self.state, "hub", None) is not None:
            send = scanner.wrap_send(scope, send)
        await original(self, scope, receive, send)

    Starlette.__call__ = scanned_call  # type: ignore[method-assign]
    handler = scanner.handler()
    root = logging.getLogger()
    root.addHandler(handler)
    hivecall_logger = logging.getLogger("hivecall")
    level = hivecall_logger.level
    hivecall_logger.setLevel(logging.DEBUG)  # hivecall's debug lines are scanned too

    def uninstall() -> None:
        Starlette.__call__ = original  # type: ignore[method-assign]
        root.removeHandler(handler)
        hivecall_logger.setLevel(level)

    return uninstall


def report(leaks: Iterable[Leak]) -> str:
    return "secrets leaked during the tests:\n" + "\n".join(f"  {leak}" for leak in leaks)
