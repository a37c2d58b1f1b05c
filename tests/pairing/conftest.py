"""Phones against the real app: the owner makes codes, phones claim them, calls use the
OpenAI Realtime stand-in for minting (as in tests/calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from hivecall.hub import Hub
from hivecall.settings import Settings
from tests.conftest import OWNER
from tests.keys import FAKE_OPENAI_KEY
from tests.standins.realtime.server import RealtimeStandin


@pytest.fixture
def realtime() -> Iterator[RealtimeStandin]:
    with RealtimeStandin(api_key=FAKE_OPENAI_KEY) as standin:
        yield standin


@pytest.fixture
def hub_settings() -> dict[str, Any]:
    """Settings overrides a test module may change (e.g. pairing_code_ttl)."""
    return {}


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, realtime: RealtimeStandin, hub_settings: dict[str, Any]
) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        owner_token=OWNER,
        openai_api_key=FAKE_OPENAI_KEY,
        openai_base_url=realtime.base_url,
        openai_timeout=2.0,
    ).replace(**hub_settings)


def hub_of(app: Starlette) -> Hub:
    hub: Hub = app.state.hub
    return hub


async def new_code(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.post("/api/pairing")
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def claim(anon: httpx.AsyncClient, code: str, name: str = "Pixel 8") -> httpx.Response:
    return await anon.post("/api/pairing/claim", json={"code": code, "device_name": name})


class Phone:
    """A paired phone: its device record and an HTTP client sending its token."""

    def __init__(self, client: httpx.AsyncClient, token: str, device: dict[str, Any]) -> None:
        self.client = client
        self.token = token
        self.device = device

    @property
    def id(self) -> str:
        device_id: str = self.device["id"]
        return device_id


@pytest.fixture
async def pair_phone(
    app: Starlette, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> AsyncIterator[Any]:
    """`await pair_phone("name")` pairs a new phone through the real flow."""
    clients: list[httpx.AsyncClient] = []

    async def pair(name: str = "Pixel 8") -> Phone:
        made = await new_code(client)
        r = await claim(anon, made["pairing"]["code"], name)
        assert r.status_code == 201, r.text
        body = r.json()
        phone = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://127.0.0.1:8765",
            headers={"authorization": f"Bearer {body['token']}"},
            timeout=30,
        )
        clients.append(phone)
        return Phone(phone, body["token"], body["device"])

    yield pair
    for c in clients:
        await c.aclose()
