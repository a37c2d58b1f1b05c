"""The text encodings of encrypted HiveMind JSON frames (the handshake's `encoding`).

Ciphertext, tag and nonce travel as text in one of these. B64, URLSAFE-B64, B32 and HEX are the
standard alphabets (decoded strictly); B91 is basE91, Z85B is little-endian Z85 without length
padding, Z85P is big-endian Z85 behind one byte that counts the padding, all as upstream's
`z85base91` package writes them (its C library and its Python agree; tests check ours against
vectors from it). Every decoder raises `ValueError` on input it did not write.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable
from enum import StrEnum


class Encoding(StrEnum):
    B91 = "JSON-B91"
    Z85B = "JSON-Z85B"
    Z85P = "JSON-Z85P"
    B64 = "JSON-B64"
    URLSAFE_B64 = "JSON-URLSAFE-B64"
    B32 = "JSON-B32"
    HEX = "JSON-HEX"


# -- basE91 -----------------------------------------------------------------------------------

_B91 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&()*+,./:;<=>?@[]^_`{|}~"'
_B91_DEC = [-1] * 256
for _i, _c in enumerate(_B91):
    _B91_DEC[ord(_c)] = _i
_B91_PAIRS = [_B91[v % 91] + _B91[v // 91] for v in range(91 * 91)]


def b91_encode(data: bytes) -> str:
    out: list[str] = []
    pairs = _B91_PAIRS
    b = n = 0
    for byte in data:
        b |= byte << n
        n += 8
        if n > 13:
            v = b & 8191
            if v > 88:
                b >>= 13
                n -= 13
            else:
                v = b & 16383
                b >>= 14
                n -= 14
            out.append(pairs[v])
    if n:
        out.append(_B91[b % 91])
        if n > 7 or b > 90:
            out.append(_B91[b // 91])
    return "".join(out)


def b91_decode(text: str) -> bytes:
    raw = text.encode("ascii") if text.isascii() else None
    if raw is None:
        raise ValueError("not basE91")
    dec = _B91_DEC
    out = bytearray()
    v = -1
    b = n = 0
    for ch in raw:
        c = dec[ch]
        if c < 0:
            raise ValueError("not basE91")
        if v < 0:
            v = c
            continue
        v += c * 91
        b |= v << n
        n += 13 if (v & 8191) > 88 else 14
        while n >= 8:
            out.append(b & 255)
            b >>= 8
            n -= 8
        v = -1
    if v >= 0:
        out.append((b | v << n) & 255)
    return bytes(out)


# -- Z85 (both variants) ----------------------------------------------------------------------

_Z85 = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_DEC = [-1] * 256
for _i, _b in enumerate(_Z85):
    _Z85_DEC[_b] = _i
_Z85_CHARS = [bytes([c]) for c in _Z85]


def _z85_digits(value: int) -> bytes:
    """Five digits, most significant first."""
    d4, value = divmod(value, 52200625)
    d3, value = divmod(value, 614125)
    d2, value = divmod(value, 7225)
    d1, d0 = divmod(value, 85)
    c = _Z85_CHARS
    return c[d4] + c[d3] + c[d2] + c[d1] + c[d0]


def _z85_value(group: bytes | bytearray, little: bool) -> int:
    dec = _Z85_DEC
    value = 0
    digits = reversed(group) if little else group
    for ch in digits:
        d = dec[ch]
        if d < 0:
            raise ValueError("not Z85")
        value = value * 85 + d
    if value > 0xFFFFFFFF:
        raise ValueError("not Z85")
    return value


def z85b_encode(data: bytes) -> str:
    padding = -len(data) % 4
    padded = data + b"\0" * padding
    out = bytearray()
    for (value,) in struct.iter_unpack("<I", padded):
        out += _z85_digits(value)[::-1]  # least significant digit first
    if padding:
        del out[-padding:]
    return out.decode("ascii")


def z85b_decode(text: str) -> bytes:
    raw = _ascii(text)
    if len(raw) % 5 == 1:
        raise ValueError("not Z85B")
    out = bytearray()
    for i in range(0, len(raw), 5):
        group = raw[i : i + 5]
        value = _z85_value(group, little=True)
        out += struct.pack("<I", value)
        if len(group) < 5:
            if value >> 8 * (len(group) - 1):
                raise ValueError("not Z85B")
            del out[len(group) - 5 :]
    return bytes(out)


def z85p_encode(data: bytes) -> str:
    padding = -len(data) % 4
    padded = data + b"\0" * padding
    out = bytearray([padding])
    for (value,) in struct.iter_unpack(">I", padded):
        out += _z85_digits(value)
    return out.decode("ascii")


def z85p_decode(text: str) -> bytes:
    raw = _ascii(text)
    if len(raw) % 5 != 1 or raw[0] > 3 or (len(raw) == 1 and raw[0]):
        raise ValueError("not Z85P")
    padding = raw[0]
    out = bytearray()
    for i in range(1, len(raw), 5):
        out += struct.pack(">I", _z85_value(raw[i : i + 5], little=False))
    if padding:
        if any(out[-padding:]):
            raise ValueError("not Z85P")
        del out[-padding:]
    return bytes(out)


# -- the standard ones ------------------------------------------------------------------------


def _ascii(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not ASCII")
    return text.encode("ascii")


def _b64_decode(text: str) -> bytes:
    try:
        return binascii.a2b_base64(_ascii(text), strict_mode=True)
    except binascii.Error as e:
        raise ValueError("not base64") from e


def _urlsafe_decode(text: str) -> bytes:
    raw = _ascii(text)
    if b"+" in raw or b"/" in raw:
        raise ValueError("not urlsafe base64")
    return _b64_decode(raw.translate(bytes.maketrans(b"-_", b"+/")).decode("ascii"))


def _b32_decode(text: str) -> bytes:
    try:
        return base64.b32decode(_ascii(text))
    except binascii.Error as e:
        raise ValueError("not base32") from e


def _hex_decode(text: str) -> bytes:
    try:
        return binascii.unhexlify(_ascii(text))
    except binascii.Error as e:
        raise ValueError("not hex") from e


ENCODERS: dict[Encoding, Callable[[bytes], str]] = {
    Encoding.B91: b91_encode,
    Encoding.Z85B: z85b_encode,
    Encoding.Z85P: z85p_encode,
    Encoding.B64: lambda b: binascii.b2a_base64(b, newline=False).decode("ascii"),
    Encoding.URLSAFE_B64: lambda b: base64.urlsafe_b64encode(b).decode("ascii"),
    Encoding.B32: lambda b: base64.b32encode(b).decode("ascii"),
    Encoding.HEX: lambda b: b.hex(),
}

DECODERS: dict[Encoding, Callable[[str], bytes]] = {
    Encoding.B91: b91_decode,
    Encoding.Z85B: z85b_decode,
    Encoding.Z85P: z85p_decode,
    Encoding.B64: _b64_decode,
    Encoding.URLSAFE_B64: _urlsafe_decode,
    Encoding.B32: _b32_decode,
    Encoding.HEX: _hex_decode,
}
