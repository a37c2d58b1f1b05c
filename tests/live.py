"""The real hub served over HTTP on 127.0.0.1, for tests a browser (or another process) drives.

`create_app(settings)` runs under uvicorn in a thread of its own, lifespan and all, so the hub
lives on that thread's event loop: reach its objects through `await live.run(fn)`, which runs
`fn(hub)` there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette

from hivecall.app import create_app
from hivecall.hub import Hub
from hivecall.settings import Settings
from tests.conftest import OWNER, OWNER_HEADERS
from tests.keys import FAKE_OPENAI_KEY
from tests.standins.threaded import ServerThread

T = TypeVar("T")


class LiveHub:
    def __init__(self, app: Starlette, server: ServerThread, settings: Settings) -> None:
        self.app = app
        self.server = server
        self.settings = settings
        self.owner_token = OWNER

    @property
    def url(self) -> str:
        """The hub's origin, e.g. http://127.0.0.1:PORT (no trailing slash)."""
        return self.server.origin

    @property
    def login_url(self) -> str:
        """Opening this signs the browser in as the owner (session cookie)."""
        return f"{self.url}/?token={self.owner_token}"

    @property
    def headers(self) -> dict[str, str]:
        return dict(OWNER_HEADERS)

    @property
    def hub(self) -> Hub:
        """The running hub. Its async methods belong to the hub's loop: call them via `run`."""
        hub: Hub = self.app.state.hub
        return hub

    async def run(self, fn: Callable[[Hub], Awaitable[T]]) -> T:
        """`await fn(hub)` on the hub's loop: `await live.run(lambda h: h.agents.list())`."""

        async def call() -> T:
            return await fn(self.hub)

        return await self.server.run(call())


def owner(live: LiveHub, method: str, path: str, **kw: Any) -> httpx.Response:
    """A request to the live hub as its owner (blocking: for tests that drive a browser)."""
    return httpx.request(method, f"{live.url}{path}", headers=live.headers, timeout=30, **kw)


def serve_hub(
    tmp_path: Path,
    *,
    environ: Mapping[str, str],
    workspace: Path,
    openai_base_url: str,
    **overrides: Any,
) -> Iterator[LiveHub]:
    """A started LiveHub on SQLite in `tmp_path`, closed afterwards (a fixture's body)."""
    server = ServerThread(None, name="live-hub", lifespan="on")
    settings = Settings(
        home=tmp_path / "live-home",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'live-hub.db'}",
        owner_token=OWNER,
        openai_api_key=FAKE_OPENAI_KEY,
        openai_base_url=openai_base_url,
        host="127.0.0.1",
        port=server.bind(),
    ).replace(**overrides)
    try:
        server.app = app = create_app(settings, environ=environ, workspace=workspace)
        server.start()
        yield LiveHub(app, server, settings)
    finally:
        server.close()
