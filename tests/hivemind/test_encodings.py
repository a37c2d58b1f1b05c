"""The text encodings round-trip, reject what they did not write, and match upstream's."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hivecall.hivemind_protocol.encodings import DECODERS, ENCODERS, Encoding

# Written by upstream's z85base91 0.0.5 (its C library; its Python agrees).
UPSTREAM = {
    Encoding.B91: [
        (b"", ""),
        (b"a", "GB"),
        (b"hello hivemind", "TPwJh>%twS#0FQ;mJB"),
        (b"\x00\xff", "T|H"),
    ],
    Encoding.Z85B: [
        (b"", ""),
        (b"a", "c1"),
        (b"hello hivemind", "@V0&ycSO>x8Bd(xEL3"),
        (b"\x00\xff", "039"),
    ],
    Encoding.Z85P: [
        (b"", "\x00"),
        (b"a", "\x03ve{oc"),
        (b"hello hivemind", "\x02xK#0@zY&.cC4CJ8zE-.E"),
        (b"\x00\xff", "\x020ri30"),
    ],
}


@pytest.mark.parametrize("encoding", list(Encoding))
@given(data=st.binary(max_size=300))
def test_round_trip(encoding: Encoding, data: bytes) -> None:
    text = ENCODERS[encoding](data)
    assert text.isascii()
    assert DECODERS[encoding](text) == data


@pytest.mark.parametrize("encoding", list(Encoding))
@given(text=st.text(max_size=60))
def test_decoders_raise_only_value_error(encoding: Encoding, text: str) -> None:
    with contextlib.suppress(ValueError):
        DECODERS[encoding](text)


@pytest.mark.parametrize(("encoding", "cases"), list(UPSTREAM.items()))
def test_matches_upstream(encoding: Encoding, cases: list[tuple[bytes, str]]) -> None:
    for raw, text in cases:
        assert ENCODERS[encoding](raw) == text
        assert DECODERS[encoding](text) == raw


@pytest.mark.parametrize(
    ("encoding", "bad"),
    [
        (Encoding.B64, "aGVsbG8=!"),
        (Encoding.B64, "aGVsbG8"),
        (Encoding.URLSAFE_B64, "a+b/"),
        (Encoding.HEX, "abc"),
        (Encoding.HEX, "zz"),
        (Encoding.B32, "abc"),
        (Encoding.B91, "é"),
        (Encoding.B91, "ab\\"),
        (Encoding.Z85B, "0"),
        (Encoding.Z85B, "#####"),
        (Encoding.Z85P, "\x05"),
        (Encoding.Z85P, "\x00abcd"),
    ],
)
def test_rejects_garbage(encoding: Encoding, bad: str) -> None:
    with pytest.raises(ValueError):
        DECODERS[encoding](bad)
