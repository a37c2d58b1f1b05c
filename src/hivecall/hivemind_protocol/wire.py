"""The HiveMind envelope and its message types (legacy protocol v1, JSON form).

`{"msg_type", "payload", "metadata", "route", "node", "source_peer", "target_site_id",
"target_pubkey"}`; a `bus` payload is an OVOS message `{"type", "data", "context"}`, and the
routing types (broadcast, propagate, escalate, query, cascade) carry a nested envelope.
`parse` checks the shape and raises WireError (a typed error, never a crash) for anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# How a hivecall node closes a connection it refuses; its client recognises them.
TOO_MANY = (1008, "too many failed handshakes: try again later")
V1_OFF = "protocol v1 is off on this hub (hivemind_min_protocol 3): use v3 (Noise)"


class WireError(ValueError):
    """A frame that is not a HiveMind message (malformed, unknown type, wrong shape)."""


class MsgType(StrEnum):
    SHAKE = "shake"
    BUS = "bus"
    SHARED_BUS = "shared_bus"
    INTERCOM = "intercom"
    BROADCAST = "broadcast"
    PROPAGATE = "propagate"
    ESCALATE = "escalate"
    HELLO = "hello"
    QUERY = "query"
    CASCADE = "cascade"
    PING = "ping"
    RENDEZVOUS = "rendezvous"
    THIRD_PARTY = "3rdparty"
    BIN = "bin"


NESTED = frozenset(
    {MsgType.BROADCAST, MsgType.PROPAGATE, MsgType.ESCALATE, MsgType.QUERY, MsgType.CASCADE}
)
MAX_DEPTH = 4


@dataclass(slots=True)
class HiveMessage:
    msg_type: MsgType
    payload: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    route: list[Any] = field(default_factory=list)
    node: str | None = None
    source_peer: str | None = None
    target_site_id: str | None = None
    target_pubkey: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "msg_type": self.msg_type.value,
            "payload": self.payload,
            "metadata": self.metadata,
            "route": self.route,
            "node": self.node,
            "target_site_id": self.target_site_id,
            "target_pubkey": self.target_pubkey,
            "source_peer": self.source_peer,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.as_dict(), ensure_ascii=False).encode()

    def inner(self) -> HiveMessage:
        """The nested envelope of a routing message."""
        return parse(self.payload, depth=1)


@dataclass(frozen=True, slots=True)
class BusMessage:
    """An OVOS bus message, the payload of `bus` and `shared_bus`."""

    type: str
    data: dict[str, Any]
    context: dict[str, Any]

    @classmethod
    def of(cls, payload: dict[str, Any]) -> BusMessage:
        kind = payload.get("type", payload.get("msg_type"))
        data = payload.get("data")
        context = payload.get("context")
        data = {} if data is None else data
        context = {} if context is None else context
        if not isinstance(kind, str) or not kind or len(kind) > 256:
            raise WireError("a bus message needs a type")
        if not isinstance(data, dict) or not isinstance(context, dict):
            raise WireError("a bus message's data and context are objects")
        return cls(kind, data, context)

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data, "context": self.context}


def _opt_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise WireError(f"{key} must be a string")


def parse(obj: object, *, depth: int = 0) -> HiveMessage:
    """A HiveMessage from a decoded JSON value."""
    if depth > MAX_DEPTH:
        raise WireError("messages nested too deep")
    if not isinstance(obj, dict):
        raise WireError("a message is a JSON object")
    try:
        msg_type = MsgType(str(obj.get("msg_type")))
    except ValueError as e:
        raise WireError("unknown msg_type") from e
    if msg_type is MsgType.BIN:
        raise WireError("bin messages travel as binary frames")
    payload = obj.get("payload")
    if payload is None:
        payload = {}
    elif isinstance(payload, str):  # some senders nest a serialized message
        try:
            payload = json.loads(payload)
        except ValueError as e:
            raise WireError("payload is not JSON") from e
    if not isinstance(payload, dict):
        raise WireError("payload must be an object")
    metadata = obj.get("metadata") or {}
    route = obj.get("route") or []
    if not isinstance(metadata, dict) or not isinstance(route, list):
        raise WireError("metadata is an object and route a list")
    msg = HiveMessage(
        msg_type,
        payload,
        metadata,
        route,
        _opt_str(obj, "node"),
        _opt_str(obj, "source_peer"),
        _opt_str(obj, "target_site_id"),
        _opt_str(obj, "target_pubkey"),
    )
    if msg_type in NESTED:
        parse(payload, depth=depth + 1)  # the nested envelope must be one too
    elif msg_type in (MsgType.BUS, MsgType.SHARED_BUS):
        BusMessage.of(payload)
    return msg


def loads(text: str | bytes) -> HiveMessage:
    try:
        obj = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise WireError("frame is not JSON") from e
    return parse(obj)


def bus(kind: str, data: dict[str, Any], context: dict[str, Any]) -> HiveMessage:
    return HiveMessage(MsgType.BUS, {"type": kind, "data": data, "context": context})
