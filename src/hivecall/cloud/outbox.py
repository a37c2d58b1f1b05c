"""A job's transcript lines on their way to the hub, off the conversation's path."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hivecall.calls.events import CallEvent, LineKind, line_event
from hivecall.cloud.hubclient import HubClient, HubError

log = logging.getLogger(__name__)


class Outbox:
    """Transcript lines on their way to the hub: sent in order, in batches, by one task, so a
    slow hub never holds up the conversation and lines never overtake each other."""

    def __init__(self, hub: HubClient) -> None:
        self.hub = hub
        self._queue: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def send(self, event: CallEvent) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="hivecall-outbox")
        self._queue.put_nowait(event)

    def line(self, kind: LineKind, text: str, speaker: str) -> None:
        """Send a transcript line, cut to fit; one without words is not sent."""
        if (event := line_event(kind, text, speaker)) is not None:
            self.send(event)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.hub.report(batch)
            except HubError as e:
                log.warning("could not record transcript lines", extra={"code": e.code})
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def aclose(self, within: float = 5.0) -> None:
        """Send what is queued (for at most `within` seconds), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), within)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
