"""The listener with hivecall's own test peer: turns, and every fail-closed rule."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from hivecall.hivemind.connection import Phase
from hivecall.hivemind_protocol.crypto import envelope, new_iv
from hivecall.hivemind_protocol.wire import HiveMessage, MsgType, bus
from tests.hivemind.conftest import Hive
from tests.hivemind.peer import Peer


async def test_utterance_is_answered_with_speak_then_handled(hive: Hive) -> None:
    cred = await hive.add("kitchen")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake()
    await peer.utter("what time is it")
    kind, data = await peer.recv_bus()
    assert kind == "speak"
    assert "what time is it" in data["utterance"]
    assert (await peer.recv_bus())[0] == "ovos.utterance.handled"
    turns = await hive.hub.bridge.list_turns()
    assert [t.source for t in turns] == ["hivemind"] and turns[0].session_id.startswith("hm-")
    await peer.aclose()


@pytest.mark.parametrize("binarize", [False, True])
@pytest.mark.parametrize("cipher", ["AES-GCM", "CHACHA20-POLY1305"])
@pytest.mark.parametrize("encoding", ["JSON-B91", "JSON-Z85P", "JSON-HEX"])
async def test_every_cipher_encoding_and_framing(
    hive: Hive, binarize: bool, cipher: str, encoding: str
) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake(ciphers=[cipher], encodings=[encoding], binarize=binarize)
    await peer.utter("hello there")
    assert (await peer.recv_bus())[0] == "speak"
    await peer.aclose()


async def test_unknown_access_key_is_closed_at_once(hive: Hive) -> None:
    peer = await Peer.connect(hive.port, "not-a-key-at-all", "whatever-password")
    assert await peer.closed() == (1008, "invalid authorization")


async def test_wrong_password_is_detected_from_the_envelope(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    with pytest.raises(Exception):  # noqa: B017 - the socket closes under the handshake
        await peer.handshake(password="not-the-password-at-all")
    assert await peer.closed() == (1008, "invalid authorization")


@pytest.mark.parametrize(
    "payload",
    [
        {"msg_type": "bus", "payload": {"type": "recognizer_loop:utterance"}},
        {"msg_type": "propagate", "payload": {"msg_type": "bus", "payload": {"type": "x"}}},
        {"msg_type": "ping", "payload": {}},
    ],
)
async def test_only_hello_and_shake_before_the_handshake(hive: Hive, payload: dict) -> None:  # type: ignore[type-arg]
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.ws.send(json.dumps(payload))
    code, _ = await peer.closed()
    assert code == 1008


async def test_plaintext_after_the_handshake_closes(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake()
    await peer.send_plain(MsgType.BUS, {"type": "recognizer_loop:utterance", "data": {}})
    assert await peer.closed() == (1008, "plaintext after the handshake")


async def test_a_replayed_frame_is_refused(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake()
    frame = peer.seal(bus("recognizer_loop:record_begin", {}, {}))
    await peer.ws.send(frame)
    await peer.ws.send(frame)
    assert await peer.closed() == (1008, "nonce reused")


async def test_tampered_frame_closes(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake(binarize=True)
    frame = bytearray(peer.seal(bus("recognizer_loop:record_begin", {}, {})))  # type: ignore[arg-type]
    frame[-1] ^= 1
    await peer.ws.send(bytes(frame))
    assert await peer.closed() == (1008, "frame does not decrypt")


async def test_big_frames_before_the_handshake_close(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.ws.send("x" * 10_000)
    assert await peer.closed() == (1008, "frame too large before the handshake")


async def test_frames_over_the_limit_close(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake()
    await peer.ws.send(os.urandom(hive.settings.hivemind_max_frame_bytes + 1))
    code, _ = await peer.closed()
    assert code == 1009


async def test_handshake_has_a_deadline(hive: Hive) -> None:
    hive.listener.handshake_timeout = 0.3
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    assert await peer.closed() == (1008, "handshake took too long")


async def test_a_second_client_shake_rekeys_before_the_first_frame(hive: Hive) -> None:
    """What 0.4.4 does when it sees the offer twice: the key follows its last envelope."""
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.recv_plain()
    await peer.recv_plain()
    shake = {"binarize": False, "encodings": ["JSON-B64"], "ciphers": ["AES-GCM"]}
    await peer.send_plain(MsgType.SHAKE, {**shake, "envelope": envelope(cred.password, new_iv())})
    # The peer's own handshake sends a second shake and keys from it.
    await peer.handshake(read_offer=False)
    await peer.utter("second try")
    assert (await peer.recv_bus())[0] == "speak"


async def test_disallowed_message_type_is_refused_and_told(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake()
    await peer.send(bus("mycroft.stop", {}, {}))
    kind, data = await peer.recv_bus()
    assert kind == "hive.message.refused"
    assert data["type"] == "mycroft.stop" and data["error"]["code"] == "hivemind_refused"
    # the connection stays usable
    await peer.utter("still there?")
    assert (await peer.recv_bus())[0] == "speak"


async def test_allow_msg_and_blacklist_apply_to_live_connections(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake()
    await hive.clients.list_remove("sat", "allowed_types", "recognizer_loop:utterance")
    await hive.listener.refresh()
    await peer.utter("hello")
    assert (await peer.recv_bus())[0] == "hive.message.refused"
    await hive.clients.list_add("sat", "allowed_types", "recognizer_loop:utterance")
    await hive.clients.list_add("sat", "message_blacklist", "speak")
    await hive.listener.refresh()
    await peer.utter("hello")
    assert (await peer.recv_bus())[0] == "ovos.utterance.handled"  # speak withheld


async def test_deleting_a_client_disconnects_it(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake()
    await hive.clients.delete("sat")
    # the listener notices within its refresh interval, without being told
    assert await peer.closed(timeout=5) == (1008, "client revoked")


async def established(hive: Hive, n: int) -> None:
    """Wait until the hub has read a sealed frame from `n` clients (a client's handshake ends
    when it sends its hello; the hub counts it from the moment it decrypts one)."""
    async with asyncio.timeout(5):
        while sum(c.phase is Phase.ESTABLISHED for c in hive.listener.live) < n:
            await asyncio.sleep(0.01)


async def test_routing_rights(hive: Hive) -> None:
    a = await hive.add("a")
    b = await hive.add("b")
    pa = await Peer.connect(hive.port, a.key, a.password)
    pb = await Peer.connect(hive.port, b.key, b.password)
    await pa.handshake()
    await pb.handshake()
    await established(hive, 2)  # else a propagate may overtake b's hello (b not yet counted)
    inner = bus("hello.everyone", {"x": 1}, {}).as_dict()
    await pa.send(HiveMessage(MsgType.PROPAGATE, inner))
    kind, data = await pa.recv_bus()
    assert kind == "hive.message.refused" and data["msg_type"] == "propagate"
    await hive.clients.set_flag("a", "can_propagate", True)
    await hive.clients.list_add("a", "allowed_types", "hello.everyone")  # test_routing.py
    await hive.listener.refresh()
    await pa.send(HiveMessage(MsgType.PROPAGATE, inner))
    assert await pb.recv_bus() == ("hello.everyone", {"x": 1})
    await pa.send(HiveMessage(MsgType.BROADCAST, inner))
    assert (await pa.recv_bus())[1]["msg_type"] == "broadcast"  # admins only


async def test_bad_frames_never_affect_other_connections(hive: Hive) -> None:
    cred = await hive.add("sat")
    good = await Peer.connect(hive.port, cred.key, cred.password)
    await good.handshake()
    garbage: list[str | bytes] = [b"\x00" * 40, "{", "[" * 5000, json.dumps({"ciphertext": 1})]
    for junk in garbage:
        bad = await Peer.connect(hive.port, cred.key, cred.password)
        await bad.handshake()
        await bad.ws.send(junk)
        code, _ = await bad.closed()
        assert code == 1008
    await good.utter("are you fine")
    assert (await good.recv_bus())[0] == "speak"
    await asyncio.sleep(0)


async def test_authorization_query_parsing(hive: Hive) -> None:
    import base64

    cred = await hive.add("sat")
    good = base64.b64encode(f"agent:{cred.key}".encode()).decode()
    auth = hive.listener.authenticate
    found = auth(f"/?authorization={good}")
    assert found is not None and found[0].name == "sat" and found[1] == "agent"
    assert auth(f"/?x=1&authorization={good.replace('+', '%2B')}") is not None
    for bad in [
        "/",
        "/?authorization=",
        "/?authorization=!!!notbase64",
        "/?authorization=" + base64.b64encode(cred.key.encode()).decode(),  # no useragent:
        "/?authorization=" + base64.b64encode(b"ua:wrong-key").decode(),
        "/?" + "&".join(f"f{i}=1" for i in range(20)) + f"&authorization={good}",
    ]:
        assert auth(bad) is None, bad
