"""Make the Noise_XXpsk2 known-answer vector with the `noiseprotocol` library (upstream's).

    cd tests/hivemind && ../../.hivemind-clients/v12/bin/python noise_vector.py >noise_vector.json

Runs in the 1.2 client's venv (noiseprotocol 0.3.1, what hivemind-bus-client's poorman-handshake
uses), with fixed keys so the transcript is fixed: test_noise.py checks that hivecall's own
Noise writes the same bytes in both roles, and re-runs this to show the file came from there.
Also one PSK from upstream's own password stretch (poorman_handshake.noise.derive_psk, the
argon2-cffi library). Never imports hivecall.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from noise.connection import Keypair, NoiseConnection  # type: ignore[import-not-found]
from poorman_handshake.noise import derive_psk  # type: ignore[import-not-found]

NAME = b"Noise_XXpsk2_25519_ChaChaPoly_SHA256"
VECTOR: dict[str, Any] = {
    "initiator_static": "01" * 32,
    "initiator_ephemeral": "02" * 32,
    "responder_static": "03" * 32,
    "responder_ephemeral": "04" * 32,
    "psk": "05" * 32,
    "prologue": b'{"node_id":"hub"}{"max_protocol_version":3}Noise_XXpsk2'.hex(),
    "payload1": b'{"binarize":true,"encodings":["JSON-HEX"]}'.hex(),
    "payload2": b'{"encoding":"JSON-HEX"}'.hex(),
    "payload3": "",
    # transport plaintexts (marker byte + body): initiator to responder twice, then back
    "transport": [b"\x00first".hex(), b"\x01second".hex(), b"\x00reply".hex()],
}


def connection(initiator: bool) -> NoiseConnection:
    side = "initiator" if initiator else "responder"
    c = NoiseConnection.from_name(NAME)
    c.set_keypair_from_private_bytes(Keypair.STATIC, bytes.fromhex(VECTOR[f"{side}_static"]))
    c.set_keypair_from_private_bytes(Keypair.EPHEMERAL, bytes.fromhex(VECTOR[f"{side}_ephemeral"]))
    c.set_psks(bytes.fromhex(VECTOR["psk"]))
    c.set_prologue(bytes.fromhex(VECTOR["prologue"]))
    if initiator:
        c.set_as_initiator()
    else:
        c.set_as_responder()
    c.start_handshake()
    return c


def main() -> None:
    warnings.simplefilter("ignore")  # "ephemeral keypair already set": fine for a vector
    i, r = connection(True), connection(False)
    out = dict(VECTOR)
    m1 = i.write_message(bytes.fromhex(VECTOR["payload1"]))
    assert r.read_message(m1).hex() == VECTOR["payload1"]
    m2 = r.write_message(bytes.fromhex(VECTOR["payload2"]))
    assert i.read_message(m2).hex() == VECTOR["payload2"]
    m3 = i.write_message(b"")
    assert r.read_message(m3) == b""
    t = VECTOR["transport"]
    out["messages"] = [m1.hex(), m2.hex(), m3.hex()]
    out["handshake_hash"] = i.get_handshake_hash().hex()
    out["sealed"] = [
        i.encrypt(bytes.fromhex(t[0])).hex(),
        i.encrypt(bytes.fromhex(t[1])).hex(),
        r.encrypt(bytes.fromhex(t[2])).hex(),
    ]
    password, node_id = "Correct-horse-battery-staple-42", "hivecall::hub"
    out["argon2id"] = {
        "password": password,
        "node_id": node_id,
        "psk": derive_psk(password, node_id=node_id).hex(),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
