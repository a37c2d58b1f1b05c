"""Password envelopes, key derivation and the two AEAD ciphers, JSON and binary."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecall.hivemind_protocol.crypto import (
    TAG_BYTES,
    Cipher,
    CryptoError,
    Sealer,
    derive_key,
    envelope,
    envelope_iv,
    new_iv,
    verify_envelope,
)
from hivecall.hivemind_protocol.encodings import ENCODERS, Encoding

KEY = bytes(range(32))


def test_envelope_verifies_only_its_password() -> None:
    iv = new_iv()
    env = envelope("correct horse battery staple", iv)
    assert len(env) == 48 and env[:16] == iv.hex()
    assert envelope_iv(env) == iv
    assert verify_envelope(env, "correct horse battery staple")
    assert not verify_envelope(env, "correct horse battery stapler")


@pytest.mark.parametrize("bad", ["", "zz" * 30, "ab" * 10, 42, None, "é" * 48, "ab" * 41])
def test_envelope_garbage_is_a_crypto_error(bad: object) -> None:
    with pytest.raises(CryptoError):
        envelope_iv(bad)


def test_both_sides_derive_the_same_key() -> None:
    a, b = new_iv(), new_iv()
    k1 = derive_key("pw", a, b)
    assert k1 == derive_key("pw", b, a) and len(k1) == 32
    assert k1 != derive_key("pw2", a, b)


@pytest.mark.parametrize("cipher", list(Cipher))
@given(plain=st.binary(max_size=2000))
@settings(max_examples=40)
def test_binary_round_trip(cipher: Cipher, plain: bytes) -> None:
    s = Sealer(cipher, KEY)
    frame = s.seal(plain)
    nonce, out = s.open(frame)
    assert out == plain and len(nonce) == s.nonce_bytes
    assert len(frame) == s.nonce_bytes + len(plain) + TAG_BYTES


@pytest.mark.parametrize("cipher", list(Cipher))
@pytest.mark.parametrize("encoding", list(Encoding))
def test_json_round_trip_and_tagless_form(cipher: Cipher, encoding: Encoding) -> None:
    s = Sealer(cipher, KEY)
    frame = json.loads(s.seal_json(b'{"a": 1}', encoding))
    assert s.open_json(frame, encoding)[1] == b'{"a": 1}'
    # WebCrypto form: no tag field, the tag at the end of the ciphertext.
    dec = {k: v for k, v in frame.items()}
    from hivecall.hivemind_protocol.encodings import DECODERS

    ct = DECODERS[encoding](dec.pop("ciphertext")) + DECODERS[encoding](dec.pop("tag"))
    dec["ciphertext"] = ENCODERS[encoding](ct)
    assert s.open_json(dec, encoding)[1] == b'{"a": 1}'


@pytest.mark.parametrize("cipher", list(Cipher))
@given(data=st.data())
@settings(max_examples=60)
def test_tampering_never_decrypts(cipher: Cipher, data: st.DataObject) -> None:
    s = Sealer(cipher, KEY)
    frame = bytearray(s.seal(os.urandom(40)))
    how = data.draw(st.sampled_from(["flip", "truncate", "wrong_key"]))
    if how == "flip":
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] ^= 1 << data.draw(st.integers(0, 7))
        other = s
    elif how == "truncate":
        frame = frame[: data.draw(st.integers(0, len(frame) - 1))]
        other = s
    else:
        other = Sealer(cipher, os.urandom(32))
    with pytest.raises(CryptoError):
        other.open(bytes(frame))


@pytest.mark.parametrize(
    "frame",
    [
        {},
        {"ciphertext": "AA==", "nonce": 5},
        {"ciphertext": "!!", "nonce": "AAAAAAAAAAAAAAAA", "tag": "AA=="},
        {"ciphertext": "AA==", "nonce": "AAAA", "tag": "AAAAAAAAAAAAAAAAAAAAAA=="},
        {"ciphertext": "AA==", "nonce": "AAAAAAAAAAAAAAAAAAAAAA==", "tag": "AA=="},
    ],
)
def test_bad_json_frames_are_crypto_errors(frame: dict[str, object]) -> None:
    with pytest.raises(CryptoError):
        Sealer(Cipher.AES_GCM, KEY).open_json(frame, Encoding.B64)
