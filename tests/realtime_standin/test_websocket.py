"""The websocket form (`GET /v1/realtime?model=…`), driven by the openai SDK's realtime client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai import AsyncOpenAI
from websockets.exceptions import InvalidStatus

from tests.realtime_standin.conftest import assert_sdk_parses
from tests.standins.realtime import RealtimeStandin, Script, Turn


async def test_a_text_turn_with_a_tool_call(
    openai_client: AsyncOpenAI, realtime_standin: RealtimeStandin
) -> None:
    realtime_standin.script = Script(
        turns=[
            Turn.tool("run the tests", auto=False),
            Turn.say(lambda s: f"Done: {s.last_output}"),
        ]
    )
    events: list[Any] = []
    async with openai_client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Run the tests."}],
            }
        )
        await conn.response.create(response={"metadata": {"client_event_id": "r1"}})
        async for event in conn:
            events.append(event)
            if event.type == "response.function_call_arguments.done":
                assert event.name == "ask_computer_agent"
                assert json.loads(event.arguments) == {"message": "run the tests"}
                await conn.conversation.item.create(
                    item={"type": "function_call_output", "call_id": event.call_id, "output": "ok"}
                )
                await conn.response.create()
            if event.type == "response.done" and event.response.output:
                item = event.response.output[0]
                if item.type == "message":
                    break

    types = [e.type for e in events]
    assert types[:2] == ["session.created", "session.updated"]
    assert "conversation.item.added" in types
    created = next(e for e in events if e.type == "response.created")
    assert created.response.metadata == {"client_event_id": "r1"}
    assert "response.output_text.delta" in types
    text = next(e for e in events if e.type == "response.output_text.done")
    assert text.text == "Done: ok"

    (conversation,) = realtime_standin.sockets
    assert conversation.session["model"] == "gpt-realtime"
    assert conversation.transcripts == ["Done: ok"]
    assert conversation.items[0]["role"] == "user"
    assert_sdk_parses(conversation.sent)
    (request,) = [r for r in realtime_standin.requests if r.path == "/v1/realtime"]
    assert request.status == 101


async def test_audio_over_the_websocket(
    openai_client: AsyncOpenAI, realtime_standin: RealtimeStandin
) -> None:
    realtime_standin.script = Script(turns=[Turn.say("Hello there friend.")])
    async with openai_client.realtime.connect(model="gpt-realtime") as conn:
        await conn.input_audio_buffer.append(audio="AAAAAA==")
        await conn.response.create()
        deltas = 0
        async for event in conn:
            deltas += event.type == "response.output_audio.delta"
            if event.type == "response.done":
                break
    assert deltas == 3
    (conversation,) = realtime_standin.sockets
    assert conversation.input_audio_bytes == 4
    assert conversation.transcripts == ["Hello there friend."]
    assert_sdk_parses(conversation.sent)


async def test_a_wrong_key_is_refused(realtime_standin: RealtimeStandin) -> None:
    async with AsyncOpenAI(api_key="sk-wrong", base_url=realtime_standin.base_url) as client:
        with pytest.raises(InvalidStatus) as caught:
            async with client.realtime.connect(model="gpt-realtime"):
                pass
    assert caught.value.response.status_code == 401
    assert json.loads(caught.value.response.body or b"")["error"]["code"] == "invalid_api_key"
    assert realtime_standin.sockets == []
