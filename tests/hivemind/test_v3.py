"""The listener's protocol v3 (Noise_XXpsk2) with hivecall's test peer: turns, and every
fail-closed rule (wrong password, replayed and reordered frames, plaintext, timeouts)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from hivecall.hivemind import noise
from hivecall.hivemind.connection import Phase
from hivecall.hivemind.guard import Failures
from hivecall.hivemind.sealing import V3Sealer
from hivecall.hivemind_protocol.crypto import envelope, new_iv
from hivecall.hivemind_protocol.wire import HiveMessage, MsgType
from tests.hivemind.conftest import Hive, MakeHive
from tests.hivemind.peer import Peer, psk_of


async def v3_peer(hive: Hive, name: str = "sat", **kw: bool) -> Peer:
    cred = await hive.add(name)
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.noise_handshake(**kw)
    return peer


async def gone(hive: Hive) -> None:
    """Wait for the server's side of closed connections to be cleaned up."""
    for _ in range(100):
        if not hive.listener.live:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("a connection outlived its close")


async def test_the_offer_names_v3_and_stays_v1_compatible(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.noise_offer()
    offer = peer.offer
    assert offer["min_protocol_version"] == 1 and offer["max_protocol_version"] == 3
    assert offer["noise"] == {"patterns": ["XXpsk2"], "suites": ["25519_ChaChaPoly_SHA256"]}
    assert offer["password"] is True and offer["ciphers"] and offer["encodings"]  # v1 too
    await peer.aclose()


@pytest.mark.parametrize("binarize", [False, True])
async def test_utterance_over_v3(hive: Hive, binarize: bool) -> None:
    peer = await v3_peer(hive, binarize=binarize)
    await peer.utter("hello over noise")
    kind, data = await peer.recv_bus()
    assert kind == "speak" and "hello over noise" in data["utterance"]
    assert (await peer.recv_bus())[0] == "ovos.utterance.handled"
    (conn,) = hive.listener.live
    assert (conn.version, conn.phase, conn.binarize) == (3, Phase.ESTABLISHED, binarize)
    assert conn.session_id == "s1"  # the encrypted hello was read
    assert isinstance(conn.sealer, V3Sealer)  # no v1 key at all
    await peer.aclose()


async def test_long_messages_both_ways(make_hive: MakeHive) -> None:
    async with make_hive(max_message_chars=200_000, spoken_max_chars=200_000) as hive:
        peer = await v3_peer(hive)
        text = "long " + "abcdefghij" * 15_000  # 150 kB: three Noise messages each way
        await peer.utter(text)
        kind, data = await peer.recv_bus()
        assert kind == "speak" and data["utterance"].endswith(text)
        await peer.aclose()


async def test_message_2_tells_the_chosen_encoding(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.noise_offer()
    assert await peer.noise_first() == {"encoding": "JSON-B64"}
    await peer.aclose()


async def test_a_wrong_password_closes_at_message_3(
    hive: Hive, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that pushes on past a message 2 it cannot read (hivemind-bus-client stops
    there) is closed on message 3; it never reaches a turn."""
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.noise_offer()
    await peer.noise_first(password="not-the-password-at-all", careless=True)
    await peer.noise_last()
    assert await peer.closed() == (1008, "invalid authorization")
    assert "wrong password" in caplog.text
    await gone(hive)
    assert await hive.hub.bridge.list_turns() == []


async def test_a_tampered_message_3_closes(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.noise_offer()
    await peer.noise_first()
    await peer.noise_last(tamper=True)
    assert await peer.closed() == (1008, "invalid authorization")


async def test_a_client_leaving_after_message_2_is_logged(
    hive: Hive, caplog: pytest.LogCaptureFixture
) -> None:
    """What the real client does with a wrong password: reads message 2, fails, leaves."""
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.noise_offer()
    with caplog.at_level(logging.INFO, logger="hivecall.hivemind.server"):
        with pytest.raises(noise.NoiseError):
            await peer.noise_first(password="Wrong-password-123456")
        await peer.aclose()
        await gone(hive)
    assert "during the Noise handshake" in caplog.text


async def test_a_tampered_offer_fails_message_1(hive: Hive) -> None:
    """The prologue binds the offer: a client that saw another one (a downgrade) is refused."""
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.noise_offer()
    peer.offer = {**peer.offer, "ciphers": ["AES-GCM"], "max_protocol_version": 1}
    with pytest.raises(Exception):  # noqa: B017 - the socket closes under the handshake
        await peer.noise_first()
    assert await peer.closed() == (1008, "malformed Noise message")


async def test_a_replayed_frame_closes(hive: Hive) -> None:
    peer = await v3_peer(hive)
    msg = HiveMessage(MsgType.BUS, {"type": "recognizer_loop:utterance", "data": {}})
    (frame,) = peer.seal_noise(msg)
    await peer.ws.send(frame)
    await peer.ws.send(frame)
    assert await peer.closed() == (1008, "frame does not decrypt")


async def test_reordered_frames_close(hive: Hive) -> None:
    peer = await v3_peer(hive)
    msg = HiveMessage(MsgType.BUS, {"type": "speak", "data": {}})
    (first,) = peer.seal_noise(msg)
    (second,) = peer.seal_noise(msg)
    await peer.ws.send(second)
    assert await peer.closed() == (1008, "frame does not decrypt")
    assert first  # never sent: the server had no way to see the gap but the nonce


async def test_plaintext_after_the_v3_handshake_closes(hive: Hive) -> None:
    peer = await v3_peer(hive)
    await peer.send_plain(MsgType.BUS, {"type": "recognizer_loop:utterance", "data": {}})
    assert await peer.closed() == (1008, "plaintext after the handshake")


async def test_v1_sealed_frames_on_a_v3_session_close(hive: Hive) -> None:
    peer = await v3_peer(hive)
    await peer.ws.send(json.dumps({"ciphertext": "AAAA", "nonce": "AAAA", "tag": "AAAA"}))
    assert await peer.closed() == (1008, "plaintext after the handshake")


async def test_a_frame_before_message_3_closes(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.noise_offer()
    await peer.noise_first()
    await peer.ws.send(b"\0" * 40)
    assert await peer.closed() == (1008, "encrypted frame before the handshake")


async def test_a_v1_envelope_inside_a_v3_handshake_closes(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.noise_offer()
    await peer.noise_first()
    env = {"envelope": envelope(cred.password, new_iv()), "ciphers": ["AES-GCM"]}
    await peer.send_plain(MsgType.SHAKE, env)
    assert await peer.closed() == (1008, "a v1 handshake inside a v3 one")


async def test_a_v3_message_inside_a_v1_handshake_closes(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.noise_offer()
    env = {"envelope": envelope(cred.password, new_iv()), "ciphers": ["AES-GCM"]}
    await peer.send_plain(MsgType.SHAKE, env)
    reply = await peer.recv_plain()
    while "envelope" not in reply.payload:  # a resent offer
        reply = await peer.recv_plain()
    msg1 = {"pattern": noise.PATTERN, "suite": noise.SUITE, "msg": "00" * 32}
    await peer.send_plain(MsgType.SHAKE, {"noise": msg1})
    assert await peer.closed() == (1008, "a v3 handshake inside a v1 one")


async def test_an_unoffered_pattern_closes(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.noise_offer()
    with pytest.raises(Exception):  # noqa: B017 - the socket closes under the handshake
        await peer.noise_first(pattern="KKpsk0")
    assert await peer.closed() == (1008, "Noise pattern or suite not offered")


async def test_the_handshake_deadline_covers_v3(make_hive: MakeHive) -> None:
    async with make_hive(hivemind_handshake_timeout=0.5) as hive:
        cred = await hive.add("sat")
        # the peer's own argon2id first: run inside the deadline it blocks this event loop
        await asyncio.to_thread(psk_of, cred.password, hive.listener.node_id)
        peer = await Peer.connect(hive.port, cred.key, cred.password)
        await peer.noise_offer()
        await peer.noise_first()  # and then nothing
        assert await peer.closed() == (1008, "handshake took too long")


async def test_without_argon2id_the_hub_offers_only_v1(
    make_hive: MakeHive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hivecall.hivemind.server.argon2_available", lambda: False)
    async with make_hive() as hive:
        cred = await hive.add("sat")
        peer = await Peer.connect(hive.port, cred.key, cred.password)
        await peer.noise_offer()
        assert peer.offer["max_protocol_version"] == 1 and "noise" not in peer.offer
        await peer.send_plain(MsgType.SHAKE, {"noise": {"msg": "00"}})
        assert await peer.closed() == (1008, "protocol v3 is not offered")


async def test_a_bad_v3_client_leaves_the_others_alone(hive: Hive) -> None:
    good = await v3_peer(hive, "good")
    legacy_cred = await hive.add("legacy")
    legacy = await Peer.connect(hive.port, legacy_cred.key, legacy_cred.password)
    await legacy.handshake()
    bad = await v3_peer(hive, "bad")
    await bad.ws.send(b"\x01" * 100)
    assert (await bad.closed())[0] == 1008
    for peer in (good, legacy):
        await peer.utter("still here")
        assert (await peer.recv_bus())[0] == "speak"
        await peer.aclose()


async def test_a_revoked_v3_client_is_disconnected(hive: Hive) -> None:
    peer = await v3_peer(hive)
    await hive.clients.delete("sat")
    await hive.listener.refresh()
    assert await peer.closed() == (1008, "client revoked")
    assert hive.listener.noise is not None and len(hive.listener.noise.psks) == 0


# -- hostile v3 clients (hypothesis) -----------------------------------------------------------

v3_steps = st.one_of(
    st.tuples(st.just("garbage"), st.binary(max_size=80)),
    st.tuples(st.just("text"), st.text(max_size=40)),
    st.tuples(st.just("flip"), st.integers(0, 10_000)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("replay"), st.none()),
    st.tuples(st.just("marker"), st.integers(0, 255)),
    st.tuples(st.just("utter"), st.none()),
    st.tuples(
        st.just("shake"),
        st.fixed_dictionaries(
            {},
            optional={
                "pattern": st.sampled_from(["XXpsk2", "KKpsk0", "", "x" * 300]),
                "suite": st.sampled_from([noise.SUITE, "25519_AESGCM_SHA256", ""]),
                "msg": st.one_of(st.text(max_size=70), st.binary(max_size=80).map(bytes.hex)),
            },
        ),
    ),
)


async def v3_act(peer: Peer, step: tuple[str, Any], last: list[bytes]) -> None:
    kind, arg = step
    if kind == "shake":
        await peer.send_plain(MsgType.SHAKE, {"noise": arg})
        return
    if peer.transport is None:
        await peer.noise_handshake()
    assert peer.transport is not None
    utter = HiveMessage(MsgType.BUS, {"type": "recognizer_loop:utterance", "data": {}})
    if kind == "garbage" or kind == "text":
        await peer.ws.send(arg)
    elif kind == "replay":
        if last:
            await peer.ws.send(last[-1])
    elif kind == "marker":
        await peer.ws.send(peer.transport._send.encrypt(b"", bytes([arg]) + b"{}"))
    else:
        (frame,) = peer.seal_noise(utter)
        if kind == "flip":
            raw = bytearray(frame)
            raw[arg % len(raw)] ^= 0x08
            frame = bytes(raw)
        elif kind == "truncate":
            frame = frame[: arg % len(frame)]
        last.append(frame)
        await peer.ws.send(frame)


@settings(
    max_examples=int(os.environ.get("HIVECALL_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sequence=st.lists(v3_steps, min_size=1, max_size=4))
async def test_hostile_v3_clients_only_ever_close_themselves(
    hive: Hive, caplog: pytest.LogCaptureFixture, sequence: list[tuple[str, Any]]
) -> None:
    if not hasattr(hive, "good3"):
        hive.listener.failures = Failures(per_key=10**6, per_address=10**6)  # as in test_fuzz
        good = await v3_peer(hive, f"good-{os.urandom(4).hex()}")
        hive.good3 = good  # type: ignore[attr-defined]
    good = hive.good3  # type: ignore[attr-defined]
    cred = await hive.add(f"bad-{os.urandom(4).hex()}")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    try:
        for step in sequence:
            await v3_act(peer, step, [])
            await asyncio.sleep(0)
    except (ConnectionClosed, AssertionError, TimeoutError, noise.NoiseError, KeyError):
        pass  # the server closed on us mid-sequence: that is allowed
    await peer.ws.close()
    rcvd = peer.ws.protocol.close_rcvd
    assert rcvd is None or rcvd.code in (1000, 1008, 1009), rcvd
    await good.utter("still here")
    assert (await good.recv_bus())[0] == "speak"
    assert (await good.recv_bus())[0] == "ovos.utterance.handled"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records
