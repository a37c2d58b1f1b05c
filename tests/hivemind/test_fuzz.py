"""Property tests on the live listener: whatever a connection sends, the server never crashes,
answers it only by closing it (1008/1009), and every other client keeps working."""

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

from hivecall.hivemind.guard import Failures
from hivecall.hivemind_protocol.crypto import envelope, new_iv
from hivecall.hivemind_protocol.wire import HiveMessage, MsgType, bus
from tests.hivemind.conftest import Cred, Hive
from tests.hivemind.peer import Peer

SHAKE = {"binarize": False, "encodings": ["JSON-B64"], "ciphers": ["AES-GCM"]}


def utterance() -> HiveMessage:
    return bus("recognizer_loop:utterance", {"utterances": ["ping"]}, {})


# One step of a hostile (or clumsy) client. "hs" means: after a real handshake.
steps = st.one_of(
    st.tuples(st.just("bytes"), st.binary(max_size=64)),
    st.tuples(st.just("text"), st.text(max_size=64)),
    st.tuples(
        st.just("json"),
        st.dictionaries(
            st.sampled_from(["msg_type", "payload", "ciphertext", "nonce", "tag"]),
            st.one_of(
                st.text(max_size=8),
                st.integers(),
                st.none(),
                st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
            ),
            max_size=5,
        ),
    ),
    st.tuples(st.just("shake"), st.sampled_from(["good", "bad_env", "no_env", "no_cipher"])),
    st.tuples(st.just("hs_flip"), st.integers(0, 10_000)),
    st.tuples(st.just("hs_truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("hs_wrong_tag"), st.binary(min_size=16, max_size=16)),
    st.tuples(st.just("hs_plain"), st.sampled_from(["hello", "shake", "bus"])),
    st.tuples(st.just("hs_sealed"), st.sampled_from(["shake", "ping", "bus_junk", "utter"])),
)


async def act(peer: Peer, cred: Cred, step: tuple[str, Any]) -> None:
    kind, arg = step
    if kind == "bytes" or kind == "text":
        await peer.ws.send(arg)
    elif kind == "json":
        await peer.ws.send(json.dumps(arg))
    elif kind == "shake":
        payload: dict[str, Any] = dict(SHAKE)
        if arg == "good":
            payload["envelope"] = envelope(cred.password, new_iv())
        elif arg == "bad_env":
            payload["envelope"] = envelope("wrong-password", new_iv())
        elif arg == "no_cipher":
            payload.update(envelope=envelope(cred.password, new_iv()), ciphers=["ROT13"])
        await peer.send_plain(MsgType.SHAKE, payload)
    elif peer.sealer is None:
        await peer.handshake()
    if not kind.startswith("hs_"):
        return
    frame = peer.seal(utterance())
    assert isinstance(frame, str)
    obj = json.loads(frame)
    if kind == "hs_flip":
        raw = bytearray(peer.sealer.seal(b'{"msg_type": "hello", "payload": {}}'))  # type: ignore[union-attr]
        raw[arg % len(raw)] ^= 0x40
        await peer.ws.send(bytes(raw))
    elif kind == "hs_truncate":
        obj["ciphertext"] = obj["ciphertext"][: arg % max(1, len(obj["ciphertext"]))]
        await peer.ws.send(json.dumps(obj))
    elif kind == "hs_wrong_tag":
        import base64

        obj["tag"] = base64.b64encode(arg).decode()
        await peer.ws.send(json.dumps(obj))
    elif kind == "hs_plain":
        await peer.send_plain(MsgType(arg) if arg != "bus" else MsgType.BUS, {"type": "x"})
    elif kind == "hs_sealed":
        msg = {
            "shake": HiveMessage(MsgType.SHAKE, {"envelope": "00" * 24}),
            "ping": HiveMessage(MsgType.PING, {}),
            "bus_junk": HiveMessage(MsgType.BUS, {"type": "x" * 300}),
            "utter": utterance(),
        }[arg]
        await peer.ws.send(peer.seal(msg))


@settings(
    max_examples=int(os.environ.get("HIVECALL_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sequence=st.lists(steps, min_size=1, max_size=4))
async def test_hostile_clients_only_ever_close_themselves(
    hive: Hive, caplog: pytest.LogCaptureFixture, sequence: list[tuple[str, Any]]
) -> None:
    if not hasattr(hive, "good"):
        # What one connection can do is the subject here: the failure limits (test_guard.py)
        # would close most of these hostile connections before their first frame.
        hive.listener.failures = Failures(per_key=10**6, per_address=10**6)
        cred = await hive.add(f"good-{os.urandom(4).hex()}")
        good = await Peer.connect(hive.port, cred.key, cred.password)
        await good.handshake()
        hive.good = (good, cred)  # type: ignore[attr-defined]
    good, cred = hive.good  # type: ignore[attr-defined]
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    try:
        for step in sequence:
            await act(peer, cred, step)
            await asyncio.sleep(0)
    except (ConnectionClosed, AssertionError, TimeoutError):
        pass  # the server closed on us mid-sequence: that is allowed
    await peer.ws.close()
    rcvd = peer.ws.protocol.close_rcvd
    assert rcvd is None or rcvd.code in (1000, 1008, 1009), rcvd
    # the well-behaved client is unaffected
    await good.send(utterance())
    assert (await good.recv_bus())[0] == "speak"
    assert (await good.recv_bus())[0] == "ovos.utterance.handled"
    # and nothing the hostile client did reached the server's error path
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records
