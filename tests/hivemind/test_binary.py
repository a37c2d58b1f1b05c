"""Binarized frames: round trips, upstream's byte layout, and malformed input as WireError."""

from __future__ import annotations

import contextlib
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecall.hivemind_protocol import binary
from hivecall.hivemind_protocol.binary import BinType, Frame
from hivecall.hivemind_protocol.wire import MsgType, WireError

LIMIT = 1 << 20
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
small_meta = st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=3)


@given(
    msg_type=st.sampled_from([t for t in binary.CODE_OF if t is not MsgType.BIN]),
    payload=objects,
    meta=small_meta,
    compress=st.booleans(),
)
def test_json_types_round_trip(
    msg_type: MsgType, payload: dict[str, object], meta: dict[str, int], compress: bool
) -> None:
    raw = binary.encode(msg_type, payload, metadata=meta, compress=compress)
    assert binary.decode(raw, max_inflated=LIMIT) == Frame(msg_type, payload, meta)


@given(
    payload=st.binary(max_size=3000),
    bin_type=st.sampled_from(list(BinType)),
    compress=st.booleans(),
)
@settings(max_examples=50)
def test_bin_round_trip(payload: bytes, bin_type: BinType, compress: bool) -> None:
    raw = binary.encode(
        MsgType.BIN, payload, bin_type=bin_type, metadata={"lang": "en"}, compress=compress
    )
    out = binary.decode(raw, max_inflated=LIMIT)
    assert out == Frame(MsgType.BIN, payload, {"lang": "en"}, bin_type)


def test_layout_matches_upstream() -> None:
    # hivemind-bus-client: get_bitstring(BUS, {"type": "speak"}, compressed=False, hivemeta={})
    raw = binary.encode(MsgType.BUS, {"type": "speak"}, compress=False)
    assert raw == bytes([0b10000010, 2]) + b"{}" + b'{"type": "speak"}'
    # BIN with type 6 (TTS_AUDIO): 4 bits of padding, then the same header, shifted.
    raw = binary.encode(MsgType.BIN, b"\xab", bin_type=BinType.TTS_AUDIO, compress=False)
    bits = "0000" + "1" + "0" + "01100" + "0" + f"{2:08b}" + "".join(f"{c:08b}" for c in b"{}")
    bits += f"{6:04b}" + f"{0xAB:08b}"
    assert raw == int(bits, 2).to_bytes(len(bits) // 8, "big")


def test_versioned_frames_are_read() -> None:
    bits = "1" + "1" + f"{1:08b}" + f"{1:05b}" + "0" + f"{0:08b}"
    body = b'{"type": "x"}'
    raw = int(bits, 2).to_bytes(3, "big") + body
    assert binary.decode(raw, max_inflated=LIMIT) == Frame(MsgType.BUS, {"type": "x"}, {})
    newer = "1" + "1" + f"{2:08b}" + f"{1:05b}" + "0" + f"{0:08b}"
    with pytest.raises(WireError, match="version"):
        binary.decode(int(newer, 2).to_bytes(3, "big") + body, max_inflated=LIMIT)


def test_zip_bombs_are_refused() -> None:
    bomb = zlib.compress(b'{"a": "' + b"x" * 2_000_000 + b'"}')
    raw = bytes([0b10000011, 0]) + bomb
    with pytest.raises(WireError, match="limit"):
        binary.decode(raw, max_inflated=LIMIT)


@given(raw=st.binary(max_size=200))
@settings(max_examples=300)
def test_garbage_is_only_ever_a_wire_error(raw: bytes) -> None:
    with contextlib.suppress(WireError):
        binary.decode(raw, max_inflated=LIMIT)


@given(data=st.data())
def test_truncated_frames_are_wire_errors(data: st.DataObject) -> None:
    raw = binary.encode(MsgType.BUS, {"type": "speak", "data": {"utterance": "hi"}}, compress=True)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(WireError):
        binary.decode(raw[:cut], max_inflated=LIMIT)
