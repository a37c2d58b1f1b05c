"""HiveMind's legacy (v1) crypto: the password envelope, key derivation, the two AEAD ciphers.

Password handshake (as upstream's poorman-handshake writes it): each side sends an envelope
`hex(iv8 + SHA256(iv8 + password))[:48]`; both derive `PBKDF2-HMAC-SHA256(password, iv_client
XOR iv_server, 100000)`, 32 bytes. The server checks the client's envelope against the stored
password (upstream does not) and closes on a mismatch.

Frames: AES-GCM with a 16-byte nonce, ChaCha20-Poly1305 with a 12-byte one, 16-byte tags.
Binary frames are `nonce + ciphertext + tag`; JSON frames `{"ciphertext", "tag", "nonce"}` in
the negotiated text encoding (no `tag`: the ciphertext's last 16 bytes are the tag).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from hivecall.hivemind_protocol.encodings import DECODERS, ENCODERS, Encoding

PBKDF2_ROUNDS = 100_000
IV_BYTES = 8
ENVELOPE_CHARS = 48
TAG_BYTES = 16


class Cipher(StrEnum):
    AES_GCM = "AES-GCM"
    CHACHA20_POLY1305 = "CHACHA20-POLY1305"


NONCE_BYTES = {Cipher.AES_GCM: 16, Cipher.CHACHA20_POLY1305: 12}


class CryptoError(ValueError):
    """A frame that does not decrypt, or an envelope that does not verify (no details)."""


# -- the password envelope --------------------------------------------------------------------


def new_iv() -> bytes:
    return os.urandom(IV_BYTES)


def envelope(password: str, iv: bytes) -> str:
    digest = hashlib.sha256(iv + password.encode()).digest()
    return (iv + digest).hex()[:ENVELOPE_CHARS]


def envelope_iv(value: object) -> bytes:
    """The iv inside a peer's envelope; CryptoError when it is not an envelope at all."""
    if not isinstance(value, str) or not 48 <= len(value) <= 80 or not value.isascii():
        raise CryptoError("bad envelope")
    try:
        iv = bytes.fromhex(value[: 2 * IV_BYTES])
        int(value, 16)
    except ValueError as e:
        raise CryptoError("bad envelope") from e
    return iv


def verify_envelope(value: str, password: str) -> bool:
    """Whether the peer's envelope was made with `password` (constant time)."""
    iv = envelope_iv(value)
    full = (iv + hashlib.sha256(iv + password.encode()).digest()).hex()
    return hmac.compare_digest(full[: len(value)], value.lower())


def derive_key(password: str, client_iv: bytes, server_iv: bytes) -> bytes:
    """PBKDF2, ~30 ms of CPU: call it off the event loop (hashlib releases the GIL)."""
    salt = bytes(a ^ b for a, b in zip(client_iv, server_iv, strict=True))
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ROUNDS)


# -- frames -----------------------------------------------------------------------------------


class Sealer:
    """One connection's cipher and key: seals outgoing frames, opens incoming ones."""

    __slots__ = ("_aead", "cipher", "nonce_bytes")

    def __init__(self, cipher: Cipher, key: bytes) -> None:
        self.cipher = cipher
        self.nonce_bytes = NONCE_BYTES[cipher]
        self._aead: AESGCM | ChaCha20Poly1305 = (
            AESGCM(key) if cipher is Cipher.AES_GCM else ChaCha20Poly1305(key)
        )

    def seal(self, plain: bytes) -> bytes:
        """nonce + ciphertext + tag, with a fresh random nonce."""
        nonce = os.urandom(self.nonce_bytes)
        return nonce + self._aead.encrypt(nonce, plain, None)

    def open(self, frame: bytes) -> tuple[bytes, bytes]:
        """(nonce, plaintext) of a binary frame; CryptoError if it does not authenticate."""
        n = self.nonce_bytes
        if len(frame) < n + TAG_BYTES:
            raise CryptoError("frame too short")
        nonce = frame[:n]
        try:
            return nonce, self._aead.decrypt(nonce, frame[n:], None)
        except InvalidTag as e:
            raise CryptoError("frame does not authenticate") from e

    def seal_json(self, plain: bytes, encoding: Encoding) -> str:
        sealed = self.seal(plain)
        n = self.nonce_bytes
        enc = ENCODERS[encoding]
        return json.dumps(
            {
                "ciphertext": enc(sealed[n:-TAG_BYTES]),
                "tag": enc(sealed[-TAG_BYTES:]),
                "nonce": enc(sealed[:n]),
            }
        )

    def open_json(self, frame: dict[str, object], encoding: Encoding) -> tuple[bytes, bytes]:
        """(nonce, plaintext) of a JSON frame already parsed into a dict."""
        dec = DECODERS[encoding]
        parts: list[bytes] = []
        for name in ("nonce", "ciphertext", "tag"):
            value = frame.get(name)
            if value is None and name == "tag":
                continue
            if not isinstance(value, str):
                raise CryptoError("frame is missing a field")
            try:
                parts.append(dec(value))
            except ValueError as e:
                raise CryptoError("frame is not in the negotiated encoding") from e
        if len(parts[0]) != self.nonce_bytes:
            raise CryptoError("wrong nonce size")
        if len(parts) == 3 and len(parts[2]) != TAG_BYTES:
            raise CryptoError("wrong tag size")
        return self.open(b"".join(parts))
