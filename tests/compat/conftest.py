"""Fixtures for the compat API: the real hub served over HTTP, and API keys made by its owner.

The hub runs in uvicorn on 127.0.0.1 and a free port, in a thread of its own with its own event
loop (tests/standins/threaded.py; its lifespan opens the store there), so the real `openai` and
`ollama` client libraries reach it over a socket exactly as Home Assistant or Open WebUI would.
Tests touch the hub only through HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from hivecall.app import create_app
from hivecall.settings import Settings
from tests.conftest import OWNER, owner_client
from tests.standins.threaded import ServerThread


class Served(ServerThread):
    """The hub app under uvicorn in a thread; `url` is its main port."""

    def __init__(self, app: Starlette) -> None:
        super().__init__(app, name="compat-hub", lifespan="on")

    @property
    def url(self) -> str:
        return self.origin


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
    await asyncio.to_thread(server.start, 30)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.close)


@pytest.fixture
async def owner(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    """The owner's HTTP client on hivecall's own API (agents, keys, turns)."""
    async with owner_client(base_url=served.url) as client:
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
