"""Helpers for the worker's long-turn tests: CLI-like agents on the live hub, the real network
to it with a record of what passed (and a connection that drops on demand)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import script


@pytest.fixture
def hub_overrides(database_url: str) -> dict[str, Any]:
    """The live hub on SQLite and PostgreSQL, answering "started" after 0.3 s."""
    return {"database_url": database_url, "voice_ack_s": 0.3}


async def add_command_agent(
    owner: httpx.AsyncClient, name: str, mode: str, runs: Path
) -> dict[str, Any]:
    """A command agent running tests/scripts/fake_agent.py in `mode` (e.g. `work:4:0.3`,
    `sleep`); it logs its runs to `runs` and a sleeping one its child's pid to `runs`.child."""
    r = await owner.post(
        "/api/agents",
        json={
            "name": name,
            "command": script("fake_agent.py") + f" --mode {mode} {{message}}",
            "workspace": str(runs.parent),
            "env": [f"FAKE_AGENT_LOG={runs}", f"FAKE_AGENT_CHILD_PID={runs}.child"],
        },
    )
    assert r.status_code == 201, r.text
    agent: dict[str, Any] = r.json()["agent"]
    return agent


class _Tap(httpx.AsyncByteStream):
    """A response body as it arrives, copied to `raw`; with `drop`, the connection fails
    (httpx.ReadError) right after the first whole event of that kind."""

    def __init__(self, inner: httpx.AsyncByteStream, raw: bytearray, *, drop: str) -> None:
        self.inner = inner
        self.raw = raw
        self.drop = drop

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = b""
        async for chunk in self.inner:
            seen += chunk
            at = seen.find(f"event: {self.drop}\n".encode()) if self.drop else -1
            end = seen.find(b"\n\n", at) if at >= 0 else -1
            if end >= 0:
                cut = end + 2 - (len(seen) - len(chunk))
                self.raw += chunk[:cut]
                yield chunk[:cut]
                raise httpx.ReadError("the connection dropped (test)")
            self.raw += chunk
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class Wire(httpx.AsyncBaseTransport):
    """The real network to the hub. Records each request (method, path), each event stream's
    Last-Event-ID and the bytes of event streams; `drops` event streams fail after their first
    `drop_at` event ("progress", "delta"), and `reopen`, when given, is awaited before each
    later one reaches the hub; `lose_answers` answers to /api/phone reach the hub but never
    come back (a reset connection)."""

    def __init__(
        self,
        *,
        drops: int = 0,
        drop_at: str = "progress",
        reopen: Callable[[], Awaitable[None]] | None = None,
        lose_answers: int = 0,
    ) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[tuple[str, str]] = []
        self.resumed_from: list[str | None] = []  # each event stream's Last-Event-ID
        self.raw = bytearray()
        self.drops = drops
        self.drop_at = drop_at
        self.reopen = reopen
        self.lose_answers = lose_answers

    def count(self, method: str, suffix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.endswith(suffix))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        streams = request.url.path.endswith("/events") and request.method == "GET"
        if streams:
            if self.resumed_from and self.reopen is not None:
                await self.reopen()
            self.resumed_from.append(request.headers.get("last-event-id"))
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/api/phone" and self.lose_answers > 0:
            self.lose_answers -= 1
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("connection reset by peer (test)", request=request)
        if streams:
            drop = self.drops > 0
            self.drops -= int(drop)
            assert isinstance(response.stream, httpx.AsyncByteStream)
            return httpx.Response(
                response.status_code,
                headers=response.headers,
                stream=_Tap(response.stream, self.raw, drop=self.drop_at if drop else ""),
                extensions=response.extensions,
            )
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
