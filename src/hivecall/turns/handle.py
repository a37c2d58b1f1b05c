"""A running turn as its callers follow it: progress, answer deltas and the end, replayable.

Every face (the call page, the voice front doors, `hivecall ask`, the events API) follows a turn
through its handle. Events are kept in order, so a subscriber that comes late starts from the
first one and misses nothing; a turn that already ended is replayed from the store
(`TurnHandle.of_stored`). What is kept is bounded: progress is rate-limited and capped, the
answer is capped, so an agent that floods its output cannot fill the hub's memory or store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from hivecall.agents.redact import redact

if TYPE_CHECKING:
    from hivecall.agents.records import AgentRecord
    from hivecall.store.models import Turn

# Progress lines kept with a turn (the newest), and the shortest gap between two of them.
PROGRESS_KEEP = 50
PROGRESS_GAP = 0.25
# The longest answer kept, in characters; more is dropped (and said so).
REPLY_MAX = 200_000
FINISHED = ("done", "failed", "interrupted", "cancelled")

EventKind = Literal["progress", "delta", "done"]


@dataclass(frozen=True)
class TurnEvent:
    kind: EventKind
    data: dict[str, Any]


@dataclass(frozen=True)
class TurnResult:
    turn_id: str
    session_id: str
    agent: AgentRecord
    status: str
    text: str
    spoken: str
    error_code: str | None
    error_message: str | None
    duration_ms: float


def started_line(agent: str) -> str:
    """What a voice says when a request takes longer than a voice may wait for it."""
    return f"{agent} is on it and is still working. I will tell you the answer when it is ready."


def progress_entry(text: str) -> dict[str, str]:
    """A progress line as stored and sent: redacted like the agent's context."""
    return {"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "text": redact(text)}


@dataclass
class TurnHandle:
    turn_id: str
    session_id: str
    agent: AgentRecord
    started_at: float = 0.0  # loop time the turn was accepted
    _events: list[TurnEvent] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _done: asyncio.Future[TurnResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    progress: list[dict[str, str]] = field(default_factory=list)
    reply_chars: int = 0
    cancel_requested: bool = False

    # -- what the bridge reports --------------------------------------------------------------

    def _emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        self._events.append(TurnEvent(kind, data))
        self._wake.set()
        self._wake = asyncio.Event()

    def add_progress(self, text: str) -> dict[str, str]:
        entry = progress_entry(text)
        self.progress = [*self.progress, entry][-PROGRESS_KEEP:]
        self._emit("progress", entry)
        return entry

    def add_delta(self, text: str) -> str:
        """Keep and send a piece of the answer; returns what was kept of it ("" past the cap)."""
        room = REPLY_MAX - self.reply_chars
        if room <= 0:
            return ""
        kept = text[:room]
        self.reply_chars += len(kept)
        self._emit("delta", {"text": kept})
        return kept

    def finish(self, result: TurnResult) -> None:
        if self._done.done():
            return
        self._emit(
            "done",
            {
                "turn_id": result.turn_id,
                "status": result.status,
                "text": result.spoken,
                "error_code": result.error_code,
                "duration_ms": round(result.duration_ms, 3),
            },
        )
        self._done.set_result(result)

    # -- what callers follow -----------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._done.done()

    async def events(self) -> AsyncIterator[TurnEvent]:
        """Every event from the first, then live ones, ending with `done`."""
        seen = 0
        while True:
            while seen < len(self._events):
                event = self._events[seen]
                seen += 1
                yield event
                if event.kind == "done":
                    return
            await self._wake.wait()

    async def deltas(self) -> AsyncIterator[str]:
        """The answer's text as the runtime produces it (ends when the turn ends)."""
        async for event in self.events():
            if event.kind == "delta":
                yield event.data["text"]

    async def result(self) -> TurnResult:
        return await asyncio.shield(self._done)

    @classmethod
    def of_stored(cls, turn: Turn, agent: AgentRecord) -> TurnHandle:
        """A finished turn from the store, as a handle that replays it."""
        handle = cls(turn_id=turn.id, session_id=turn.session_id, agent=agent)
        for entry in turn.progress or []:
            handle._emit("progress", dict(entry))
        handle.progress = list(turn.progress or [])
        if turn.reply:
            handle.add_delta(turn.reply)
        handle.finish(
            TurnResult(
                turn.id,
                turn.session_id,
                agent,
                turn.status,
                turn.reply or "",
                turn.spoken or "",
                turn.error_code,
                None,
                turn.duration_ms or 0.0,
            )
        )
        return handle
