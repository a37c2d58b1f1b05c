"""The JSON envelope: valid messages parse, anything else is a WireError."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hivecall.hivemind_protocol import wire
from hivecall.hivemind_protocol.wire import BusMessage, MsgType, WireError


def test_bus_message_parses() -> None:
    msg = wire.loads(
        json.dumps(
            {
                "msg_type": "bus",
                "payload": {"type": "recognizer_loop:utterance", "data": {"utterances": ["hi"]}},
                "metadata": {},
                "route": [],
                "node": None,
                "source_peer": None,
            }
        )
    )
    assert msg.msg_type is MsgType.BUS
    assert BusMessage.of(msg.payload).data == {"utterances": ["hi"]}
    assert wire.loads(msg.to_json()) == msg


def test_nested_routing_messages_parse() -> None:
    inner = wire.bus("speak", {"utterance": "x"}, {})
    outer = wire.HiveMessage(MsgType.PROPAGATE, inner.as_dict())
    assert wire.loads(outer.to_json()).inner() == inner


@pytest.mark.parametrize(
    "obj",
    [
        [],
        "x",
        {"msg_type": "nope", "payload": {}},
        {"msg_type": "bin", "payload": {}},
        {"msg_type": "bus", "payload": []},
        {"msg_type": "bus", "payload": {"data": {}}},
        {"msg_type": "bus", "payload": {"type": "x", "data": []}},
        {"msg_type": "propagate", "payload": {"msg_type": "zzz"}},
        {"msg_type": "hello", "payload": {}, "node": 5},
        {"msg_type": "hello", "payload": "not json"},
    ],
)
def test_malformed_messages(obj: object) -> None:
    with pytest.raises(WireError):
        wire.parse(obj)


def test_deep_nesting_is_refused() -> None:
    msg: dict[str, object] = {"msg_type": "bus", "payload": {"type": "x"}}
    for _ in range(10):
        msg = {"msg_type": "propagate", "payload": msg}
    with pytest.raises(WireError, match="deep"):
        wire.parse(msg)


@given(text=st.text(max_size=80) | st.binary(max_size=80))
def test_garbage_is_only_ever_a_wire_error(text: str | bytes) -> None:
    with contextlib.suppress(WireError):
        wire.loads(text)
