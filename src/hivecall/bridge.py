"""The bridge: every request from every front door becomes one persisted turn on an agent.

A turn is written to the store before its runtime starts (queued → running → done | failed |
interrupted). The runtime runs in a task the bridge owns, not in the HTTP request, so a caller
that hangs up does not lose the agent's work; the caller just stops listening. On shutdown the
bridge cancels what is running and records it as interrupted; on start it marks turns that a
crash left running as interrupted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from hivecall.agents.context import AgentContext, RecentTurn, gather
from hivecall.agents.records import AgentRecord, Agents
from hivecall.errors import BadRequest, Conflict, NotFound, RuntimeFailure
from hivecall.runtimes import ChatMessage, Runtimes, TurnInput
from hivecall.speakable import speakable
from hivecall.store import Store
from hivecall.store.models import Turn

log = logging.getLogger(__name__)

HISTORY_TURNS = 10
RECENT_TURNS = 5
UNFINISHED = ("queued", "running")


@dataclass(frozen=True)
class TurnRequest:
    agent: str  # id or name
    message: str
    source: str
    session_id: str | None = None
    call_id: str | None = None
    # Earlier messages of the conversation, when the caller keeps them (chat API). When None the
    # bridge replays the session's earlier turns to runtimes that want history.
    history: tuple[ChatMessage, ...] | None = None


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


@dataclass
class TurnHandle:
    turn_id: str
    session_id: str
    agent: AgentRecord
    _deltas: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    _done: asyncio.Future[TurnResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    async def deltas(self) -> AsyncIterator[str]:
        """The answer's text as the runtime produces it (ends when the turn ends)."""
        while (piece := await self._deltas.get()) is not None:
            yield piece

    async def result(self) -> TurnResult:
        return await asyncio.shield(self._done)


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
        self.active: defaultdict[str, int] = defaultdict(int)

    # -- life cycle ---------------------------------------------------------------------------

    async def recover(self) -> int:
        """Mark turns a previous process left unfinished as interrupted. Returns how many."""
        async with self._store.session() as s, s.begin():
            result = await s.execute(
                update(Turn)
                .where(Turn.status.in_(UNFINISHED))
                .values(status="interrupted", error_code="hub_restarted", finished_at=_now())
            )
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            log.warning("marked unfinished turns interrupted", extra={"count": count})
        return count

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

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
        message = req.message.strip()
        if not message:
            raise BadRequest("the message is empty", code="empty_message")
        if len(message) > self._max_chars:
            raise BadRequest(
                f"the message is longer than {self._max_chars} characters", code="message_too_long"
            )
        agent = await self._agents.get(req.agent)
        if problem := self._agents.problem(agent):
            raise Conflict(f"agent {agent.name!r} cannot run: {problem}", code="agent_unavailable")
        runtime = self._runtimes.get(agent.runtime)
        session_id = req.session_id or uuid.uuid4().hex
        now = _now()
        turn_id = uuid.uuid4().hex
        # Core statements on a bare connection: the ORM's unit of work costs more than the write.
        try:
            async with self._store.engine.begin() as conn:
                await conn.execute(
                    insert(Turn).values(
                        id=turn_id,
                        agent_id=agent.id,
                        session_id=session_id,
                        call_id=req.call_id,
                        source=req.source,
                        status="queued" if runtime.exclusive else "running",
                        message=message,
                        queued_at=now,
                        started_at=None if runtime.exclusive else now,
                    )
                )
        except IntegrityError as e:  # the agent was removed by another process a moment ago
            self._agents.forget()
            raise NotFound(f"no agent called {req.agent!r}", code="agent_not_found") from e
        handle = TurnHandle(turn_id=turn_id, session_id=session_id, agent=agent)
        self.active[agent.id] += 1
        task = asyncio.create_task(self._run(handle, req, message, time.perf_counter()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return handle

    async def run(self, req: TurnRequest) -> TurnResult:
        handle = await self.start(req)
        return await handle.result()

    async def _run(self, handle: TurnHandle, req: TurnRequest, message: str, t0: float) -> None:
        agent = handle.agent
        runtime = self._runtimes.get(agent.runtime)
        pieces: list[str] = []
        status, code, error = "done", None, None
        spoken = ""
        try:
            async with self._locks[agent.id] if runtime.exclusive else contextlib.nullcontext():
                if runtime.exclusive:
                    await self._set(handle.turn_id, status="running", started_at=_now())
                turn = await self._turn_input(handle, req, message, runtime.wants_context)
                async for piece in runtime.stream(turn):
                    pieces.append(piece)
                    handle._deltas.put_nowait(piece)
        except RuntimeFailure as e:
            status, code, error, spoken = "failed", e.code, e.message, e.spoken
        except asyncio.CancelledError:
            status, code, error = "interrupted", "hub_stopping", "the hub stopped during the turn"
            spoken = f"Sorry, {agent.name} was interrupted because the hub is shutting down."
        except Exception:
            log.exception("turn failed", extra={"turn_id": handle.turn_id, "agent": agent.name})
            status, code, error = "failed", "internal_error", "the hub hit an unexpected error"
            spoken = f"Sorry, something went wrong while {agent.name} was working."
        finally:
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
                finished_at=_now(),
                duration_ms=round(elapsed, 3),
            )
        finally:
            handle._deltas.put_nowait(None)
            handle._done.set_result(
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

    async def _turn_input(
        self, handle: TurnHandle, req: TurnRequest, message: str, wants_context: bool
    ) -> TurnInput:
        agent = handle.agent
        history: tuple[ChatMessage, ...] = req.history or ()
        resumed = False
        context: AgentContext | None = None
        needs_session = agent.runtime == "command" or (wants_context and req.history is None)
        if needs_session and req.session_id:
            earlier = await self._session_turns(agent.id, req.session_id, handle.turn_id)
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
            context = await gather(agent, await self.recent(agent.id, exclude=handle.turn_id))
        return TurnInput(
            turn_id=handle.turn_id,
            agent=agent,
            message=message,
            session_id=handle.session_id,
            resumed=resumed,
            timeout=self._timeout,
            history=history,
            context=context,
        )

    async def _session_turns(self, agent_id: str, session_id: str, exclude: str) -> list[Turn]:
        async with self._store.session() as s:
            rows = await s.scalars(
                select(Turn)
                .where(Turn.agent_id == agent_id, Turn.session_id == session_id, Turn.id != exclude)
                .order_by(Turn.queued_at.desc())
                .limit(HISTORY_TURNS)
            )
            return list(reversed(list(rows)))

    async def recent(self, agent_id: str, *, exclude: str | None = None) -> list[RecentTurn]:
        """The agent's last few finished turns, oldest first (for its context)."""
        async with self._store.session() as s:
            q = (
                select(Turn)
                .where(Turn.agent_id == agent_id, Turn.status.not_in(UNFINISHED))
                .order_by(Turn.queued_at.desc())
                .limit(RECENT_TURNS)
            )
            if exclude:
                q = q.where(Turn.id != exclude)
            rows = list(await s.scalars(q))
        return [
            RecentTurn(
                r.queued_at.isoformat(timespec="seconds"), r.message, r.reply or "", r.status
            )
            for r in reversed(rows)
        ]

    async def _set(self, turn_id: str, **values: Any) -> None:
        async with self._store.engine.begin() as conn:
            await conn.execute(update(Turn).where(Turn.id == turn_id).values(**values))

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
        q = select(Turn).order_by(Turn.queued_at.desc()).limit(limit)
        if agent_id:
            q = q.where(Turn.agent_id == agent_id)
        if session_id:
            q = q.where(Turn.session_id == session_id)
        if call_id:
            q = q.where(Turn.call_id == call_id)
        if status:
            q = q.where(Turn.status.in_(status))
        if before:
            q = q.where(Turn.queued_at < before)
        async with self._store.session() as s:
            return list(await s.scalars(q))

    async def get_turn(self, turn_id: str) -> Turn | None:
        async with self._store.session() as s:
            return await s.get(Turn, turn_id)


def _now() -> datetime:
    return datetime.now(UTC)
