"""Fixtures for the worker's tests: the real hub over HTTP (cloud calls on, LiveKit = stand-in,
OpenAI = the Realtime stand-in) and the worker's own settings pointing at all three.

Import the fixtures a test module uses: `from tests.cloud.worker_fixtures import live_hub`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hivecall.cloud.hubclient import HubClient
from hivecall.settings import Settings
from tests.keys import FAKE_OPENAI_KEY, LIVEKIT_API_KEY, LIVEKIT_API_SECRET
from tests.live import LiveHub, serve_hub
from tests.livekit_standin.server import LiveKitStandin
from tests.standins.realtime import RealtimeStandin


@pytest.fixture
def realtime() -> Iterator[RealtimeStandin]:
    with RealtimeStandin(api_key=FAKE_OPENAI_KEY) as standin:
        yield standin


@pytest.fixture
def live_hub(
    tmp_path: Path,
    environ: dict[str, str],
    workspace: Path,
    livekit: LiveKitStandin,
    realtime: RealtimeStandin,
    hub_overrides: dict[str, Any],
) -> Iterator[LiveHub]:
    """The hub over HTTP with cloud calls on (and `hub_overrides`, from tests/cloud/conftest.py
    or the test module); its only agent is the seeded `echo`."""
    yield from serve_hub(
        tmp_path,
        environ=environ,
        workspace=workspace,
        openai_base_url=realtime.base_url,
        cloud_calls=True,
        livekit_url=livekit.url,
        livekit_api_key=LIVEKIT_API_KEY,
        livekit_api_secret=LIVEKIT_API_SECRET,
        **hub_overrides,
    )


@pytest.fixture
def worker_settings(
    tmp_path: Path, live_hub: LiveHub, livekit: LiveKitStandin, realtime: RealtimeStandin
) -> Settings:
    """What `hivecall worker` runs with: its own home, the hub's URL, LiveKit and OpenAI."""
    return Settings(
        home=tmp_path / "worker-home",
        worker_hub_url=live_hub.url,
        livekit_url=livekit.ws_url,
        livekit_api_key=LIVEKIT_API_KEY,
        livekit_api_secret=LIVEKIT_API_SECRET,
        openai_api_key=FAKE_OPENAI_KEY,
        openai_base_url=realtime.base_url,
        turn_timeout=30.0,
    )


@pytest.fixture
async def owner(live_hub: LiveHub) -> AsyncIterator[httpx.AsyncClient]:
    """The owner's HTTP client for the live hub."""
    async with httpx.AsyncClient(
        base_url=live_hub.url, headers=live_hub.headers, timeout=30
    ) as client:
        yield client


@pytest.fixture
async def hub_client(worker_settings: Settings) -> AsyncIterator[HubClient]:
    async with HubClient.from_settings(worker_settings) as client:
        yield client


async def agent_id(owner: httpx.AsyncClient, name: str) -> str:
    """The id of agent `name`, made (echo runtime) if the hub has none by that name."""
    r = await owner.get(f"/api/agents/{name}")
    if r.status_code == 404:
        r = await owner.post("/api/agents", json={"name": name, "runtime": "echo"})
    assert r.is_success, r.text
    found: str = r.json()["agent"]["id"]
    return found


async def start_cloud_call(owner: httpx.AsyncClient, agent: str = "echo") -> dict[str, Any]:
    r = await owner.post(
        "/api/calls", json={"agent_id": await agent_id(owner, agent), "mode": "cloud"}
    )
    assert r.status_code == 201, r.text
    call: dict[str, Any] = r.json()["call"]
    return call


async def call_record(owner: httpx.AsyncClient, call_id: str) -> dict[str, Any]:
    r = await owner.get(f"/api/calls/{call_id}")
    assert r.status_code == 200, r.text
    shown: dict[str, Any] = r.json()
    return shown
