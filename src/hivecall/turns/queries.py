"""Reading the turns table: one turn, a listing, a session's earlier turns, an agent's recent work.

Turn rows are written by the bridge (through turns/writer.py); everything here only reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from hivecall.agents.context import RecentTurn
from hivecall.store import Store
from hivecall.store.models import Turn

# A session's earlier turns replayed to a runtime, and an agent's finished turns in its context.
HISTORY_TURNS = 10
RECENT_TURNS = 5
UNFINISHED = ("queued", "running")


class TurnQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, turn_id: str) -> Turn | None:
        async with self._store.session() as s:
            return await s.get(Turn, turn_id)

    async def listing(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        call_id: str | None = None,
        status: Sequence[str] = (),
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Turn]:
        """Turns, newest first, narrowed by whichever of the filters are given."""
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

    async def of_tool_call(self, call_id: str, tool_call_id: str) -> Turn | None:
        """The turn a voice tool call started, if it started one."""
        async with self._store.session() as s:
            return await s.scalar(
                select(Turn).where(Turn.call_id == call_id, Turn.tool_call_id == tool_call_id)
            )

    async def of_session(
        self, agent_id: str, session_id: str, caller: str, *, exclude: str
    ) -> list[Turn]:
        """The session's last HISTORY_TURNS turns on the agent (one caller's), oldest first."""
        async with self._store.session() as s:
            rows = await s.scalars(
                select(Turn)
                .where(
                    Turn.agent_id == agent_id,
                    Turn.session_id == session_id,
                    Turn.caller == caller,
                    Turn.id != exclude,
                )
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
