"""Cloud calls on the hub side: a call's room, its agents, its people, its worker tokens.

A cloud call is a LiveKit room named after the call. The hub creates it, dispatches
`hivecall worker` into it for each agent (metadata names the call and the agent, never a
secret), and hands people join tokens. A worker proves itself with a LiveKit token signed with
the shared LiveKit secret and gets, per call, a hivecall token that can only relay turns into that
call and report its phases and lines (auth.WORKER_SCOPE).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hivecall.agents.context import ContextCache
from hivecall.agents.records import AgentRecord, Agents
from hivecall.auth import WORKER, WORKER_SCOPE, Principal, Tokens
from hivecall.calls import Calls
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

    async def start(
        self, settings: Settings, *, call: Call, agent: AgentRecord, who: Principal
    ) -> JoinToken:
        """Create the call's room, dispatch its first agent, and mint the caller's token."""
        name = room_name(call.id)
        await self.livekit.create_room(settings, name, call_id=call.id)
        try:
            await self._dispatch(settings, call, agent, voice=settings.realtime_voice)
        except HivecallError:
            # No agent will come: close the room now rather than leave it to the empty timeout.
            with contextlib.suppress(HivecallError):
                await self.livekit.delete_room(settings, name)
            raise
        return join_token(settings, room=name, identity=human_identity(who), name=human_name(who))

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
        return await self._dispatch(settings, call, agent, voice=voice)

    async def _dispatch(
        self, settings: Settings, call: Call, agent: AgentRecord, *, voice: str
    ) -> CallAgent:
        # The row goes first: a worker that claims the moment LiveKit hands it the job must
        # find it. The primary key (call, agent) makes a racing second add a conflict.
        async with self._store.session() as s:
            position = await s.scalar(
                select(func.count()).select_from(CallAgent).where(CallAgent.call_id == call.id)
            )
        row = {
            "call_id": call.id,
            "agent_id": agent.id,
            "position": position or 0,
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
        async with self._store.engine.begin() as conn:
            await conn.execute(
                update(CallAgent)
                .where(CallAgent.call_id == call.id, CallAgent.agent_id == agent.id)
                .values(dispatch_id=dispatch_id)
            )
        return CallAgent(**(row | {"dispatch_id": dispatch_id}))

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
        async with self._store.engine.begin() as conn:
            await conn.execute(
                update(CallAgent)
                .where(CallAgent.call_id == call_id, CallAgent.agent_id == agent_id)
                .values(claimed_at=datetime.now(UTC))
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
        await self.livekit.aclose()
