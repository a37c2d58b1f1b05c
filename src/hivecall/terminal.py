"""A turn followed from the terminal (`hivecall ask`): the answer on stdout as it comes, what the
agent is doing on stderr (a live status line on a terminal, plain lines otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TextIO

from rich.console import Console
from rich.status import Status

from hivecall.turns.handle import TurnHandle


def _elapsed(since: float) -> str:
    seconds = int(time.monotonic() - since)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


async def follow_turn(handle: TurnHandle, *, out: TextIO | None, console: Console) -> None:
    """Show `handle` until it ends. `out`: where the answer goes as it comes (None: nowhere)."""
    started = time.monotonic()
    latest = "working"
    name = handle.agent.name
    live: Status | None = None
    if console.is_terminal:
        live = console.status(f"{name}: {latest}", spinner="dots")
        live.start()

    async def tick() -> None:
        while live is not None:
            live.update(f"{name}: {latest} [dim]({_elapsed(started)}, Ctrl-C stops it)[/dim]")
            await asyncio.sleep(1)

    ticker = asyncio.create_task(tick())
    try:
        async for event in handle.events():
            if event.kind == "progress":
                latest = event.data["text"]
                if live is None:
                    console.print(f"… {latest}", markup=False, highlight=False)
            elif event.kind == "delta" and out is not None:
                if live is not None:
                    live.stop()  # the answer is starting: the status line would interleave
                    live = None
                out.write(event.data["text"])
                out.flush()
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        if live is not None:
            live.stop()
