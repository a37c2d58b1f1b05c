"""Turn ids: random, and ordered by time for the store's indexes."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """A random id that sorts by time: a UUIDv7 (48-bit milliseconds, then 74 random bits), as
    32 hex digits like `uuid4().hex`. Turns written one after another land next to each other
    in the store's indexes instead of on a random page each, so a commit writes a few pages,
    not one per row."""
    ms = time.time_ns() // 1_000_000 & (1 << 48) - 1
    rand = int.from_bytes(os.urandom(10))
    value = ms << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64 | 0b10 << 62 | rand & (1 << 62) - 1
    return f"{value:032x}"
