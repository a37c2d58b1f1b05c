"""The listener's background work (turns, speech, routed sends, offers): cancelled together
when the listener stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from websockets.exceptions import ConnectionClosed


class Tasks:
    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()

    def start(self, work: Awaitable[None]) -> None:
        """Run `work` in the background; a connection closing under it is no error."""

        async def run() -> None:
            with contextlib.suppress(ConnectionClosed):
                await work

        task = asyncio.create_task(run())
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def cancel(self) -> None:
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
