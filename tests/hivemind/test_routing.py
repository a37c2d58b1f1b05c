"""Routed messages (propagate, broadcast, escalate) carry a bus message to other clients: the one
at the bottom is held to the sender's allowed_types exactly as a direct bus message is, every
routing level to the sender's rights, and each receiver's message blacklist applies to it."""

from __future__ import annotations

from typing import Any

import pytest

from hivecall.hivemind_protocol.wire import HiveMessage, MsgType, bus
from tests.hivemind.conftest import Cred, Hive
from tests.hivemind.peer import Peer
from tests.hivemind.test_server import established

ALLOWED = "recognizer_loop:record_begin"  # in the default allowed_types


def routed(*levels: MsgType, kind: str, data: dict[str, Any] | None = None) -> HiveMessage:
    """`levels[0]{levels[1]{… bus kind}}`."""
    msg = bus(kind, data or {}, {})
    for level in reversed(levels):
        msg = HiveMessage(level, msg.as_dict())
    return msg


async def pair(hive: Hive, **rights: bool) -> tuple[Peer, Peer, Cred]:
    """A sender with `rights` and a receiver, both connected."""
    a = await hive.add("a", admin=rights.pop("admin", False))
    b = await hive.add("b")
    for flag, value in rights.items():
        await hive.clients.set_flag("a", flag, value)
    await hive.listener.refresh()
    pa = await Peer.connect(hive.port, a.key, a.password)
    pb = await Peer.connect(hive.port, b.key, b.password)
    await pa.handshake()
    await pb.handshake()
    await established(hive, 2)
    return pa, pb, a


async def refused(peer: Peer) -> dict[str, Any]:
    kind, data = await peer.recv_bus()
    assert kind == "hive.message.refused", (kind, data)
    assert data["error"]["code"] == "hivemind_refused"
    return data


@pytest.mark.parametrize(
    ("outer", "rights"),
    [
        (MsgType.PROPAGATE, {"can_propagate": True}),
        (MsgType.BROADCAST, {"admin": True, "can_broadcast": True}),
    ],
)
async def test_a_routed_bus_type_the_sender_may_not_send_is_refused(
    hive: Hive, outer: MsgType, rights: dict[str, bool]
) -> None:
    pa, pb, _ = await pair(hive, **rights)
    await pa.send(routed(outer, kind="speak", data={"utterance": "rm -rf, said the hub"}))
    data = await refused(pa)
    assert (data["msg_type"], data["type"]) == (outer.value, "speak")
    # b never got it: the next thing b hears is the allowed message sent after it
    await pa.send(routed(outer, kind=ALLOWED, data={"n": 2}))
    assert await pb.recv_bus() == (ALLOWED, {"n": 2})


async def test_allowing_the_type_lets_it_through(hive: Hive) -> None:
    pa, pb, _ = await pair(hive, can_propagate=True)
    await pa.send(routed(MsgType.PROPAGATE, kind="mycroft.stop"))
    assert (await refused(pa))["type"] == "mycroft.stop"
    await hive.clients.list_add("a", "allowed_types", "mycroft.stop")
    await hive.listener.refresh()
    await pa.send(routed(MsgType.PROPAGATE, kind="mycroft.stop"))
    assert (await pb.recv_bus())[0] == "mycroft.stop"


async def test_escalate_is_checked_and_told_too(hive: Hive) -> None:
    """Escalate stops at this hub, but a refused one is told, as a direct bus message is."""
    pa, _, _ = await pair(hive)  # can_escalate is on by default
    await pa.send(routed(MsgType.ESCALATE, kind="speak"))
    data = await refused(pa)
    assert (data["msg_type"], data["type"]) == ("escalate", "speak")
    await pa.send(routed(MsgType.ESCALATE, kind=ALLOWED))  # allowed: dropped quietly
    await pa.utter("still here")
    assert (await pa.recv_bus())[0] == "speak"


async def test_every_routing_level_needs_its_right(hive: Hive) -> None:
    """An administrator who may broadcast but not propagate cannot hide a propagate inside."""
    pa, pb, _ = await pair(hive, admin=True, can_broadcast=True, can_propagate=False)
    await pa.send(routed(MsgType.BROADCAST, MsgType.PROPAGATE, kind=ALLOWED))
    assert (await refused(pa))["msg_type"] == "broadcast"
    await pa.send(routed(MsgType.BROADCAST, MsgType.BROADCAST, kind="speak"))  # deep: still
    assert (await refused(pa))["type"] == "speak"
    await pa.send(routed(MsgType.BROADCAST, kind=ALLOWED, data={"ok": True}))
    assert await pb.recv_bus() == (ALLOWED, {"ok": True})


@pytest.mark.parametrize("inner", [MsgType.CASCADE, MsgType.QUERY])
async def test_unhandled_routing_types_are_not_passed_on(hive: Hive, inner: MsgType) -> None:
    pa, pb, _ = await pair(hive, can_propagate=True)
    await pa.send(routed(MsgType.PROPAGATE, inner, kind="speak"))
    assert (await refused(pa))["msg_type"] == "propagate"
    await pa.send(routed(MsgType.PROPAGATE, kind=ALLOWED, data={"n": 1}))
    assert await pb.recv_bus() == (ALLOWED, {"n": 1})


@pytest.mark.parametrize("inner", [MsgType.HELLO, MsgType.SHAKE, MsgType.INTERCOM])
async def test_only_bus_messages_are_routed(hive: Hive, inner: MsgType) -> None:
    pa, pb, _ = await pair(hive, can_propagate=True)
    await pa.send(HiveMessage(MsgType.PROPAGATE, HiveMessage(inner, {"envelope": "x"}).as_dict()))
    assert (await refused(pa))["msg_type"] == "propagate"
    await pa.send(routed(MsgType.PROPAGATE, kind=ALLOWED, data={"n": 1}))
    assert await pb.recv_bus() == (ALLOWED, {"n": 1})


async def test_the_receivers_blacklist_applies_to_nested_messages(hive: Hive) -> None:
    pa, pb, _ = await pair(hive, admin=True, can_broadcast=True, can_propagate=True)
    await hive.clients.list_add("b", "message_blacklist", ALLOWED)
    await hive.listener.refresh()
    await pa.send(routed(MsgType.PROPAGATE, MsgType.PROPAGATE, kind=ALLOWED))
    await pa.send(routed(MsgType.PROPAGATE, kind="recognizer_loop:record_end"))
    first = await pb.recv()  # the nested blacklisted one never came
    assert (first.msg_type, first.payload["type"]) == (MsgType.BUS, "recognizer_loop:record_end")
