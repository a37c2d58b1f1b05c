"""HiveMind protocol v3: the Noise_XXpsk2_25519_ChaChaPoly_SHA256 handshake and its transport.

Written from the Noise specification (revision 34) on `cryptography`'s X25519,
ChaCha20-Poly1305 and SHA-256/HMAC; checked byte for byte against the `noiseprotocol` library
upstream uses, and live against hivemind-bus-client 1.2.x (tests/hivemind/).

How HiveMind carries it (as hivemind-bus-client 1.2 and hivemind-core's v3 server do):
- the server's plaintext `shake` offer adds `"max_protocol_version": 3` and
  `"noise": {"patterns": [...], "suites": [...]}`; a client that wants v3 answers with a
  plaintext `shake` `{"noise": {"pattern", "suite", "msg": hex(message 1)}}` (its payload: the
  canonical JSON `{"binarize", "encodings"}`), the server with `{"noise": {"msg": hex(message
  2)}}` (payload `{"encoding"}`), the client with `{"noise": {"msg": hex(message 3)}}`;
- the prologue binds the negotiation: canonical JSON (sorted keys, no spaces) of the server's
  `hello` payload, then of its `shake` offer, then the protocol name;
- the PSK is argon2id(password, salt = SHA-256(the server's node_id), t=3, m=64 MiB, p=1, 32
  bytes), so a wrong password fails the handshake's AEAD (never sent, no offline verifier
  beyond what the pattern itself gives an attacker who holds the access key);
- after Split() every frame is one binary websocket message: a Noise transport message (empty
  AD, counter nonces: a replayed, dropped or reordered frame does not decrypt) whose plaintext
  starts with a marker byte: 0 JSON, 1 binarized, 2/3 the first chunk of a JSON/binarized
  message too long for one Noise message (65535 bytes), 4 a middle chunk, 5 the last. No rekey.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

PROTOCOL_VERSION = 3
PATTERN = "XXpsk2"
SUITE = "25519_ChaChaPoly_SHA256"
PROTOCOL_NAME = f"Noise_{PATTERN}_{SUITE}"
MAX_MESSAGE = 65535  # the Noise limit on one message
TAG = 16
KEY = 32
CHUNK = 65000  # body bytes per chunk of a long message (what upstream sends)
MAX_NONCE = 2**64 - 1  # reserved by the spec: a key is done before it
STATIC_KEY_FILE = "hivemind-noise.key"

# argon2id parameters of the password -> PSK stretch (upstream's, so both ends agree)
ARGON2_ITERATIONS = 3
ARGON2_MEMORY_KIB = 64 * 1024
ARGON2_LANES = 1

JSON_ONE, BINARY_ONE, JSON_FIRST, BINARY_FIRST, MORE, LAST = range(6)

# (tokens of each message) for XXpsk2: -> e / <- e, ee, s, es, psk / -> s, se
_MESSAGES: tuple[tuple[str, ...], ...] = (("e",), ("e", "ee", "s", "es", "psk"), ("s", "se"))
_DEAD = 99  # a handshake whose message failed: it takes no other


class NoiseError(ValueError):
    """A handshake or transport message that does not authenticate or is malformed."""


# -- the password and the negotiation ---------------------------------------------------------


def argon2_available() -> bool:
    """Whether this `cryptography` can run argon2id (44+, on an OpenSSL that has it)."""
    try:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        Argon2id(salt=b"\0" * 16, length=32, iterations=1, lanes=1, memory_cost=8)
    except (ImportError, UnsupportedAlgorithm):
        return False
    return True


def derive_psk(password: str, node_id: str) -> bytes:
    """The 32-byte PSK of a password at the server `node_id`: ~0.15 s and 64 MiB of work, the
    GIL released (run it off the event loop)."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    return Argon2id(
        salt=hashlib.sha256(node_id.encode()).digest(),
        length=KEY,
        iterations=ARGON2_ITERATIONS,
        lanes=ARGON2_LANES,
        memory_cost=ARGON2_MEMORY_KIB,
    ).derive(password.encode())


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def prologue(hello: dict[str, Any], offer: dict[str, Any], name: str = PROTOCOL_NAME) -> bytes:
    """What both ends bind into the handshake: the server's plaintext hello and shake offer."""
    return canonical_json(hello) + canonical_json(offer) + name.encode()


def load_static_key(home: Path) -> X25519PrivateKey:
    """The server's long-term X25519 key in `home` (created once, mode 0600). Clients pin it on
    first use and refuse a server whose key changed, so it must outlive restarts."""
    path = home / STATIC_KEY_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        home.mkdir(parents=True, exist_ok=True)
        raw = X25519PrivateKey.generate().private_bytes_raw()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            raw = path.read_bytes()
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
    if len(raw) != KEY:
        raise NoiseError(f"{path} is damaged (expected {KEY} bytes)")
    return X25519PrivateKey.from_private_bytes(raw)


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# -- the Noise objects ------------------------------------------------------------------------


def _hkdf(ck: bytes, ikm: bytes, outputs: int) -> list[bytes]:
    temp = hmac.digest(ck, ikm, "sha256")
    out = [hmac.digest(temp, b"\x01", "sha256")]
    while len(out) < outputs:
        out.append(hmac.digest(temp, out[-1] + bytes([len(out) + 1]), "sha256"))
    return out


def _dh(private: X25519PrivateKey, public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as e:  # a low-order point: an all-zero shared secret
        raise NoiseError("bad public key") from e


class CipherState:
    """One direction's key and 64-bit counter nonce."""

    __slots__ = ("_aead", "n")

    def __init__(self, key: bytes | None = None) -> None:
        self._aead = ChaCha20Poly1305(key) if key is not None else None
        self.n = 0

    @property
    def has_key(self) -> bool:
        return self._aead is not None

    def _nonce(self) -> bytes:
        if self.n >= MAX_NONCE:
            raise NoiseError("nonces exhausted")
        return b"\0\0\0\0" + self.n.to_bytes(8, "little")

    def encrypt(self, ad: bytes, plain: bytes) -> bytes:
        if self._aead is None:
            return plain
        out = self._aead.encrypt(self._nonce(), plain, ad)
        self.n += 1
        return out

    def decrypt(self, ad: bytes, data: bytes) -> bytes:
        """Plaintext; NoiseError (and the counter unmoved) when `data` does not authenticate
        at this position of the stream."""
        if self._aead is None:
            return data
        try:
            out = self._aead.decrypt(self._nonce(), data, ad)
        except InvalidTag as e:
            raise NoiseError("message does not authenticate") from e
        self.n += 1
        return out


class Handshake:
    """Noise_XXpsk2_25519_ChaChaPoly_SHA256, either role (the HiveMind client initiates)."""

    __slots__ = ("_cipher", "_ck", "_e", "_h", "_i", "_psk", "_re", "_s", "initiator", "rs")

    def __init__(
        self,
        *,
        initiator: bool,
        static: X25519PrivateKey,
        psk: bytes,
        prologue: bytes,
        ephemeral: X25519PrivateKey | None = None,  # fixed only by known-answer tests
    ) -> None:
        if len(psk) != KEY:
            raise NoiseError("a PSK is 32 bytes")
        name = PROTOCOL_NAME.encode()
        self._h = name.ljust(32, b"\0") if len(name) <= 32 else hashlib.sha256(name).digest()
        self._ck = self._h
        self._cipher = CipherState()
        self._mix_hash(prologue)
        self.initiator = initiator
        self._s = static
        self._e = ephemeral
        self._psk = psk
        self._re = b""
        self.rs: bytes | None = None  # the peer's static key, once a message carried it
        self._i = 0  # the next message of the pattern

    # the SymmetricState
    def _mix_hash(self, data: bytes) -> None:
        self._h = hashlib.sha256(self._h + data).digest()

    def _mix_key(self, ikm: bytes) -> None:
        self._ck, key = _hkdf(self._ck, ikm, 2)
        self._cipher = CipherState(key)

    def _mix_key_and_hash(self, ikm: bytes) -> None:
        self._ck, temp_h, key = _hkdf(self._ck, ikm, 3)
        self._mix_hash(temp_h)
        self._cipher = CipherState(key)

    def _encrypt_and_hash(self, plain: bytes) -> bytes:
        out = self._cipher.encrypt(self._h, plain)
        self._mix_hash(out)
        return out

    def _decrypt_and_hash(self, data: bytes) -> bytes:
        plain = self._cipher.decrypt(self._h, data)
        self._mix_hash(data)
        return plain

    @property
    def finished(self) -> bool:
        return self._i == len(_MESSAGES)

    @property
    def handshake_hash(self) -> bytes:
        return self._h

    def _my_turn(self) -> bool:
        return (self._i % 2 == 0) == self.initiator

    def _dh_token(self, op: str) -> None:
        """ee, es or se: which key of each side goes in depends on the role."""
        mine_e = op == "ee" or (op == "es") == self.initiator
        theirs_e = op == "ee" or (op == "se") == self.initiator
        private = self._e if mine_e else self._s
        public = self._re if theirs_e else self.rs
        if private is None or not public:
            raise NoiseError("handshake out of order")
        self._mix_key(_dh(private, public))

    def write_message(self, payload: bytes = b"") -> bytes:
        if self._i >= len(_MESSAGES) or not self._my_turn():
            raise NoiseError("not this side's handshake message")
        i, self._i = self._i, _DEAD
        out = bytearray()
        for op in _MESSAGES[i]:
            if op == "e":
                if self._e is None:
                    self._e = X25519PrivateKey.generate()
                pub = public_bytes(self._e)
                out += pub
                self._mix_hash(pub)
                self._mix_key(pub)  # a PSK handshake mixes e into the key too
            elif op == "s":
                out += self._encrypt_and_hash(public_bytes(self._s))
            elif op == "psk":
                self._mix_key_and_hash(self._psk)
            else:
                self._dh_token(op)
        out += self._encrypt_and_hash(payload)
        if len(out) > MAX_MESSAGE:
            raise NoiseError("handshake message too long")
        self._i = i + 1
        return bytes(out)

    def read_message(self, data: bytes) -> bytes:
        """The peer's payload; NoiseError if the message is malformed or does not authenticate
        (a wrong PSK, a tampered prologue), and the handshake is then dead."""
        if self._i >= len(_MESSAGES) or self._my_turn():
            raise NoiseError("not the peer's handshake message")
        i, self._i = self._i, _DEAD  # until it reads whole, nothing else does
        if len(data) > MAX_MESSAGE:
            raise NoiseError("handshake message too long")
        at = 0
        for op in _MESSAGES[i]:
            if op == "e":
                self._re = data[at : at + KEY]
                if len(self._re) != KEY:
                    raise NoiseError("handshake message too short")
                at += KEY
                self._mix_hash(self._re)
                self._mix_key(self._re)
            elif op == "s":
                n = KEY + (TAG if self._cipher.has_key else 0)
                if len(data) < at + n:
                    raise NoiseError("handshake message too short")
                self.rs = self._decrypt_and_hash(data[at : at + n])
                at += n
            elif op == "psk":
                self._mix_key_and_hash(self._psk)
            else:
                self._dh_token(op)
        payload = self._decrypt_and_hash(data[at:])
        self._i = i + 1
        return payload

    def transport(self, *, max_message: int) -> Transport:
        """Split(): the session's two CipherStates, once the handshake is finished."""
        if not self.finished:
            raise NoiseError("handshake not finished")
        k1, k2 = _hkdf(self._ck, b"", 2)
        mine, theirs = (k1, k2) if self.initiator else (k2, k1)
        return Transport(CipherState(mine), CipherState(theirs), max_message=max_message)


class Transport:
    """A v3 session: seals outgoing HiveMind frames, opens incoming ones (with the marker byte
    and chunking HiveMind puts inside Noise transport messages)."""

    __slots__ = ("_partial", "_partial_binary", "_recv", "_send", "max_message")

    def __init__(self, send: CipherState, recv: CipherState, *, max_message: int) -> None:
        self._send = send
        self._recv = recv
        self.max_message = max_message  # largest reassembled message accepted
        self._partial: bytearray | None = None
        self._partial_binary = False

    def seal(self, body: bytes, *, binarized: bool) -> list[bytes]:
        """One websocket message per Noise message: one, or chunks for a long body. Send them
        at once and in this order (their nonces are consecutive)."""
        if len(body) <= CHUNK:
            return [self._send.encrypt(b"", bytes([BINARY_ONE if binarized else JSON_ONE]) + body)]
        out = []
        for at in range(0, len(body), CHUNK):
            if at == 0:
                marker = BINARY_FIRST if binarized else JSON_FIRST
            else:
                marker = LAST if at + CHUNK >= len(body) else MORE
            out.append(self._send.encrypt(b"", bytes([marker]) + body[at : at + CHUNK]))
        return out

    def open(self, frame: bytes) -> tuple[bool, bytes] | None:
        """(binary?, body) of a whole message; None while a long one is still arriving.
        NoiseError for anything that does not decrypt here or breaks the chunking."""
        if len(frame) > MAX_MESSAGE:
            raise NoiseError("transport message too long")
        plain = self._recv.decrypt(b"", frame)
        if not plain:
            raise NoiseError("transport message without a marker")
        marker, body = plain[0], plain[1:]
        if marker in (JSON_ONE, BINARY_ONE):
            if self._partial is not None:
                raise NoiseError("a message inside a chunked message")
            return marker == BINARY_ONE, body
        if marker in (JSON_FIRST, BINARY_FIRST):
            if self._partial is not None:
                raise NoiseError("a chunked message inside a chunked message")
            self._partial = bytearray(body)
            self._partial_binary = marker == BINARY_FIRST
        elif marker in (MORE, LAST):
            if self._partial is None:
                raise NoiseError("a chunk outside a chunked message")
            self._partial += body
        else:
            raise NoiseError("unknown marker")
        if len(self._partial) > self.max_message:
            raise NoiseError("chunked message too long")
        if marker != LAST:
            return None
        whole, self._partial = bytes(self._partial), None
        return self._partial_binary, whole
