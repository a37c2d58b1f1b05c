"""Call records: created when a call starts, advanced by the client's reports, kept as history.

Phase changes are single conditional UPDATEs (`WHERE state IN (allowed)`), so two reports racing
(the page's "talking" and the user's "end") cannot move a call backwards.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, case, insert, select, update

from hivecall.auth import WORKER, Principal
from hivecall.calls.state import FROM, STAMP, TERMINAL, reached
from hivecall.errors import Conflict, NotFound
from hivecall.store import Store
from hivecall.store.models import Call, CallLine

log = logging.getLogger(__name__)

# Transcript lines that arrive just after the end (the page flushes on hang-up) are still kept.
LATE_LINES = timedelta(seconds=60)
MAX_LINE_CHARS = 4000


class CallLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["user", "agent", "tool", "error", "phase"]
    text: str = Field(max_length=MAX_LINE_CHARS)
    turn_id: str | None = Field(default=None, max_length=32)
    speaker: str = Field(default="", max_length=200)


@dataclass(frozen=True)
class CallView:
    call: Call
    agent: dict[str, Any]

    def public(self) -> dict[str, Any]:
        c = self.call
        return {
            "id": c.id,
            "mode": c.mode,
            "state": c.state,
            "agent": self.agent,
            "started_by": c.started_by_name,
            "speaker_only": c.speaker_only,
            "error": {"code": c.error_code, "message": c.error_message or ""}
            if c.error_code
            else None,
            "created_at": _iso(c.created_at),
            "connecting_at": _iso(c.connecting_at),
            "talking_at": _iso(c.talking_at),
            "ended_at": _iso(c.ended_at),
            "duration_s": _duration(c),
        }


class Failed(NamedTuple):
    """A call failed by the hub itself (crash recovery, the sweeper): what has to be stopped."""

    id: str
    mode: str


@dataclass(frozen=True)
class Stuck:
    """Calls left in `state` (ringing or connecting) too long: they fail with `code` and, per
    mode, a message; modes without one are left alone."""

    state: Literal["ringing", "connecting"]
    code: str
    messages: Mapping[str, str]


# When each phase a call can be stuck in began.
SINCE = {"ringing": Call.created_at, "connecting": Call.connecting_at}


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _duration(c: Call) -> float | None:
    if c.talking_at is None:
        return None
    end = c.ended_at or datetime.now(UTC)
    return round((end - c.talking_at).total_seconds(), 1)


def line_view(line: CallLine) -> dict[str, Any]:
    return {
        "at": line.at.isoformat(),
        "kind": line.kind,
        "text": line.text,
        "turn_id": line.turn_id,
        "speaker": line.speaker,
    }


def visible_to(call: Call, who: Principal) -> bool:
    """The owner sees every call; a device token only the calls it started; a cloud worker's
    token only the call it was given for."""
    if who.can("admin") or call.started_by == who.token_id:
        return True
    return who.kind == WORKER and who.subject == call.id


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class Calls:
    def __init__(self, *, store: Store) -> None:
        self._store = store
        # Calls whose network is down now: a local call's page and its hub each see a drop (each
        # sees one direction), and the timeline says it once.
        self._offline: set[str] = set()

    def network_line(self, call_id: str, state: str) -> CallLineIn | None:
        """The `network lost` / `network recovered` line when `state` changes the call's
        network, else None (the other side already said so)."""
        if (state == "lost") == (call_id in self._offline):
            return None
        if state == "lost":
            self._offline.add(call_id)
        else:
            self._offline.discard(call_id)
        return CallLineIn(kind="phase", text=f"network {state}")

    async def create(
        self,
        *,
        agent_id: str,
        mode: str,
        who: Principal,
        call_id: str | None = None,
    ) -> Call:
        now = datetime.now(UTC)
        row = {
            "id": call_id or new_call_id(),
            "agent_id": agent_id,
            "mode": mode,
            "state": "ringing",
            "started_by": who.token_id,
            "started_by_name": who.name or who.kind,
            "speaker_only": False,
            "error_code": None,
            "error_message": None,
            "created_at": now,
            "ended_at": None,
        }
        async with self._store.engine.begin() as conn:
            await conn.execute(insert(Call).values(**row))
        return Call(**row)

    async def get(self, call_id: str, *, who: Principal | None = None) -> Call:
        async with self._store.session() as s:
            call = await s.get(Call, call_id)
        # Someone else's call is reported as missing, not forbidden: ids do not leak.
        if call is None or (who is not None and not visible_to(call, who)):
            raise NotFound("no such call", code="call_not_found")
        return call

    async def history(
        self, *, who: Principal, agent_id: str | None = None, limit: int = 50
    ) -> list[Call]:
        q = select(Call).order_by(Call.created_at.desc(), Call.id.desc()).limit(limit)
        if not who.can("admin"):
            q = q.where(Call.started_by == who.token_id)
        if agent_id:
            q = q.where(Call.agent_id == agent_id)
        async with self._store.session() as s:
            return list((await s.scalars(q)).all())

    async def advance(
        self, call: Call, phase: str, *, error: tuple[str, str] | None = None
    ) -> Call:
        """Move the call to `phase`. Repeating a phase it already passed is a no-op; moving a
        finished call is a conflict."""
        if reached(call.state, phase):
            return call
        values: dict[str, Any] = {"state": phase, STAMP[phase]: datetime.now(UTC)}
        if error:
            values["error_code"], values["error_message"] = error
        stmt = update(Call).where(Call.id == call.id, Call.state.in_(FROM[phase])).values(**values)
        async with self._store.engine.begin() as conn:
            changed = (await conn.execute(stmt)).rowcount
        fresh = await self.get(call.id)
        if changed:
            await self.add_lines(fresh, [CallLineIn(kind="phase", text=phase)])
            if phase in TERMINAL:
                self._offline.discard(call.id)
        elif not reached(fresh.state, phase):
            raise Conflict(f"the call has already {fresh.state}", code="call_finished")
        return fresh

    async def recover(self) -> int:
        """Fail the local calls a previous hub process was hosting; returns how many.

        A local call's media and speech run inside the hub, so a hub that was killed (SIGKILL,
        power loss) took them along, and nothing else would ever end the record. BYOK and cloud
        calls are left alone: their media is between the browser and OpenAI or LiveKit, and may
        go on across a restart.
        """
        failed = await self._fail(
            [Call.mode == "local", Call.state.in_(FROM["failed"])],
            code="hub_restarted",
            message="the hub restarted during the call",
            now=datetime.now(UTC),
        )
        if failed:
            log.warning(
                "failed the local calls a stopped hub was hosting", extra={"count": len(failed)}
            )
        return len(failed)

    async def fail_stuck(self, stuck: Stuck, *, before: datetime, now: datetime) -> list[Failed]:
        """Fail the calls of `stuck`'s modes still in its state since before `before`. One
        conditional UPDATE: a call that moved on meanwhile is left alone."""
        if not stuck.messages:
            return []
        message = case(
            *((Call.mode == mode, text) for mode, text in stuck.messages.items()),
            else_=stuck.code,
        )
        where = [
            Call.state == stuck.state,
            Call.mode.in_(list(stuck.messages)),
            SINCE[stuck.state] < before,
        ]
        return await self._fail(where, code=stuck.code, message=message, now=now)

    async def _fail(
        self,
        where: list[ColumnElement[bool]],
        *,
        code: str,
        message: str | ColumnElement[str],
        now: datetime,
    ) -> list[Failed]:
        """Fail the calls `where` matches and write their "failed" phase line, at once."""
        stmt = (
            update(Call)
            .where(*where)
            .values(state="failed", ended_at=now, error_code=code, error_message=message)
            .returning(Call.id, Call.mode)
        )
        async with self._store.engine.begin() as conn:
            failed = [Failed(i, mode) for i, mode in await conn.execute(stmt)]
            if failed:
                rows = [
                    {"call_id": f.id, "at": now, "kind": "phase", "text": "failed", "speaker": ""}
                    for f in failed
                ]
                await conn.execute(insert(CallLine), rows)
        return failed

    async def mark_speaker_only(self, call: Call) -> None:
        async with self._store.engine.begin() as conn:
            await conn.execute(update(Call).where(Call.id == call.id).values(speaker_only=True))

    def accepts_lines(self, call: Call) -> bool:
        if call.state not in TERMINAL or call.ended_at is None:
            return True
        return datetime.now(UTC) - call.ended_at <= LATE_LINES

    async def add_lines(self, call: Call, lines: list[CallLineIn]) -> None:
        if not lines:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "call_id": call.id,
                "at": now,
                "kind": ln.kind,
                "text": ln.text,
                "turn_id": ln.turn_id,
                "speaker": ln.speaker,
            }
            for ln in lines
        ]
        async with self._store.engine.begin() as conn:
            await conn.execute(insert(CallLine), rows)

    async def lines(self, call_id: str) -> list[CallLine]:
        q = select(CallLine).where(CallLine.call_id == call_id).order_by(CallLine.id)
        async with self._store.session() as s:
            return list((await s.scalars(q)).all())
