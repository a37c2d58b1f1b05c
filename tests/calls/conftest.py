"""Calls run against the OpenAI Realtime stand-in (minting over real HTTP, real SDK)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hivecall.settings import Settings
from tests.conftest import OWNER
from tests.keys import FAKE_OPENAI_KEY
from tests.standins.realtime.server import RealtimeStandin


@pytest.fixture
def realtime() -> Iterator[RealtimeStandin]:
    with RealtimeStandin(api_key=FAKE_OPENAI_KEY) as standin:
        yield standin


@pytest.fixture
def settings(tmp_path: Path, database_url: str, realtime: RealtimeStandin) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        owner_token=OWNER,
        openai_api_key=FAKE_OPENAI_KEY,
        openai_base_url=realtime.base_url,
        openai_timeout=2.0,
    )
