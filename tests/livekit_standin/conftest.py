"""The `livekit_standin` fixture: a started LiveKit stand-in per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from livekit.api import LiveKitAPI

from tests.livekit_standin.server import LiveKitStandin, running_standin


@pytest.fixture
def livekit_standin() -> Iterator[LiveKitStandin]:
    with running_standin() as standin:
        yield standin


@pytest.fixture
async def lkapi(livekit_standin: LiveKitStandin) -> AsyncIterator[LiveKitAPI]:
    """The unmodified `livekit-api` client pointed at the stand-in."""
    api = LiveKitAPI(livekit_standin.url, livekit_standin.api_key, livekit_standin.api_secret)
    try:
        yield api
    finally:
        await api.aclose()
