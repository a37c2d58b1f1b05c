"""A runtime's progress lines on their way to the turn's followers and its row: rate-limited,
since a runtime may print as fast as it likes."""

from __future__ import annotations

import asyncio

from hivecall.turns.handle import PROGRESS_GAP, TurnHandle
from hivecall.turns.writer import TurnWriter

# Progress reaches the store at most this often while a turn runs (and always at its end).
PROGRESS_SAVE_EVERY = 1.0


class ProgressGate:
    """Progress from a runtime, at most one line per PROGRESS_GAP (the newest waits its turn),
    saved with the turn at most every PROGRESS_SAVE_EVERY."""

    def __init__(self, handle: TurnHandle, writer: TurnWriter) -> None:
        self._handle = handle
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._last = -PROGRESS_GAP
        self._saved = self._loop.time()
        self._pending: str | None = None
        self._timer: asyncio.TimerHandle | None = None

    def offer(self, text: str) -> None:
        if not text.strip():
            return
        wait = self._last + PROGRESS_GAP - self._loop.time()
        if wait <= 0:
            self._send(text)
            return
        self._pending = text
        if self._timer is None:
            self._timer = self._loop.call_later(wait, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self._pending is not None:
            text, self._pending = self._pending, None
            self._send(text)

    def _send(self, text: str) -> None:
        now = self._last = self._loop.time()
        self._handle.add_progress(text)
        if now - self._saved >= PROGRESS_SAVE_EVERY:
            self._saved = now
            progress = list(self._handle.progress)
            self._writer.update_nowait(self._handle.turn_id, {"progress": progress})

    def close(self) -> None:
        """The turn is over: a line still waiting is stale."""
        if self._timer is not None:
            self._timer.cancel()
        self._pending = None
