"""The bridge: every request from every front door becomes one persisted turn on an agent.

A turn is written to the store before its runtime starts (queued → running → done | failed |
interrupted). The runtime runs in a task the bridge owns, not in the HTTP request, so a caller
that hangs up does not lose the agent's work; the caller just stops listening. On shutdown the
bridge cancels what is running and records it as interrupted; on start it marks turns that a
crash left running as interrupted too (turns/recovery.py).

Turn rows are written through a `TurnWriter` (turns/writer.py): concurrent turns' writes share
one transaction (group commit), and each write still returns only once it is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from hivecall.agents.context import AgentContext, RecentTurn, gather
from hivecall.agents.records import AgentRecord, Agents
from hivecall.errors import BadRequest, Conflict, NotFound, RuntimeFailure
from hivecall.runtimes import ChatMessage, Runtime, Runtimes, TurnInput
from hivecall.runtimes.base import Progress
from hivecall.runtimes.runner import this_runner
from hivecall.speakable import speakable
from hivecall.store import Store
from hivecall.store.models import Turn
from hivecall.turns.handle import TurnHandle, TurnResult
from hivecall.turns.ids import new_id
from hivecall.turns.progress_gate import ProgressGate
from hivecall.turns.queries import TurnQueries
from hivecall.turns.recovery import recover
from hivecall.turns.request import TurnRequest
from hivecall.turns.writer import TurnWriter

log = logging.getLogger(__name__)


class Bridge:
    def __init__(
        self,
        *,
        store: Store,
        agents: Agents,
        runtimes: Runtimes,
        turn_timeout: float,
        max_message_chars: int,
        spoken_max_chars: int,
    ) -> None:
        self._store = store
        self._agents = agents
        self._runtimes = runtimes
        self._timeout = turn_timeout
        self._max_chars = max_message_chars
        self._spoken_max = spoken_max_chars
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task[None]] = set()
        # Turns this process runs, by id (and by tool call), until they end.
        self._live: dict[str, tuple[TurnHandle, asyncio.Task[None] | None]] = {}
        self._by_tool: dict[tuple[str, str], TurnHandle] = {}
        self._writer = TurnWriter(store.engine)
        self._turns = TurnQueries(store)
        self._closing = False
        self.active: defaultdict[str, int] = defaultdict(int)

    # -- life cycle ---------------------------------------------------------------------------

    async def recover(self) -> int:
        """Mark turns a previous process left unfinished as interrupted. Returns how many."""
        return await recover(self._store)

    async def aclose(self) -> None:
        self._closing = True
        while True:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            # Queued writes land; a turn whose row lands now starts cancelled (and is recorded
            # as interrupted), so go round until nothing is left running.
            await self._writer.aclose()
            if not self._tasks:
                return

    def view(self, agent: AgentRecord) -> dict[str, Any]:
        """The agent as API clients see it, with its live status."""
        return agent.public(status=self.status_of(agent))

    def status_of(self, agent: AgentRecord) -> str:
        if self.active.get(agent.id):
            return "busy"
        return "unavailable" if self._agents.problem(agent) else "ready"

    # -- turns --------------------------------------------------------------------------------

    async def start(self, req: TurnRequest) -> TurnHandle:
        """Validate, persist and launch a turn. Bad input raises before anything is written."""
        return (await self.start_or_join(req))[0]

    async def start_or_join(self, req: TurnRequest) -> tuple[TurnHandle, bool]:
        """As `start`, and whether the turn is new: a tool call sent again (same call_id and
        tool_call_id) joins the turn it started the first time instead of starting another."""
        # NUL fits no store's text (PostgreSQL refuses it); HiveMind and voice input too.
        message = req.message.replace("\x00", "").strip()
        if not message:
            raise BadRequest("the message is empty", code="empty_message")
        if len(message) > self._max_chars:
            raise BadRequest(
                f"the message is longer than {self._max_chars} characters", code="message_too_long"
            )
        agent = await self._agents.get(req.agent)
        key = (req.call_id, req.tool_call_id) if req.call_id and req.tool_call_id else None
        if key is not None and (again := await self._same_tool_call(key, agent)) is not None:
            return again, False
        if problem := self._agents.problem(agent):
            raise Conflict(f"agent {agent.name!r} cannot run: {problem}", code="agent_unavailable")
        runtime = self._runtimes.get(agent.runtime)
        session_id = req.session_id or new_id()
        now = _now()
        turn_id = new_id()
        handle = TurnHandle(turn_id=turn_id, session_id=session_id, agent=agent)
        t0 = time.perf_counter()
        self._live[turn_id] = (handle, None)
        if key is not None:
            self._by_tool[key] = handle
        stored = self._writer.insert(
            {
                "id": turn_id,
                "agent_id": agent.id,
                "session_id": session_id,
                "call_id": req.call_id,
                "tool_call_id": req.tool_call_id if key else None,
                "source": req.source,
                "caller": req.caller,
                "runner": this_runner(),
                "status": "queued" if runtime.exclusive else "running",
                "message": message,
                "queued_at": now,
                "started_at": None if runtime.exclusive else now,
            }
        )

        def launch(done: asyncio.Future[None]) -> None:
            # Once the row is committed the turn runs, even if the caller has gone meanwhile.
            if done.cancelled() or done.exception() is not None:
                self._forget(handle, key)
                return
            if self._closing:  # it landed while the hub stops: it never runs
                self._never_ran(handle, t0)
                self._forget(handle, key)
                return
            self.active[agent.id] += 1
            task = asyncio.create_task(self._run(handle, req, message, t0))
            self._live[turn_id] = (handle, task)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _: self._forget(handle, key))

        stored.add_done_callback(launch)
        try:
            await asyncio.shield(stored)
        except IntegrityError as e:
            if key is not None and (again := await self._same_tool_call(key, agent)):
                return again, False  # another process took this tool call a moment ago
            # the agent was removed by another process a moment ago
            self._agents.forget()
            raise NotFound(f"no agent called {req.agent!r}", code="agent_not_found") from e
        return handle, True

    def _forget(self, handle: TurnHandle, key: tuple[str, str] | None) -> None:
        self._live.pop(handle.turn_id, None)
        if key is not None and self._by_tool.get(key) is handle:
            del self._by_tool[key]

    async def _same_tool_call(self, key: tuple[str, str], agent: AgentRecord) -> TurnHandle | None:
        """The turn a tool call already started (running here, or stored), if any."""
        if (live := self._by_tool.get(key)) is not None:
            return live
        row = await self._turns.of_tool_call(*key)
        if row is None:
            return self._by_tool.get(key)  # started while we looked
        return self.handle_of(row, agent)

    def handle_of(self, row: Turn, agent: AgentRecord) -> TurnHandle:
        """A handle to follow a stored turn: the live one, or its replay when it has ended
        (one that another process runs is followed through the store by the caller)."""
        return self.live(row.id) or TurnHandle.of_stored(row, agent)

    def live(self, turn_id: str) -> TurnHandle | None:
        """The handle of a turn this process runs (an ended one is replayed from the store)."""
        held = self._live.get(turn_id)
        return held[0] if held else None

    def cancel(self, turn_id: str) -> bool:
        """Stop a turn this process runs; True if it was running (it ends as `cancelled`)."""
        held = self._live.get(turn_id)
        if held is None or held[0].finished:
            return False
        handle, task = held
        handle.cancel_requested = True
        # A task that has not begun cannot run its cleanup if cancelled now: it checks the flag.
        if task is not None and handle.started_at:
            task.cancel()
        return True

    async def run(self, req: TurnRequest) -> TurnResult:
        handle = await self.start(req)
        return await handle.result()

    async def _run(self, handle: TurnHandle, req: TurnRequest, message: str, t0: float) -> None:
        agent = handle.agent
        runtime = self._runtimes.get(agent.runtime)
        pieces: list[str] = []
        status, code, error = "done", None, None
        spoken = ""
        progress = ProgressGate(handle, self._writer)
        handle.started_at = asyncio.get_running_loop().time()
        try:
            if handle.cancel_requested:
                raise asyncio.CancelledError
            async with self._locks[agent.id] if runtime.exclusive else contextlib.nullcontext():
                if runtime.exclusive:
                    await self._set(handle.turn_id, status="running", started_at=_now())
                turn = await self._turn_input(handle, req, message, runtime)
                async for piece in runtime.stream(turn):
                    if isinstance(piece, Progress):
                        progress.offer(piece.text.replace("\x00", ""))
                    elif kept := handle.add_delta(piece.replace("\x00", "")):
                        pieces.append(kept)
        except RuntimeFailure as e:
            status, code, error, spoken = "failed", e.code, e.message, e.spoken
        except asyncio.CancelledError:
            if handle.cancel_requested:
                status, code, error = "cancelled", "cancelled", "the turn was cancelled"
                spoken = f"Stopped {agent.name}."
            else:
                status, code = "interrupted", "hub_stopping"
                error = "the hub stopped during the turn"
                spoken = f"Sorry, {agent.name} was interrupted because the hub is shutting down."
        except Exception:
            log.exception("turn failed", extra={"turn_id": handle.turn_id, "agent": agent.name})
            status, code, error = "failed", "internal_error", "the hub hit an unexpected error"
            spoken = f"Sorry, something went wrong while {agent.name} was working."
        finally:
            progress.close()
            self.active[agent.id] -= 1
            if not self.active[agent.id]:
                del self.active[agent.id]
        text = "".join(pieces).strip()
        if status == "done":
            spoken = (
                speakable(text, max_chars=self._spoken_max) or f"{agent.name} had nothing to say."
            )
        elapsed = (time.perf_counter() - t0) * 1000
        try:
            await self._set(
                handle.turn_id,
                status=status,
                reply=text,
                spoken=spoken,
                error_code=code,
                progress=handle.progress,
                finished_at=_now(),
                duration_ms=round(elapsed, 3),
            )
        finally:
            handle.finish(
                TurnResult(
                    handle.turn_id,
                    handle.session_id,
                    agent,
                    status,
                    text,
                    spoken,
                    code,
                    error,
                    elapsed,
                )
            )

    def _never_ran(self, handle: TurnHandle, t0: float) -> None:
        """Record a turn stored as the hub stopped as interrupted, and tell its caller."""
        spoken = f"Sorry, {handle.agent.name} was interrupted because the hub is shutting down."
        elapsed = (time.perf_counter() - t0) * 1000
        # Not awaited: the writer writes what it was given, and the hub waits for the writer.
        self._writer.update_nowait(
            handle.turn_id,
            {
                "status": "interrupted",
                "spoken": spoken,
                "error_code": "hub_stopping",
                "finished_at": _now(),
                "duration_ms": round(elapsed, 3),
            },
        )
        handle.finish(
            TurnResult(
                handle.turn_id,
                handle.session_id,
                handle.agent,
                "interrupted",
                "",
                spoken,
                "hub_stopping",
                "the hub stopped before the turn ran",
                elapsed,
            )
        )

    async def _turn_input(
        self, handle: TurnHandle, req: TurnRequest, message: str, runtime: Runtime
    ) -> TurnInput:
        agent = handle.agent
        history: tuple[ChatMessage, ...] = req.history or ()
        resumed = False
        context: AgentContext | None = None
        wants_context = runtime.wants_context
        # A CLI resuming its own session needs to know whether the session ran before.
        needs_session = runtime.resumes_sessions or (wants_context and req.history is None)
        if needs_session and req.session_id:
            earlier = await self._turns.of_session(
                agent.id, req.session_id, req.caller, exclude=handle.turn_id
            )
            resumed = bool(earlier)
            if wants_context and req.history is None:
                history = tuple(
                    m
                    for t in earlier
                    if t.status == "done"
                    for m in (
                        ChatMessage("user", t.message),
                        ChatMessage("assistant", t.reply or ""),
                    )
                )
        if wants_context:
            context = await gather(
                agent, await self._turns.recent(agent.id, exclude=handle.turn_id)
            )
        return TurnInput(
            turn_id=handle.turn_id,
            agent=agent,
            message=message,
            session_id=handle.session_id,
            resumed=resumed,
            timeout=self._timeout,
            history=history,
            context=context,
            caller=req.caller,
        )

    async def _set(self, turn_id: str, **values: Any) -> None:
        # Written even if this task is cancelled meanwhile (the writer writes what it was given).
        await self._writer.update(turn_id, values)

    # -- the store's turns, for the front doors ------------------------------------------------

    async def get_turn(self, turn_id: str) -> Turn | None:
        return await self._turns.get(turn_id)

    async def list_turns(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        call_id: str | None = None,
        status: Sequence[str] = (),
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Turn]:
        return await self._turns.listing(
            agent_id=agent_id,
            session_id=session_id,
            call_id=call_id,
            status=status,
            limit=limit,
            before=before,
        )

    async def recent(self, agent_id: str, *, exclude: str | None = None) -> list[RecentTurn]:
        """The agent's last few finished turns, oldest first (for its context)."""
        return await self._turns.recent(agent_id, exclude=exclude)


def _now() -> datetime:
    return datetime.now(UTC)
