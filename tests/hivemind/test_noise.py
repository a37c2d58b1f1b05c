"""hivecall's Noise_XXpsk2 (hivemind/noise.py) against the `noiseprotocol` library's bytes, and
its failure modes: wrong PSK, tampered prologue, replayed and reordered transport messages."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hivecall.hivemind import noise
from hivecall.hivemind.permissions import ClientRecord
from hivecall.hivemind.v3 import NoiseResponder, PskCache

HERE = Path(__file__).parent
VECTOR: dict[str, Any] = json.loads((HERE / "noise_vector.json").read_text())
V12 = HERE.parents[1] / ".hivemind-clients" / "v12" / "bin" / "python"


def key(name: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes.fromhex(VECTOR[name]))


def pair(
    *, psk_i: bytes = b"\5" * 32, psk_r: bytes = b"\5" * 32, prologue_r: bytes = b"p"
) -> tuple[noise.Handshake, noise.Handshake]:
    i = noise.Handshake(
        initiator=True, static=X25519PrivateKey.generate(), psk=psk_i, prologue=b"p"
    )
    r = noise.Handshake(
        initiator=False, static=X25519PrivateKey.generate(), psk=psk_r, prologue=prologue_r
    )
    return i, r


def sessions(max_message: int = 2**20) -> tuple[noise.Transport, noise.Transport]:
    i, r = pair()
    r.read_message(i.write_message(b""))
    i.read_message(r.write_message(b""))
    r.read_message(i.write_message(b""))
    return i.transport(max_message=max_message), r.transport(max_message=max_message)


# -- against noiseprotocol -------------------------------------------------------------------


@pytest.mark.parametrize("initiator", [True, False])
def test_writes_the_bytes_noiseprotocol_writes(initiator: bool) -> None:
    """Each role, with the vector's fixed keys, writes exactly the library's messages and
    reads the other side's."""
    side = "initiator" if initiator else "responder"
    hs = noise.Handshake(
        initiator=initiator,
        static=key(f"{side}_static"),
        ephemeral=key(f"{side}_ephemeral"),
        psk=bytes.fromhex(VECTOR["psk"]),
        prologue=bytes.fromhex(VECTOR["prologue"]),
    )
    messages = VECTOR["messages"]
    payloads = [VECTOR["payload1"], VECTOR["payload2"], VECTOR["payload3"]]
    for n, (msg, payload) in enumerate(zip(messages, payloads, strict=True)):
        if (n % 2 == 0) == initiator:
            assert hs.write_message(bytes.fromhex(payload)).hex() == msg
        else:
            assert hs.read_message(bytes.fromhex(msg)).hex() == payload
    assert hs.finished and hs.handshake_hash.hex() == VECTOR["handshake_hash"]
    peer = "responder" if initiator else "initiator"
    assert hs.rs == noise.public_bytes(key(f"{peer}_static"))
    session = hs.transport(max_message=2**16)
    plain = [bytes.fromhex(t) for t in VECTOR["transport"]]
    sealed = [bytes.fromhex(t) for t in VECTOR["sealed"]]
    if initiator:
        assert session.seal(plain[0][1:], binarized=False) == [sealed[0]]
        assert session.seal(plain[1][1:], binarized=True) == [sealed[1]]
        assert session.open(sealed[2]) == (False, plain[2][1:])
    else:
        assert session.open(sealed[0]) == (False, plain[0][1:])
        assert session.open(sealed[1]) == (True, plain[1][1:])
        assert session.seal(plain[2][1:], binarized=False) == [sealed[2]]


def test_argon2id_psk_is_upstreams() -> None:
    """argon2id from `cryptography` equals upstream's derive_psk (argon2-cffi), salt
    SHA-256(node_id), t=3, m=64 MiB, p=1."""
    a = VECTOR["argon2id"]
    assert noise.derive_psk(a["password"], a["node_id"]).hex() == a["psk"]


@pytest.mark.slow
def test_vector_is_what_noiseprotocol_writes() -> None:
    """The vector file is the library's output (re-made in the 1.2 client's venv)."""
    if not V12.exists():
        pytest.fail(f"{V12} is missing: run `bash scripts/hivemind-clients.sh`")
    out = subprocess.run(
        [str(V12), str(HERE / "noise_vector.py")],
        capture_output=True,
        check=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent"},
    )
    assert json.loads(out.stdout) == VECTOR


# -- the handshake's failures ------------------------------------------------------------------


def test_a_wrong_psk_fails_both_ends() -> None:
    i, r = pair(psk_i=b"\6" * 32)
    r.read_message(i.write_message(b"{}"))  # message 1 is not authenticated by the PSK
    msg2 = r.write_message(b"{}")
    with pytest.raises(noise.NoiseError):
        i.read_message(msg2)  # the client sees it first
    with pytest.raises(noise.NoiseError):
        i.write_message(b"")  # and its handshake is dead


def test_a_tampered_prologue_fails_at_message_1() -> None:
    """e.g. a downgraded offer: with a PSK, message 1's payload is already sealed with the
    transcript hash as its AD, so the server sees the mismatch first."""
    i, r = pair(prologue_r=b"q")
    with pytest.raises(noise.NoiseError):
        r.read_message(i.write_message(b""))


@pytest.mark.parametrize("cut", [0, 10, 31])
def test_short_or_swapped_messages_fail(cut: int) -> None:
    i, r = pair()
    with pytest.raises(noise.NoiseError):
        r.read_message(i.write_message(b"")[:cut])
    i, r = pair()
    with pytest.raises(noise.NoiseError):
        i.read_message(b"")  # not the initiator's turn to read
    with pytest.raises(noise.NoiseError):
        r.write_message(b"")  # nor the responder's to write


def test_a_flipped_bit_in_message_3_fails() -> None:
    i, r = pair()
    r.read_message(i.write_message(b""))
    i.read_message(r.write_message(b""))
    msg3 = bytearray(i.write_message(b""))
    msg3[5] ^= 0x40
    with pytest.raises(noise.NoiseError):
        r.read_message(bytes(msg3))
    with pytest.raises(noise.NoiseError):
        r.transport(max_message=10)


def test_a_low_order_point_is_refused() -> None:
    i, r = pair()
    r.read_message(i.write_message(b""))
    msg2 = bytearray(r.write_message(b""))
    msg2[:32] = bytes(32)  # an all-zero ephemeral key
    with pytest.raises(noise.NoiseError):
        i.read_message(bytes(msg2))


# -- the transport -----------------------------------------------------------------------------


def test_transport_round_trip_both_ways() -> None:
    a, b = sessions()
    for n in range(3):
        (frame,) = a.seal(f"to b {n}".encode(), binarized=bool(n % 2))
        assert b.open(frame) == (bool(n % 2), f"to b {n}".encode())
        (back,) = b.seal(b"to a", binarized=False)
        assert a.open(back) == (False, b"to a")


def test_a_replayed_message_is_refused() -> None:
    a, b = sessions()
    (frame,) = a.seal(b"once", binarized=False)
    assert b.open(frame) == (False, b"once")
    with pytest.raises(noise.NoiseError):
        b.open(frame)


def test_reordered_or_dropped_messages_are_refused() -> None:
    a, b = sessions()
    (first,) = a.seal(b"1", binarized=False)
    (second,) = a.seal(b"2", binarized=False)
    with pytest.raises(noise.NoiseError):
        b.open(second)
    assert b.open(first) == (False, b"1")  # a failure moves nothing: the stream is intact
    assert b.open(second) == (False, b"2")


def test_a_message_sealed_the_other_way_is_refused() -> None:
    a, _ = sessions()
    (mine,) = a.seal(b"x", binarized=False)
    with pytest.raises(noise.NoiseError):
        a.open(mine)  # reflected back at its sender


@pytest.mark.parametrize("binarized", [False, True])
def test_long_messages_travel_in_chunks(binarized: bool) -> None:
    a, b = sessions()
    body = os.urandom(3 * noise.CHUNK + 17)
    frames = a.seal(body, binarized=binarized)
    assert len(frames) == 4 and all(len(f) <= noise.MAX_MESSAGE for f in frames)
    assert [b.open(f) for f in frames[:-1]] == [None, None, None]
    assert b.open(frames[-1]) == (binarized, body)
    exact = a.seal(b"x" * noise.CHUNK, binarized=False)
    assert len(exact) == 1 and b.open(exact[0]) == (False, b"x" * noise.CHUNK)
    just_over = b"y" * (noise.CHUNK + 1)
    two = a.seal(just_over, binarized=False)
    assert len(two) == 2 and b.open(two[0]) is None and b.open(two[1]) == (False, just_over)


def test_chunking_rules_are_enforced() -> None:
    a, b = sessions(max_message=2 * noise.CHUNK)
    first = a._send.encrypt(b"", bytes([noise.JSON_FIRST]) + b"part")
    (single,) = a.seal(b"inside", binarized=False)
    assert b.open(first) is None
    with pytest.raises(noise.NoiseError, match="inside a chunked"):
        b.open(single)  # a whole message in the middle of a long one
    a, b = sessions(max_message=2 * noise.CHUNK)
    with pytest.raises(noise.NoiseError, match="too long"):
        for frame in a.seal(b"w" * (3 * noise.CHUNK), binarized=True):
            b.open(frame)  # over the reassembly limit
    a, b = sessions()
    stray = a._send.encrypt(b"", bytes([noise.LAST]) + b"tail")
    with pytest.raises(noise.NoiseError, match="outside"):
        b.open(stray)
    a, b = sessions()
    with pytest.raises(noise.NoiseError, match="marker"):
        b.open(a._send.encrypt(b"", bytes([9]) + b"?"))
    a, b = sessions()
    with pytest.raises(noise.NoiseError, match="too long"):
        b.open(b"\0" * (noise.MAX_MESSAGE + 1))


# -- keys and PSKs -----------------------------------------------------------------------------


def test_the_static_key_outlives_restarts(tmp_path: Path) -> None:
    first = NoiseResponder(home=tmp_path / "home", node_id="hub", max_message=1 << 20)
    again = NoiseResponder(home=tmp_path / "home", node_id="hub", max_message=1 << 20)
    assert first.public_key == again.public_key and len(bytes.fromhex(first.public_key)) == 32
    path = tmp_path / "home" / noise.STATIC_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_bytes(b"short")
    with pytest.raises(noise.NoiseError, match="damaged"):
        noise.load_static_key(tmp_path / "home")


def record(cid: str, password: str) -> ClientRecord:
    return ClientRecord(
        cid, cid, "h", password, None, False, frozenset(), frozenset(), (), (), True, True, True
    )


async def test_psks_are_derived_once_and_forgotten_with_their_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def derive(password: str, node_id: str) -> bytes:
        calls.append(password)
        return hashlib.sha256(f"{password}@{node_id}".encode()).digest()

    monkeypatch.setattr(noise, "derive_psk", derive)
    cache = PskCache("hub", size=2, parallel=1)
    a, b, c = record("a", "pa"), record("b", "pb"), record("c", "pc")
    got = await asyncio.gather(*(cache.get(a) for _ in range(5)))  # concurrent: one derivation
    assert len(set(got)) == 1 and calls == ["pa"]
    await cache.get(b)
    await cache.get(c)  # the LRU holds two
    assert len(cache) == 2
    await cache.get(a)
    assert calls == ["pa", "pb", "pc", "pa"]
    cache.retain([record("a", "new password"), c])  # a's password changed, b was deleted
    assert len(cache) == 1
    assert await cache.get(c) == derive("pc", "hub")
