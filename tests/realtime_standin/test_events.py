"""The oai-events protocol of a stand-in session, without a transport: events in, events out."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from tests.realtime_standin.conftest import assert_sdk_parses
from tests.standins.realtime import RealtimeSession, Script, Speech, ToolCall, Turn
from tests.standins.realtime.protocol import default_session


def session(script: Script | None = None) -> tuple[RealtimeSession, list[dict[str, Any]]]:
    out: list[dict[str, Any]] = []

    async def send(text: str) -> None:
        out.append(json.loads(text))

    script = script or Script(turns=[Turn.say("Hello there.")])
    script.delta_gap = script.user_delay = 0
    s = RealtimeSession(
        session={**default_session(), "id": "sess_1"}, script=script, send=send, webrtc=False
    )
    return s, out


async def feed(s: RealtimeSession, *events: dict[str, Any] | str) -> None:
    for event in events:
        await s.receive(event if isinstance(event, str) else json.dumps(event))


def errors(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["error"] for e in out if e["type"] == "error"]


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid_type", None),
        ({"event_id": "e1"}, "missing_required_parameter", "type"),
        ({"type": "response.dance", "event_id": "e1"}, "invalid_value", "type"),
        (
            {"type": "session.update", "session": {"voice": "x"}},
            "missing_required_parameter",
            "session.type",
        ),
        ({"type": "conversation.item.create"}, "missing_required_parameter", "item"),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "output": "x"},
            },
            "missing_required_parameter",
            "item.call_id",
        ),
        (
            {"type": "conversation.item.create", "item": {"type": "note"}},
            "invalid_value",
            "item.type",
        ),
        ({"type": "response.cancel"}, "response_cancel_not_active", None),
        (
            {"type": "conversation.item.create", "item": {"type": "message", "role": "robot"}},
            "invalid_value",
            "item.role",
        ),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "system", "content": [{"type": "text"}]},
            },
            "invalid_value",
            "item.content[0].type",
        ),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [{"type": "input_text"}]},
            },
            "missing_required_parameter",
            "item.content[0].text",
        ),
    ],
)
async def test_bad_client_events_get_error_events(
    event: dict[str, Any] | str, code: str, param: str | None
) -> None:
    s, out = session()
    await feed(s, event)
    (error,) = errors(out)
    assert error["code"] == code
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    if isinstance(event, dict) and "event_id" in event:
        assert error["event_id"] == event["event_id"]
    assert s.errors == [error]
    assert_sdk_parses(out)


async def test_client_messages_join_the_conversation_without_a_response() -> None:
    s, out = session()
    note = {"type": "input_text", "text": "Progress: step 2 of 5"}
    await feed(
        s,
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "system", "content": [note]},
        },
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [note, note]},
        },
    )
    assert s.messages == [
        ("system", "Progress: step 2 of 5"),
        ("user", "Progress: step 2 of 5Progress: step 2 of 5"),
    ]
    assert [e["type"] for e in out] == ["conversation.item.added", "conversation.item.done"] * 2
    assert not s.responses and not errors(out)
    assert_sdk_parses(out)


async def test_session_update_merges_and_echoes() -> None:
    s, out = session()
    await s.open()
    update = {"type": "realtime", "audio": {"output": {"voice": "marin"}}, "instructions": "Hi"}
    await feed(s, {"type": "session.update", "session": update})
    assert [e["type"] for e in out] == ["session.created", "session.updated"]
    updated = out[1]["session"]
    assert updated["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "marin",
        "speed": 1,
    }
    assert updated["instructions"] == "Hi"
    assert updated["id"] == "sess_1"
    assert s.session_updates == [update]
    assert_sdk_parses(out)


async def test_one_response_at_a_time_and_cancel() -> None:
    s, out = session(Script(turns=[Turn.say("one two three four five six seven eight nine ten")]))
    s.script.delta_gap = 0.05
    await feed(s, {"type": "response.create", "response": {"metadata": {"turn": "1"}}})
    await feed(s, {"type": "response.create", "event_id": "e2"})
    (error,) = errors(out)
    assert error["code"] == "conversation_already_has_active_response"
    await feed(s, {"type": "response.cancel"})
    await s.wait_for(lambda x: x.responses, timeout=5)
    done = s.responses[0]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    created = next(e for e in out if e["type"] == "response.created")
    assert created["response"]["metadata"] == {"turn": "1"}
    assert s.response_requests == [{"metadata": {"turn": "1"}}, {}]
    assert_sdk_parses(out)
    await s.close()


async def test_scripted_turns_fallback_and_test_driven_turns() -> None:
    script = Script(
        turns=[
            Turn(outputs=(Speech("Let me check."), ToolCall("status", call_id="call_fixed"))),
            Turn.say(lambda x: f"It said {x.last_output}."),
        ],
        fallback=Turn.say("Sure."),
    )
    s, out = session(script)
    await s.open()
    await feed(s, {"type": "response.create"})
    await s.wait_for(lambda x: len(x.responses) == 1)
    # One response, two output items: a spoken one and the call.
    assert [i["type"] for i in s.responses[0]["output"]] == ["message", "function_call"]
    await feed(
        s,
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_fixed", "output": "fine"},
        },
        {"type": "response.create"},
    )
    await s.wait_for(lambda x: len(x.responses) == 2)
    await feed(s, {"type": "response.create"})
    await s.wait_for(lambda x: len(x.responses) == 3)
    s.start_turn(Turn.say("Bye.", user="Thanks, bye."))
    await s.wait_for(lambda x: len(x.responses) == 4)
    assert s.transcripts == ["Let me check.", "It said fine.", "Sure.", "Bye."]
    assert s.function_outputs == {"call_fixed": "fine"}
    added = [e["item"] for e in out if e["type"] == "conversation.item.added"]
    assert [i.get("role") or i["type"] for i in added] == [
        "assistant",
        "function_call",
        "function_call_output",
        "assistant",
        "assistant",
        "user",
        "assistant",
    ]
    # Items chain: each one names the one before it.
    chain = [e for e in out if e["type"] == "conversation.item.added"]
    for before, after in itertools.pairwise(chain):
        assert after["previous_item_id"] == before["item"]["id"]
    assert not any(e["type"].startswith("output_audio_buffer") for e in out)  # websocket form
    assert_sdk_parses(out)
    await s.close()


async def test_raw_arguments_are_sent_as_given() -> None:
    s, out = session(Script(turns=[Turn(outputs=(ToolCall("", arguments='{"message": 42'),))]))
    await feed(s, {"type": "response.create"})
    await s.wait_for(lambda x: x.responses)
    done = next(e for e in out if e["type"] == "response.function_call_arguments.done")
    assert done["arguments"] == '{"message": 42'
    deltas = [e["delta"] for e in out if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(deltas) == '{"message": 42'
