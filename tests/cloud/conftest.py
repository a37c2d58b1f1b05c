"""Cloud calls run against the LiveKit stand-in (tests/livekit_standin/): the hub's real
`livekit-api` client talks Twirp + protobuf to it over 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hivecall.settings import Settings
from tests.conftest import OWNER
from tests.keys import FAKE_OPENAI_KEY, LIVEKIT_API_KEY, LIVEKIT_API_SECRET
from tests.livekit_standin.server import LiveKitStandin


@pytest.fixture
def livekit() -> Iterator[LiveKitStandin]:
    with LiveKitStandin(api_key=LIVEKIT_API_KEY, api_secret=LIVEKIT_API_SECRET) as standin:
        yield standin


@pytest.fixture
def hub_overrides() -> dict[str, Any]:
    """Settings the worker tests' live hub (worker_fixtures.live_hub) runs with beyond its own:
    a test module overrides this fixture, e.g. for PostgreSQL or a short voice_ack_s."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, database_url: str, livekit: LiveKitStandin) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        owner_token=OWNER,
        openai_api_key=FAKE_OPENAI_KEY,
        cloud_calls=True,
        livekit_url=livekit.url,
        livekit_api_key=LIVEKIT_API_KEY,
        livekit_api_secret=LIVEKIT_API_SECRET,
    )
