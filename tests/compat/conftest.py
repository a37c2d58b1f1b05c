"""Fixtures for the compat API: the real hub served over HTTP, and API keys made by its owner.

The hub runs in uvicorn on 127.0.0.1 and a free port, in a thread of its own with its own event
loop (its lifespan opens the store there), so the real `openai` and `ollama` client libraries
reach it over a socket exactly as Home Assistant or Open WebUI would. Tests touch the hub only
through HTTP.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from hivecall.app import create_app
from hivecall.settings import Settings
from tests.conftest import OWNER


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Served:
    """The hub app under uvicorn in a thread; `url` is its main port."""

    def __init__(self, app: Starlette) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", ws="none"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the hub did not start")
            time.sleep(0.01)

    def close(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=30)
            if self._thread.is_alive():
                raise RuntimeError("the hub did not stop")
        self._sock.close()


@pytest.fixture
def compat_settings() -> dict[str, Any]:
    """Extra settings for the hub under test (a test module can override this fixture)."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, database_url: str, compat_settings: dict[str, Any]) -> Settings:
    return Settings(
        home=tmp_path / "home", database_url=database_url, owner_token=OWNER, **compat_settings
    )


@pytest.fixture
async def served(
    settings: Settings, environ: dict[str, str], workspace: Path
) -> AsyncIterator[Served]:
    server = Served(create_app(settings, environ=environ, workspace=workspace))
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.close)


@pytest.fixture
async def owner(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    """The owner's HTTP client on hivecall's own API (agents, keys, turns)."""
    async with httpx.AsyncClient(
        base_url=served.url, headers={"authorization": f"Bearer {OWNER}"}, timeout=30
    ) as client:
        yield client


async def make_key(owner: httpx.AsyncClient, name: str, agent: str | None = None) -> str:
    r = await owner.post("/api/keys", json={"name": name, "agent": agent})
    assert r.status_code == 201, r.text
    value: str = r.json()["token"]
    return value


async def add_agent(owner: httpx.AsyncClient, name: str) -> None:
    r = await owner.post("/api/agents", json={"name": name, "runtime": "echo"})
    assert r.status_code == 201, r.text


async def turns(owner: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await owner.get("/api/turns")
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["turns"]
    return found


@pytest.fixture
async def key(owner: httpx.AsyncClient) -> str:
    """An API key for every agent."""
    return await make_key(owner, "tests")
