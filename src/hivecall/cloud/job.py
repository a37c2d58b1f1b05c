"""One job of `hivecall worker`: one agent in one cloud call, from the claim to leaving the room.

`entrypoint` (in a job process of its own) claims the job from the hub, which answers with the
agent's instructions, voice and greeting and a token scoped to that one call; joins the room
subscribed to people's audio only; and runs an `AgentSession` with OpenAI Realtime and the
`ask_computer_agent` and `cancel_computer_agent` tools (tools.py; work still running when the hub
answers is followed to its end and its answer said then, running_turns.py). The Realtime model
detects and transcribes turns but never answers on its own (`create_response=False`): CallFloor
asks for a reply only when it is this agent's turn. `attend` waits at most
`worker_wait_for_human` seconds for a person, greets, reports `talking` and, when the last
person leaves, `ended`; then the job leaves.
"""

from __future__ import annotations

import asyncio
import logging

from livekit.agents import Agent, AgentSession, AutoSubscribe, JobContext, room_io
from livekit.agents.voice.events import CloseEvent
from livekit.plugins import openai
from openai.types.realtime import AudioTranscription
from openai.types.realtime.realtime_audio_input_turn_detection import SemanticVad

from hivecall.calls.cloud.wire import JobMeta
from hivecall.calls.events import PhaseEvent, phase_event
from hivecall.cloud.call_floor import CallFloor
from hivecall.cloud.hubclient import Claim, HubClient, HubError
from hivecall.cloud.room import HUMAN_KINDS, Room
from hivecall.cloud.running_turns import RunningTurns, Session
from hivecall.cloud.tools import ask_tool, cancel_tool
from hivecall.settings import Settings

log = logging.getLogger(__name__)

LEAVE_GRACE = 5.0  # seconds an empty room gets for someone to come back before the call ends


def realtime_model(settings: Settings, *, voice: str) -> openai.realtime.RealtimeModel:
    """OpenAI Realtime that hears and transcribes turns but answers only when asked."""
    return openai.realtime.RealtimeModel(
        model=settings.realtime_model,
        voice=voice or settings.realtime_voice,
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        input_audio_transcription=AudioTranscription(model=settings.realtime_transcribe_model),
        turn_detection=SemanticVad(
            type="semantic_vad", eagerness="auto", create_response=False, interrupt_response=False
        ),
    )


def call_agent(claim: Claim, hub: HubClient, turns: RunningTurns) -> Agent:
    return Agent(
        instructions=claim.agent.instructions, tools=[ask_tool(hub, turns), cancel_tool(turns)]
    )


def call_session(settings: Settings, claim: Claim) -> Session:
    return AgentSession(
        llm=realtime_model(settings, voice=claim.agent.voice),
        vad=None,  # the Realtime model detects turns
        turn_handling={"turn_detection": "manual"},  # ... and CallFloor decides who answers
        user_away_timeout=None,
    )


async def entrypoint(ctx: JobContext, *, settings: Settings) -> None:
    """One agent in one cloud call, from the claim to leaving the room."""
    meta = JobMeta.parse(ctx.job.metadata)
    if meta is None:
        log.warning("not a hivecall job", extra={"job_id": ctx.job.id})
        ctx.shutdown("not a hivecall job")
        return
    where = {"call_id": meta.call_id, "job_id": ctx.job.id}
    hub = HubClient.from_settings(settings)
    ctx.add_shutdown_callback(hub.aclose)
    try:
        claim = await hub.claim(meta.call_id, meta.agent_id, ctx.job.id)
    except HubError as e:
        log.warning("the hub refused the job", extra={**where, "code": e.code})
        ctx.shutdown(f"claim refused: {e.code}")
        return
    try:
        await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)
    except Exception as e:  # rtc.ConnectError and whatever the SFU's connection raises
        log.warning("could not join the call's room", extra={**where, "error": type(e).__name__})
        if claim.agents[:1] == (claim.agent.name,):  # the call's own agent: the call is lost
            await _report(
                hub,
                phase_event(
                    "failed", "room_unreachable", f"{claim.agent.name} could not join the room"
                ),
            )
        ctx.shutdown("could not join the room")
        return
    room = Room(ctx.room, me=claim.agent.name, known=claim.agents)
    room.subscribe_humans()
    session = call_session(settings, claim)
    turns = RunningTurns(session, hub, quiet=lambda: not room.others_talking())
    floor = CallFloor(
        session,
        hub,
        me=claim.agent.name,
        present=room.agents,
        speaker=lambda: room.speaker(session),
        wait_for=room.wait_for_answers,
        work=turns,
    )
    closed = asyncio.Event()
    failure: list[CloseEvent] = []

    @session.on("close")
    def _closed(ev: CloseEvent) -> None:
        if ev.error is not None:
            failure.append(ev)
        closed.set()
        room.changed.set()

    await session.start(
        call_agent(claim, hub, turns),
        room=ctx.room,
        room_options=room_io.RoomOptions(
            participant_kinds=HUMAN_KINDS,
            close_on_disconnect=False,
            text_input=room_io.TextInputOptions(text_input_cb=floor.text_input),
        ),
    )
    room.follow_speakers(session)
    try:
        await attend(
            room, session, hub, claim, wait_for_human=settings.worker_wait_for_human, closed=closed
        )
    finally:
        if failure and len(room.agents()) == 1:
            await _report(
                hub,
                phase_event("failed", "agent_failed", f"{claim.agent.name}'s voice model stopped"),
            )
        await turns.aclose()  # the hub's turns go on; their answers stay in the call's history
        await session.aclose()  # its last words still reach the floor's outbox
        await floor.aclose()
        ctx.shutdown("left the call")


async def attend(
    room: Room,
    session: Session,
    hub: HubClient,
    claim: Claim,
    *,
    wait_for_human: float,
    closed: asyncio.Event,
) -> None:
    """Be in the call: wait for a person (at most `wait_for_human` seconds), report `talking`
    and greet; when everyone has left (and LEAVE_GRACE passed) report `ended`. Returns then, or
    when the session closed or the room was left (removed, or the call ended elsewhere)."""
    where = {"call_id": claim.call_id}
    if not await room.until(lambda: bool(room.humans()) or closed.is_set(), wait_for_human):
        if room.room.isconnected():
            log.info("nobody joined the call; leaving", extra=where)
            await _report(hub, phase_event("ended"))
        return
    if closed.is_set():
        return
    await _report(hub, phase_event("talking"))
    if claim.agent.greeting:
        session.generate_reply(instructions=claim.agent.greeting)
    while True:
        await room.until(lambda: not room.humans() or closed.is_set(), None)
        if closed.is_set() or not room.room.isconnected():
            return
        # Empty: give people a moment to come back (a reload, a network change).
        if not await room.until(lambda: bool(room.humans()) or closed.is_set(), LEAVE_GRACE):
            if room.room.isconnected():
                log.info("everyone left the call; leaving", extra=where)
                await _report(hub, phase_event("ended"))
            return


async def _report(hub: HubClient, event: PhaseEvent) -> None:
    try:
        await hub.report([event])
    except HubError as e:
        log.warning("could not report a call phase", extra={"phase": event.phase, "code": e.code})
