"""Fixtures for runtime tests: a local OpenAI-compatible server and hub settings tuned for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hivecall.settings import Settings
from tests.conftest import OWNER
from tests.standins.openai_server import OpenAIStandin, serve

# The hub's own OpenAI key: it must only ever be sent to api.openai.com.
HUB_OPENAI_KEY = "sk-hub-default-key-0123456789"


@pytest.fixture
def openai_standin() -> Iterator[OpenAIStandin]:
    yield from serve()


@pytest.fixture
def turn_timeout() -> float:
    """Seconds a turn may take; a test can parametrize this fixture to shorten it."""
    return 10.0


@pytest.fixture
def settings(tmp_path: Path, database_url: str, turn_timeout: float) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        owner_token=OWNER,
        openai_api_key=HUB_OPENAI_KEY,
        turn_timeout=turn_timeout,
    )
