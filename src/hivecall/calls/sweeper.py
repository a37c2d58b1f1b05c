"""Calls never hang: the hub fails the calls that did not connect in time, and stops their media.

Every second it fails the calls still `ringing` `call_connect_timeout` seconds after they
started (`call_unanswered`: no offer reached the hub, the page never started connecting, or no
worker took the cloud call, which the hub dispatches again meanwhile: calls/cloud/rooms.py),
and the local and BYOK calls still `connecting` that long after their offer (`media_failed`:
the audio never flowed). A cloud call is `connecting` from the
moment a worker claims it until a person joins its room, a wait its worker bounds itself
(`worker_wait_for_human`, then it reports `ended`): the sweeper leaves that wait alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from hivecall.calls.records import Calls, Failed, Stuck

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 1.0

OnFailed = Callable[[Failed], Awaitable[None]]


def rules(timeout: float) -> tuple[Stuck, ...]:
    """What counts as stuck, and what the caller is told, for a connect timeout of `timeout`."""
    within = f"within {timeout:g} s"
    unanswered = f"the call was not answered {within}: "
    no_audio = f"the call's audio did not connect {within} (the network blocks WebRTC?)"
    return (
        Stuck(
            "ringing",
            "call_unanswered",
            {
                "local": unanswered + "no offer reached the hub",
                "byok": unanswered + "the page never started connecting",
                "cloud": unanswered + "no agent worker took it: run `hivecall worker` "
                "(with this hub's LiveKit settings)",
            },
        ),
        Stuck("connecting", "media_failed", {"local": no_audio, "byok": no_audio}),
    )


class Sweeper:
    """`timeout` is read at each pass (the dashboard may change the settings); `on_failed`
    stops what a failed call still runs (a local call's peer, a cloud call's room)."""

    def __init__(
        self,
        *,
        calls: Calls,
        timeout: Callable[[], float],
        on_failed: OnFailed,
        every: float = SWEEP_EVERY_S,
    ) -> None:
        self._calls = calls
        self._timeout = timeout
        self._on_failed = on_failed
        self._every = every
        self._task: asyncio.Task[None] | None = None

    async def sweep(self, *, now: datetime | None = None) -> list[Failed]:
        """One pass: fail the calls stuck at `now` (default: the present); returns them."""
        now = now or datetime.now(UTC)
        timeout = self._timeout()
        before = now - timedelta(seconds=timeout)
        failed: list[Failed] = []
        for stuck in rules(timeout):
            swept = await self._calls.fail_stuck(stuck, before=before, now=now)
            if swept:
                log.info(
                    "failed calls that did not connect in time",
                    extra={"count": len(swept), "code": stuck.code},
                )
            failed += swept
        for call in failed:
            await self._stop(call)
        return failed

    async def _stop(self, call: Failed) -> None:
        try:
            await self._on_failed(call)
        except Exception as e:  # one call's cleanup must not keep the others running
            log.warning(
                "could not stop a swept call", extra={"call_id": call.id, "error": type(e).__name__}
            )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="call-sweeper")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.sweep()
            except Exception as e:  # a store hiccup: the next pass tries again
                log.warning("a call sweep failed", extra={"error": type(e).__name__})

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
