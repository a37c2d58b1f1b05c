"""The leak scanner itself: it sees responses and logs, and it catches a leak when there is one.

The session-wide scanner (tests/conftest.py) fails the run if any hub response or log line
during the suite holds a configured OpenAI key; these tests prove that net has no holes.
"""

from __future__ import annotations

import logging

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.conftest import SCANNER
from tests.keys import FAKE_OPENAI_KEY
from tests.leakscan import LeakScanner, install


async def test_the_session_scanner_is_watching(client: httpx.AsyncClient) -> None:
    before = (SCANNER.scanned_responses, SCANNER.scanned_logs)
    await client.get("/api/health")
    logging.getLogger("hivecall.test").info("a line")
    assert SCANNER.scanned_responses > before[0] and SCANNER.scanned_logs > before[1]
    assert FAKE_OPENAI_KEY in SCANNER.secrets


async def test_a_leak_is_caught() -> None:
    scanner = LeakScanner((FAKE_OPENAI_KEY,))

    async def leaky(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"your key is {FAKE_OPENAI_KEY}")

    app = Starlette(routes=[Route("/leak", leaky)])
    app.state.hub = object()  # looks like a hub to the scanner
    uninstall = install(scanner)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://x"
        ) as c:
            await c.get("/leak")
        logging.getLogger("hivecall.leaky").warning("key=%s", FAKE_OPENAI_KEY)
        logging.getLogger("hivecall.leaky").info("fields", extra={"key": FAKE_OPENAI_KEY})
    finally:
        uninstall()
        # The session scanner saw this deliberate leak too: it is not the hub's.
        SCANNER.leaks[:] = [x for x in SCANNER.leaks if "test_a_leak_is_caught" not in x.test]
    wheres = [leak.where for leak in scanner.leaks]
    assert wheres == [
        "response body of /leak",
        "log record of hivecall.leaky",
        "log record of hivecall.leaky",
    ]
