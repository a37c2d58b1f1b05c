"""A hub with its HiveMind listener on a free 127.0.0.1 port, and clients to connect with."""

from __future__ import annotations

import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from hivecall.app import create_app
from hivecall.hivemind.clients import HiveClients
from hivecall.hivemind.server import HiveMindListener
from hivecall.hub import Hub
from hivecall.secretbox import SecretBox
from hivecall.settings import Settings
from tests.conftest import OWNER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Cred:
    name: str
    key: str
    password: str


@dataclass
class Hive:
    app: Starlette
    settings: Settings

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub

    @property
    def listener(self) -> HiveMindListener:
        listener: HiveMindListener = self.app.state.hivemind
        return listener

    @property
    def port(self) -> int:
        return self.listener.port

    @property
    def clients(self) -> HiveClients:
        return HiveClients(
            store=self.hub.store, box=SecretBox.open(self.settings.home), agents=self.hub.agents
        )

    async def add(self, name: str, **kw: object) -> Cred:
        key, password = secrets.token_hex(16), secrets.token_urlsafe(18)
        await self.clients.add(name=name, access_key=key, password=password, **kw)  # type: ignore[arg-type]
        await self.listener.refresh()
        return Cred(name, key, password)


@pytest.fixture
def hive_settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        owner_token=OWNER,
        host="127.0.0.1",
        port=free_port(),
        hivemind_port=free_port(),
    )


@pytest.fixture
async def hive(
    hive_settings: Settings, environ: dict[str, str], workspace: Path
) -> AsyncIterator[Hive]:
    app = create_app(hive_settings, environ=environ, workspace=workspace, serve_hivemind=True)
    async with app.router.lifespan_context(app):
        yield Hive(app, hive_settings)


MakeHive = Callable[..., AbstractAsyncContextManager[Hive]]


@pytest.fixture
def make_hive(hive_settings: Settings, environ: dict[str, str], workspace: Path) -> MakeHive:
    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Hive]:
        settings = hive_settings.replace(**overrides)
        app = create_app(settings, environ=environ, workspace=workspace, serve_hivemind=True)
        async with app.router.lifespan_context(app):
            yield Hive(app, settings)

    return make
