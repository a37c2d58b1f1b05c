"""Binarized HiveMind frames ("binarize": the bit-packed form hivemind-bus-client writes).

Layout, most significant bit first, left-padded with 0 bits to a whole number of bytes:
start bit 1, versioned bit (+ 8-bit protocol version when set), 5-bit message type, zlib bit,
8-bit metadata length, the metadata (JSON, zlib'd when the bit is set), then for `bin` a 4-bit
binary type, then the payload (JSON for every type but `bin`, zlib'd when the bit is set; a
`bin` payload is raw bytes, never compressed: the bit covers only its metadata).

hivemind-bus-client 0.4.4 reads every frame as compressed (it tests the zlib bit with `bool()`
on a one-bit slice, which is always true), so frames the hub writes are always compressed.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from hivecall.hivemind_protocol.wire import MsgType, WireError

PROTOCOL_VERSION = 1

CODE_OF: dict[MsgType, int] = {
    MsgType.SHAKE: 0,
    MsgType.BUS: 1,
    MsgType.SHARED_BUS: 2,
    MsgType.BROADCAST: 3,
    MsgType.PROPAGATE: 4,
    MsgType.ESCALATE: 5,
    MsgType.HELLO: 6,
    MsgType.QUERY: 7,
    MsgType.CASCADE: 8,
    MsgType.PING: 9,
    MsgType.RENDEZVOUS: 10,
    MsgType.THIRD_PARTY: 11,
    MsgType.BIN: 12,
}
TYPE_OF: dict[int, MsgType] = {v: k for k, v in CODE_OF.items()}


class BinType(IntEnum):
    UNDEFINED = 0
    RAW_AUDIO = 1
    NUMPY_IMAGE = 2
    FILE = 3
    STT_AUDIO_TRANSCRIBE = 4
    STT_AUDIO_HANDLE = 5
    TTS_AUDIO = 6


@dataclass(frozen=True, slots=True)
class Frame:
    msg_type: MsgType
    # JSON payload of every type but `bin`; raw bytes for `bin`.
    payload: dict[str, Any] | bytes
    metadata: dict[str, Any] = field(default_factory=dict)
    bin_type: BinType = BinType.UNDEFINED


def _inflate(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit)
    except zlib.error as e:
        raise WireError("bad zlib data in a binary frame") from e
    if d.unconsumed_tail or not d.eof:
        raise WireError("binary frame inflates past the frame limit or is truncated")
    return out


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise WireError(f"binary frame {what} is not JSON") from e
    if not isinstance(value, dict):
        raise WireError(f"binary frame {what} is not a JSON object")
    return value


def decode(frame: bytes, *, max_inflated: int) -> Frame:
    """Parse one binarized frame; WireError for anything malformed."""
    total = len(frame) * 8
    if total < 16:
        raise WireError("binary frame too short")
    value = int.from_bytes(frame, "big")
    pos = total - value.bit_length()  # skip the left padding up to the start bit
    if value == 0 or pos > 7:
        raise WireError("binary frame has no start bit")

    def take(bits: int) -> int:
        nonlocal pos
        if pos + 1 + bits > total:
            raise WireError("binary frame truncated")
        shift = total - (pos + 1) - bits
        pos += bits
        return (value >> shift) & ((1 << bits) - 1)

    if take(1) and take(8) > PROTOCOL_VERSION:  # versioned, and newer than v1
        raise WireError("unsupported binary protocol version")
    code = take(5)
    msg_type = TYPE_OF.get(code)
    if msg_type is None:
        raise WireError("unknown message type code in binary frame")
    compressed = bool(take(1))
    meta_len = take(8)
    meta_raw = take(8 * meta_len).to_bytes(meta_len, "big") if meta_len else b""
    bin_type = BinType.UNDEFINED
    if msg_type is MsgType.BIN:
        try:
            bin_type = BinType(take(4))
        except ValueError as e:
            raise WireError("unknown binary payload type") from e
    rest = total - pos - 1
    if rest % 8:
        raise WireError("binary frame payload is not whole bytes")
    payload_raw = take(rest).to_bytes(rest // 8, "big") if rest else b""
    if compressed:
        meta_raw = _inflate(meta_raw, max_inflated) if meta_raw else b""
        if msg_type is not MsgType.BIN:
            payload_raw = _inflate(payload_raw, max_inflated)
    metadata = _json_object(meta_raw, "metadata") if meta_raw else {}
    if msg_type is MsgType.BIN:
        return Frame(msg_type, payload_raw, metadata, bin_type)
    return Frame(msg_type, _json_object(payload_raw, "payload"), metadata)


def encode(
    msg_type: MsgType,
    payload: dict[str, Any] | bytes,
    *,
    metadata: dict[str, Any] | None = None,
    bin_type: BinType = BinType.UNDEFINED,
    compress: bool = True,
) -> bytes:
    """One binarized frame (unversioned, as upstream writes them)."""
    meta = json.dumps(metadata or {}).encode()
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if compress:
        meta = zlib.compress(meta)
        if msg_type is not MsgType.BIN:
            body = zlib.compress(body)
    if len(meta) > 255:
        raise WireError("binary frame metadata over 255 bytes")
    is_bin = msg_type is MsgType.BIN
    if not is_bin and bin_type is not BinType.UNDEFINED:
        raise WireError("only bin frames carry a binary type")
    header = (1 << 7) | (CODE_OF[msg_type] << 1) | int(compress)  # start, unversioned, type, zlib
    head = bytes([header, len(meta)]) + meta
    if not is_bin:
        return head + body
    # 4 bits of binary type shift the payload by half a byte: pad 4 zero bits on the left.
    bits = (int.from_bytes(head, "big") << 4 | int(bin_type)) << 8 * len(body)
    bits |= int.from_bytes(body, "big")
    return bits.to_bytes(len(head) + len(body) + 1, "big")
