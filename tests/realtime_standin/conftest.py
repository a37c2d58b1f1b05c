"""Tests of the OpenAI Realtime stand-in itself, driven by the real openai SDK and aiortc."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from openai import AsyncOpenAI
from openai.types.realtime.realtime_server_event import RealtimeServerEvent
from pydantic import TypeAdapter

from tests.keys import FAKE_OPENAI_KEY
from tests.standins.realtime import RealtimeStandin

SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)


def assert_sdk_parses(events: list[dict[str, Any]]) -> None:
    """Every event is a valid `RealtimeServerEvent` for the openai SDK."""
    for event in events:
        parsed = SERVER_EVENT.validate_python(event)
        assert parsed.type == event["type"]


@pytest.fixture
def realtime_standin() -> Iterator[RealtimeStandin]:
    with RealtimeStandin(api_key=FAKE_OPENAI_KEY) as standin:
        yield standin


@pytest.fixture
async def openai_client(realtime_standin: RealtimeStandin) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(
        api_key=FAKE_OPENAI_KEY, base_url=realtime_standin.base_url, max_retries=0
    ) as client:
        yield client
