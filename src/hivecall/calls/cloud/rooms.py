"""Cloud calls on the hub side: a call's room, its agents, its people, its worker tokens.

A cloud call is a LiveKit room named after the call. The hub creates it, dispatches
`hivecall worker` into it for each agent (metadata names the call and the agent, never a
secret), and hands people join tokens. A worker proves itself with a LiveKit token signed with
the shared LiveKit secret and gets, per call, a hivecall token that can only relay turns into that
call and report its phases and lines (auth.WORKER_SCOPE). The first claim of a (call, agent)
wins; any later one is refused, so a redispatch never puts an agent in the room twice.

livekit-server drops a dispatch it cannot hand to a worker at once: one made while no worker is
registered for the agent name stays listed, job-less, even after a worker registers (measured
on v1.13.5). So a call started before `hivecall worker` is up would ring until the sweeper fails
it. Instead, an agent nobody claimed REDISPATCH_AFTER_S after its dispatch is dispatched again,
until a worker claims it or the call's connect timeout passes (`redispatch`, run every second
by a task that lives while some agent waits, and at the hub's start for the agents a stopped
hub left waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from hivecall.agents.context import ContextCache
from hivecall.agents.records import AgentRecord, Agents
from hivecall.auth import WORKER, WORKER_SCOPE, Principal, Tokens
from hivecall.calls import CallLineIn, Calls
from hivecall.calls.cloud.livekit import JoinToken, LiveKit, Participant, join_token, verify_worker
from hivecall.calls.cloud.wire import ClaimOut, ClaimOutAgent, ClaimOutCall, JobMeta, room_name
from hivecall.calls.state import TERMINAL
from hivecall.errors import Conflict, HivecallError, NotFound
from hivecall.settings import Settings
from hivecall.store import Store
from hivecall.store.models import Call, CallAgent
from hivecall.voice.instructions import greeting, group_instructions

log = logging.getLogger(__name__)

# OpenAI Realtime voices: the call's first agent speaks with the hub's voice setting, each added
# agent with the next one no other agent in the call uses, so people can tell them apart.
VOICES = ("marin", "cedar", "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse")
# A worker's token lives as long as a long call; it is revoked when the call ends.
WORKER_TOKEN_TTL = timedelta(hours=12)
# A registered worker claims its job within a second or two (a warm job process, one POST;
# on a loaded machine it can take longer, and then the extra job's claim is refused); unclaimed
# this long after the dispatch, nobody took it: dispatch the agent again. The old dispatch is
# left as it is: deleting it could end a job a slow worker just got (LiveKit sends
# JobTermination), and the server never hands it out later anyway. It goes with the room.
REDISPATCH_AFTER_S = 5.0
REDISPATCH_EVERY_S = 1.0
# States in which an agent may still be waiting for its worker (a call's first agent while it
# rings, an added agent during the call); the index on calls.state finds them.
OPEN = ("ringing", "connecting", "talking")


@dataclass
class _Waiting:
    """An agent no worker claimed yet: when it was last dispatched, and how many times."""

    dispatched_at: datetime
    dispatches: int = 1


def human_identity(who: Principal) -> str:
    """A stable identity per token (the owner's or a device's), so a rejoin replaces the old
    connection instead of adding a ghost."""
    return f"human-{who.token_id[:8]}"


def human_name(who: Principal) -> str:
    """What the others in the room see: a phone by its name; the owner (owner token or a
    browser session, whose token names are "owner" and "browser") as the host."""
    return who.name if who.kind == "device" and who.name else "Host"


def guest_identity() -> str:
    return f"guest-{secrets.token_hex(4)}"


class CloudCalls:
    def __init__(
        self,
        *,
        store: Store,
        calls: Calls,
        tokens: Tokens,
        agents: Agents,
        contexts: ContextCache,
    ) -> None:
        self._store = store
        self._calls = calls
        self._tokens = tokens
        self._agents = agents
        self._contexts = contexts
        self.livekit = LiveKit()
        self.redispatch_after = REDISPATCH_AFTER_S
        self._waiting: dict[tuple[str, str], _Waiting] = {}
        self._settings: Settings | None = None  # the latest, for the redispatch task
        self._redispatcher: asyncio.Task[None] | None = None
        self._poked = False

    async def open_room(self, settings: Settings, call_id: str) -> None:
        """Create the call's room (before its record exists: the two can be made at once)."""
        await self.livekit.create_room(settings, room_name(call_id), call_id=call_id)

    async def start(
        self, settings: Settings, *, call: Call, agent: AgentRecord, who: Principal
    ) -> JoinToken:
        """Dispatch the first agent into the call's room (`open_room`) and mint the caller's
        token. If no agent can be dispatched, the room is deleted."""
        try:
            await self._dispatch(settings, call, agent, voice=settings.realtime_voice, position=0)
        except HivecallError:
            # No agent will come: close the room now rather than leave it to the empty timeout.
            await self.discard_room(settings, call.id)
            raise
        name = room_name(call.id)
        return join_token(settings, room=name, identity=human_identity(who), name=human_name(who))

    async def discard_room(self, settings: Settings, call_id: str) -> None:
        """Delete a room no call will use (best effort: its empty timeout closes it anyway)."""
        with contextlib.suppress(HivecallError):
            await self.livekit.delete_room(settings, room_name(call_id))

    async def join(self, settings: Settings, call: Call, *, identity: str, name: str) -> JoinToken:
        self.check_open(call)
        return join_token(settings, room=room_name(call.id), identity=identity, name=name)

    async def add_agent(self, settings: Settings, call: Call, agent: AgentRecord) -> CallAgent:
        """Dispatch another agent into the call, with a voice no agent in it uses yet."""
        self.check_open(call)
        present = await self.agents_of(call.id)
        if any(a.agent_id == agent.id for a in present):
            raise Conflict(f"{agent.name} is already in this call", code="agent_in_call")
        if len(present) + 1 >= settings.cloud_max_participants:
            raise Conflict("the call's room is full", code="call_full")
        used = {a.voice for a in present}
        voice = next((v for v in VOICES if v not in used), VOICES[len(present) % len(VOICES)])
        return await self._dispatch(settings, call, agent, voice=voice, position=len(present))

    async def _dispatch(
        self, settings: Settings, call: Call, agent: AgentRecord, *, voice: str, position: int
    ) -> CallAgent:
        # The row goes first: a worker that claims the moment LiveKit hands it the job must
        # find it. The primary key (call, agent) makes a racing second add a conflict.
        # `position` is the caller's count of the agents already in (0 for a new call).
        row = {
            "call_id": call.id,
            "agent_id": agent.id,
            "position": position,
            "voice": voice,
            "dispatch_id": "",
            "added_at": datetime.now(UTC),
            "claimed_at": None,
        }
        try:
            async with self._store.engine.begin() as conn:
                await conn.execute(insert(CallAgent).values(**row))
        except IntegrityError as e:
            raise Conflict(f"{agent.name} is already in this call", code="agent_in_call") from e
        try:
            dispatch_id = await self.livekit.dispatch(
                settings, room_name(call.id), JobMeta(call.id, agent.id, agent.name).encode()
            )
        except HivecallError:
            await self._forget_agent(call.id, agent.id)
            raise
        await self._set_dispatch(call.id, agent.id, dispatch_id)
        self._waiting[(call.id, agent.id)] = _Waiting(datetime.now(UTC))
        self._watch(settings)
        return CallAgent(**(row | {"dispatch_id": dispatch_id}))

    async def _set_dispatch(self, call_id: str, agent_id: str, dispatch_id: str) -> None:
        async with self._store.engine.begin() as conn:
            await conn.execute(
                update(CallAgent)
                .where(CallAgent.call_id == call_id, CallAgent.agent_id == agent_id)
                .values(dispatch_id=dispatch_id)
            )

    # -- redispatch: a worker that registers during the ring still gets the call -------------

    def resume(self, settings: Settings) -> None:
        """At start: go on dispatching the agents a stopped hub left waiting (the pass finds
        them in the store, and ends at once when there are none)."""
        self._watch(settings)

    def _watch(self, settings: Settings) -> None:
        """Make sure the redispatch task runs (it ends when no agent waits)."""
        self._settings = settings
        self._poked = True
        if self._redispatcher is None or self._redispatcher.done():
            self._redispatcher = asyncio.create_task(self._redispatch_loop(), name="redispatch")

    async def _redispatch_loop(self) -> None:
        while True:
            await asyncio.sleep(REDISPATCH_EVERY_S)
            self._poked = False
            settings = self._settings
            assert settings is not None
            try:
                waiting = await self.redispatch(settings)
            except Exception as e:  # a store or LiveKit hiccup: the next pass tries again
                log.warning("a redispatch pass failed", extra={"error": type(e).__name__})
                continue
            # A dispatch made during the pass pokes: its agent may not have been seen yet.
            if not waiting and not self._poked:
                return

    async def redispatch(self, settings: Settings, *, now: datetime | None = None) -> int:
        """Dispatch again each agent of an open cloud call that no worker claimed within
        `redispatch_after` of its last dispatch; returns how many agents still wait. One query
        (calls by state, their agents by primary key); LiveKit only for the agents due."""
        now = now or datetime.now(UTC)
        q = (
            select(CallAgent, Call)
            .join(Call, Call.id == CallAgent.call_id)
            .where(
                Call.state.in_(OPEN),
                Call.mode == "cloud",
                CallAgent.claimed_at.is_(None),
                CallAgent.dispatch_id != "",  # still being dispatched for the first time
                # Past the connect timeout the sweeper fails a ringing call; an agent added
                # later in the call is not waited for longer either.
                CallAgent.added_at > now - timedelta(seconds=settings.call_connect_timeout),
            )
        )
        async with self._store.session() as s:
            rows = [(a, c) for a, c in (await s.execute(q)).all()]
        seen = {(a.call_id, a.agent_id) for a, _ in rows}
        for key in [k for k in self._waiting if k not in seen]:
            del self._waiting[key]
        for row, call in rows:
            key = (row.call_id, row.agent_id)
            waiting = self._waiting.setdefault(key, _Waiting(row.added_at))
            if now - waiting.dispatched_at < timedelta(seconds=self.redispatch_after):
                continue
            try:
                await self._redispatch_one(settings, row, call, waiting, now=now)
            except HivecallError as e:  # LiveKit down for a moment: the next pass tries again
                log.warning(
                    "could not dispatch a waiting agent again",
                    extra={"call_id": row.call_id, "code": e.code},
                )
        return len(rows)

    async def _redispatch_one(
        self, settings: Settings, row: CallAgent, call: Call, waiting: _Waiting, *, now: datetime
    ) -> None:
        agent = await self._agents.get(row.agent_id)
        meta = JobMeta(call.id, agent.id, agent.name).encode()
        dispatch_id = await self.livekit.dispatch(settings, room_name(call.id), meta)
        await self._set_dispatch(call.id, agent.id, dispatch_id)
        if waiting.dispatches == 1:
            # Said once: what the call is waiting for, where the user looks at it.
            line = f"waiting for `hivecall worker` to take {agent.name}"
            await self._calls.add_lines(call, [CallLineIn(kind="phase", text=line)])
        waiting.dispatched_at = now
        waiting.dispatches += 1
        log.info(
            "dispatched an agent no worker took again",
            extra={"call_id": call.id, "agent_id": agent.id, "dispatches": waiting.dispatches},
        )

    async def _forget_agent(self, call_id: str, agent_id: str) -> None:
        async with self._store.session() as s, s.begin():
            row = await s.get(CallAgent, (call_id, agent_id))
            if row is not None:
                await s.delete(row)

    async def in_call(self, call: Call, agent_id: str) -> bool:
        """Whether an agent was dispatched into this cloud call (added agents relay their
        tool turns into the same call)."""
        if call.mode != "cloud":
            return False
        async with self._store.session() as s:
            return await s.get(CallAgent, (call.id, agent_id)) is not None

    async def agents_of(self, call_id: str) -> list[CallAgent]:
        q = select(CallAgent).where(CallAgent.call_id == call_id).order_by(CallAgent.position)
        async with self._store.session() as s:
            return list((await s.scalars(q)).all())

    async def claim(
        self, settings: Settings, *, jwt: str, call_id: str, agent_id: str, job_id: str
    ) -> ClaimOut:
        """A worker took the job for (call, agent): give it a token for this call only."""
        verify_worker(settings, jwt)
        async with self._store.session() as s:
            row = await s.get(CallAgent, (call_id, agent_id))
        if row is None:
            raise NotFound("that agent was not dispatched into that call", code="call_not_found")
        call = await self._calls.get(call_id)
        self.check_open(call)
        agent = await self._agents.get(agent_id)
        # One conditional UPDATE: of two jobs for the same agent (a redispatch, a worker that
        # got both), the first claim wins and the other job leaves without joining.
        async with self._store.engine.begin() as conn:
            won = await conn.execute(
                update(CallAgent)
                .where(
                    CallAgent.call_id == call_id,
                    CallAgent.agent_id == agent_id,
                    CallAgent.claimed_at.is_(None),
                )
                .values(claimed_at=datetime.now(UTC))
            )
        if not won.rowcount:
            log.info(
                "refused a second claim of a cloud call's agent",
                extra={"call_id": call_id, "job_id": job_id},
            )
            raise Conflict(
                f"another job already took {agent.name} in this call", code="agent_claimed"
            )
        self._waiting.pop((call_id, agent_id), None)
        names = {a.id: a.name for a in await self._agents.list()}
        in_call = [names.get(a.agent_id, a.agent_id) for a in await self.agents_of(call_id)]
        others = [n for n in in_call if n != agent.name]
        value, _ = await self._tokens.create(
            kind=WORKER,
            scopes=(WORKER_SCOPE,),
            name=f"{agent.name} in {call_id}",
            subject=call_id,
            ttl=WORKER_TOKEN_TTL,
        )
        await self._calls.advance(call, "connecting")
        log.info("worker claimed a cloud call", extra={"call_id": call_id, "job_id": job_id})
        ctx = await self._contexts.get(agent)
        return ClaimOut(
            token=value,
            call=ClaimOutCall(id=call.id, room=room_name(call.id)),
            agent=ClaimOutAgent(
                id=agent.id,
                name=agent.name,
                voice=row.voice,
                instructions=group_instructions(ctx, others),
                greeting=greeting(agent.name),
            ),
            agents=in_call,
        )

    async def participants(self, settings: Settings, call: Call) -> list[Participant]:
        return await self.livekit.participants(settings, room_name(call.id))

    async def remove(self, settings: Settings, call: Call, identity: str) -> None:
        self.check_open(call)
        await self.livekit.remove(settings, room_name(call.id), identity)

    async def end(self, settings: Settings, call: Call) -> None:
        """Close the room and revoke the call's worker tokens (the call record is ended by the
        caller). LiveKit being down does not keep a call open on the hub."""
        await self._tokens.revoke_subject(WORKER, call.id)
        try:
            await self.livekit.delete_room(settings, room_name(call.id))
        except HivecallError as e:
            log.warning("could not close a cloud call's room", extra={"code": e.code})

    @staticmethod
    def check_cloud(call: Call) -> None:
        if call.mode != "cloud":
            raise Conflict("that is not a cloud call", code="call_mode_mismatch")

    def check_open(self, call: Call) -> None:
        self.check_cloud(call)
        if call.state in TERMINAL:
            raise Conflict(f"the call has already {call.state}", code="call_finished")

    async def aclose(self) -> None:
        task, self._redispatcher = self._redispatcher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.livekit.aclose()
