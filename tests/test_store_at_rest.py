"""What the SQLite file keeps of a value once it is overwritten or deleted: nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hivecall.store import Store
from hivecall.store.db import _sqlite_pragmas

OLD_VALUE = "a-key-stored-in-the-clear-before-sealing-0123"


def test_every_store_connection_zeroes_what_it_frees(tmp_path: Path) -> None:
    # SQLite builds differ (Debian's zeroes freed space by default, macOS's does not): start
    # from one that does not, as the store's connect hook finds it there.
    conn = sqlite3.connect(tmp_path / "hub.db")
    conn.execute("PRAGMA secure_delete=OFF")
    _sqlite_pragmas(conn, None)
    assert conn.execute("PRAGMA secure_delete").fetchone() == (1,)
    conn.close()


async def test_a_value_overwritten_in_place_leaves_no_copy(tmp_path: Path) -> None:
    path = tmp_path / "home" / "hub.db"
    store = Store(url=f"sqlite:///{path}")
    await store.migrate()
    await store.set_meta("old", OLD_VALUE)
    await store.set_meta("other", "a row that keeps the page in use")
    await store.set_meta("old", "v1:sealed")  # as a sealing migration does
    await store.aclose()
    assert OLD_VALUE.encode() not in path.read_bytes()
