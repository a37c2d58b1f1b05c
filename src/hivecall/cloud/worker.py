"""`hivecall worker`: the LiveKit Agents worker that speaks for hivecall's agents in cloud calls.

The hub creates a room per cloud call and dispatches this worker (explicit dispatch, agent name
`livekit_agent_name`) once per agent, with metadata naming the call and the agent. Per job:

1. `on_request` (in the worker process) accepts hivecall's jobs as `agent-<agent id>`, named
   after the agent, and rejects anything else.
2. `entrypoint` (in a job process of its own) claims the job from the hub, which answers with
   the agent's instructions, voice and greeting and a token scoped to that one call; joins the
   room subscribed to people's audio only; and runs an `AgentSession` with OpenAI Realtime and
   the `ask_computer_agent` tool, which relays to the hub's `/api/phone` with the call token,
   and `cancel_computer_agent`. Work still running when the hub answers is followed to its end
   and its answer said then (running_turns.py).
3. The Realtime model detects and transcribes turns but never answers on its own
   (`create_response=False`): `CallFloor` applies the floor rule (floor.py) to each utterance
   and asks for a reply only when it is this agent's turn.
4. It waits at most `worker_wait_for_human` seconds for a person, greets, reports `talking`,
   transcript lines and, when the last person leaves, `ended`; then it leaves.

Job processes start from a forkserver: this module is imported there, so importing it does
nothing but define things. Settings reach the job through the pickled entrypoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from livekit import rtc
from livekit.agents import (
    NOT_GIVEN,
    Agent,
    AgentServer,
    AgentSession,
    AutoSubscribe,
    JobContext,
    JobRequest,
    llm,
    room_io,
)
from livekit.agents.voice.events import (
    CloseEvent,
    ConversationItemAddedEvent,
    UserInputTranscribedEvent,
)
from livekit.plugins import openai
from openai.types.realtime import AudioTranscription
from openai.types.realtime.realtime_audio_input_turn_detection import SemanticVad

from hivecall.cloud.floor import Floor, Turn, turn
from hivecall.cloud.hubclient import (
    CallEvent,
    Claim,
    HubClient,
    HubError,
    LineEvent,
    PhaseEvent,
)
from hivecall.cloud.livekit import AGENT_ID, KIND, missing_settings, room_name
from hivecall.cloud.running_turns import RunningTurns
from hivecall.cloud.running_turns import Session as Session
from hivecall.cloud.tools import ask_tool, cancel_tool
from hivecall.errors import ConfigError, HivecallError
from hivecall.settings import Settings

log = logging.getLogger(__name__)

# People join from browsers (standard) or phones (SIP); agents are never heard.
HUMAN_KINDS: list[rtc.ParticipantKind.ValueType] = [
    rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
    rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
]
AGENT_STATE = "lk.agent.state"  # the attribute every livekit-agents session publishes
BUSY = ("thinking", "speaking")
LEAVE_GRACE = 5.0  # seconds an empty room gets for someone to come back before the call ends
START_WITHIN = 3.0  # seconds an agent named earlier gets to start its answer
FINISH_WITHIN = 90.0  # seconds this agent waits at most for the agents named before it
HEALTH_PORT = 8081  # the worker's health endpoint (livekit-agents' default)


# -- what a job is ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobMeta:
    """The dispatch metadata the hub sends (never a secret)."""

    call_id: str
    agent_id: str
    agent_name: str


_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def parse_metadata(raw: str) -> JobMeta | None:
    """hivecall's dispatch metadata, or None for any other job."""
    try:
        data = json.loads(raw or "null")
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("hivecall") != 1:
        return None
    call_id, agent_id, name = data.get("call_id"), data.get("agent_id"), data.get("agent_name")
    if not (isinstance(call_id, str) and _ID.match(call_id)):
        return None
    if not (isinstance(agent_id, str) and _ID.match(agent_id)):
        return None
    if not isinstance(name, str) or not name.strip():
        name = agent_id
    return JobMeta(call_id=call_id, agent_id=agent_id, agent_name=name.strip()[:64])


def agent_identity(agent_id: str) -> str:
    return "agent-" + re.sub(r"[^A-Za-z0-9_-]", "_", agent_id)[:64]


def is_human(p: rtc.Participant) -> bool:
    return p.kind in HUMAN_KINDS and p.attributes.get(KIND) != "agent"


def is_agent(p: rtc.Participant) -> bool:
    return p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT or p.attributes.get(KIND) == "agent"


# -- the worker process ----------------------------------------------------------------------


class WorkerFailed(HivecallError):
    """The worker could not keep running (e.g. LiveKit refused or never answered)."""

    code = "worker_failed"


def missing(settings: Settings) -> str | None:
    """What the worker lacks to run, as one line; None when it has everything."""
    lacks = missing_settings(settings)
    if not settings.openai_api_key:
        lacks.append("an OpenAI key (OPENAI_API_KEY, or save one in the dashboard's Settings)")
    if not lacks:
        return None
    listed = lacks[0] if len(lacks) == 1 else f"{', '.join(lacks[:-1])} and {lacks[-1]}"
    return f"hivecall worker not started: cloud calls need {listed}"


async def stored_settings(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """The settings with the dashboard's saved changes (the OpenAI key, model, voice), as the
    hub sharing this home or database runs with. Without a store, or without the home's
    secret.key to open its sealed values, there is nothing to add."""
    from sqlalchemy.exc import SQLAlchemyError

    from hivecall.preferences import Preferences
    from hivecall.secretbox import KEY_FILE, SecretBox
    from hivecall.settings import pinned
    from hivecall.store import Store

    if not settings.database_url and not (settings.home / "hivecall.db").exists():
        return settings
    if not (settings.home / KEY_FILE).exists():
        log.info("no hub secret.key in this home: the dashboard's settings are not read")
        return settings
    store = Store(url=settings.resolved_database_url)
    try:
        prefs = Preferences(
            store=store, box=SecretBox.open(settings.home), base=settings, pinned=pinned(environ)
        )
        return await prefs.load()
    except SQLAlchemyError:
        log.warning("the hub's database has no saved settings yet; using the configured ones")
        return settings
    except ConfigError as e:
        if not settings.openai_api_key:
            raise ConfigError(
                f"{e.message}; set OPENAI_API_KEY for the worker, or give it the hub's home"
            ) from e
        log.warning("the dashboard's saved settings cannot be opened here; using the configured")
        return settings
    finally:
        await store.aclose()


def build_server(settings: Settings, *, port: int = HEALTH_PORT) -> AgentServer:
    """An AgentServer for hivecall's explicit dispatch (nothing is started yet)."""
    server = AgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        host=settings.host,
        port=port,
        num_idle_processes=1,
        preload_modules=[__name__],
        log_level="DEBUG" if settings.log_level.lower() == "debug" else "INFO",
    )
    server.rtc_session(
        functools.partial(entrypoint, settings=settings),
        agent_name=settings.livekit_agent_name,
        on_request=on_request,
    )
    return server


def run(settings: Settings, *, port: int = HEALTH_PORT) -> None:
    """Run the worker until SIGINT/SIGTERM, then let running calls finish (a second signal
    stops them at once)."""
    # livekit-agents logs tool arguments and transcripts at DEBUG: keep it above that.
    logging.getLogger("livekit").setLevel(logging.INFO)
    asyncio.run(serve(build_server(settings, port=port)))


async def serve(server: AgentServer, *, stop: asyncio.Event | None = None) -> None:
    """Run `server` until `stop` is set or SIGINT/SIGTERM arrives, then drain it: running calls
    may finish, new jobs go to other workers. A second signal stops the calls at once."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    hurry = asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    main = asyncio.create_task(server.run(devmode=False), name="hivecall-worker")
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({main, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if main.done() and not stop.is_set():
            if (e := main.exception()) is not None:
                raise WorkerFailed(f"the worker stopped: {e}") from e
            return
        log.info("worker stopping: running calls may finish (signal again to stop them)")
        draining = asyncio.create_task(server.drain())
        hurried = asyncio.create_task(hurry.wait())
        await asyncio.wait({draining, hurried}, return_when=asyncio.FIRST_COMPLETED)
        for task in (draining, hurried):
            task.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stopped.cancel()
        await server.aclose()
        main.cancel()
        # Once stopping, how the connection loop ended (cancelled, or still retrying) is moot.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await main


async def on_request(req: JobRequest) -> None:
    """Accept hivecall's jobs as the agent they name; reject anything else."""
    meta = parse_metadata(req.job.metadata)
    if meta is None or req.room.name != room_name(meta.call_id):
        log.warning("rejected a job that is not hivecall's", extra={"job_id": req.id})
        await req.reject()
        return
    await req.accept(
        name=meta.agent_name,
        identity=agent_identity(meta.agent_id),
        attributes={KIND: "agent", AGENT_ID: meta.agent_id},
    )


# -- one job: one agent in one call ----------------------------------------------------------


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


class CallFloor:
    """The floor rule inside one agent's AgentSession.

    Every finished utterance of a person (transcribed by the Realtime model, or typed in the
    room's chat) goes through `heard`: the rule says whether this agent answers, after which
    other agents, and who holds the floor next. Transcript lines go to the hub: people's lines
    from the first agent in the room only (so each is recorded once), this agent's own lines.
    A reply while this agent's work runs is told its latest progress (`work.brief()`).
    """

    def __init__(
        self,
        session: Session,
        hub: HubClient,
        *,
        me: str,
        present: Callable[[], Sequence[str]],
        speaker: Callable[[], str] = lambda: "",
        wait_for: Callable[[Sequence[str]], Awaitable[None]] | None = None,
        work: RunningTurns | None = None,
    ) -> None:
        self.session = session
        self.hub = hub
        self.me = me
        self.work = work
        self.floor = Floor((me,))
        self.turns: list[Turn] = []
        self._present = present
        self._speaker = speaker
        self._wait_for = wait_for
        self._outbox = Outbox(hub)
        self._tasks: set[asyncio.Task[Any]] = set()
        session.on("user_input_transcribed", self._on_transcribed)
        session.on("conversation_item_added", self._on_item)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (e := task.exception()) is not None:
            log.warning("a floor task failed", extra={"error": type(e).__name__})

    def _on_transcribed(self, ev: UserInputTranscribedEvent) -> None:
        if ev.is_final and ev.transcript.strip():
            self._spawn(self.heard(ev.transcript, speaker=self._speaker(), typed=False))

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if isinstance(item, llm.ChatMessage) and item.role == "assistant" and item.text_content:
            self._outbox.send(LineEvent("agent", item.text_content, self.me))

    async def text_input(self, session: Session, ev: room_io.TextInputEvent) -> None:
        """The room chat's callback (RoomIO): typed lines obey the floor like spoken ones."""
        if ev.participant is not None and not is_human(ev.participant):
            return
        who = (ev.participant.name or ev.participant.identity) if ev.participant else ""
        await self.heard(ev.text, speaker=who, typed=True)

    async def heard(self, text: str, *, speaker: str, typed: bool) -> bool:
        """Apply the rule to one utterance; True when this agent answers it."""
        present = tuple(self._present()) or (self.me,)
        result = turn(self.floor.with_agents(present), text)
        self.floor = result.floor
        self.turns.append(result)
        if present[0] == self.me:
            self._outbox.send(LineEvent("user", text, speaker))
        if not result.answers(self.me):
            if typed:  # heard speech is in the conversation already; typed text is not
                chat = self.session.current_agent.chat_ctx.copy()
                chat.add_message(role="user", content=text)
                await self.session.current_agent.update_chat_ctx(chat)
            return False
        if (before := result.before(self.me)) and self._wait_for is not None:
            await self._wait_for(before)
        brief = self.work.brief() if self.work is not None else None
        instructions = brief if brief else NOT_GIVEN
        if typed:
            self.session.generate_reply(user_input=text, instructions=instructions)
        else:
            self.session.generate_reply(instructions=instructions)
        return True

    async def aclose(self) -> None:
        """Stop deciding (after the session closed), and send the lines still queued."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._outbox.aclose()


class Room:
    """What one job needs from its LiveKit room: who is present, in what order, and when."""

    def __init__(self, room: rtc.Room, *, me: str, known: Sequence[str]) -> None:
        self.room = room
        self.me = me
        self.known = tuple(known)  # the call's agents as the hub listed them (dispatch order)
        self.changed = asyncio.Event()
        for event in ("participant_connected", "participant_disconnected", "disconnected"):
            room.on(event, self._poke)

    def _poke(self, *_: object) -> None:
        self.changed.set()

    def humans(self) -> list[rtc.RemoteParticipant]:
        return [p for p in self.room.remote_participants.values() if is_human(p)]

    def agents(self) -> tuple[str, ...]:
        """The agents present, in join order: the call's agents in the hub's order, then any
        others by when they joined. This agent is always one of them."""
        far = datetime.max.replace(tzinfo=UTC)
        found: dict[str, tuple[int, datetime]] = {self.me: (self._rank(self.me), far)}
        for p in self.room.remote_participants.values():
            if is_agent(p):
                name = p.name or p.identity
                found.setdefault(name, (self._rank(name), p.joined_at or far))
        return tuple(sorted(found, key=lambda n: (*found[n], n)))

    def _rank(self, name: str) -> int:
        return self.known.index(name) if name in self.known else len(self.known)

    async def until(self, condition: Callable[[], bool], within: float | None) -> bool:
        """Wait until `condition()` holds (True), or `within` seconds pass or the room is left
        (False)."""
        deadline = None if within is None else time.monotonic() + within
        while not condition():
            if not self.room.isconnected():
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True

    def subscribe_humans(self) -> None:
        """Subscribe to people's audio only: other agents' speech never reaches this one."""

        def maybe(pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
            if pub.kind == rtc.TrackKind.KIND_AUDIO and is_human(participant):
                pub.set_subscribed(True)

        for p in self.room.remote_participants.values():
            for pub in p.track_publications.values():
                maybe(pub, p)
        self.room.on("track_published", maybe)

    def follow_speakers(self, session: Session) -> None:
        """An AgentSession hears one person at a time: hear whoever speaks, and someone else
        when the person heard leaves."""
        io = session.room_io

        def hear(identity: str) -> None:
            linked = io.linked_participant
            if linked is None or linked.identity != identity:
                io.set_participant(identity)

        def on_speakers(speakers: list[rtc.Participant]) -> None:
            people = [s for s in speakers if is_human(s)]  # never this agent: it is an agent
            linked = io.linked_participant
            if not people or session.user_state == "speaking":
                return
            if linked is None or all(p.identity != linked.identity for p in people):
                hear(people[0].identity)

        def on_left(participant: rtc.RemoteParticipant) -> None:
            linked = io.linked_participant
            others = [p for p in self.humans() if p.identity != participant.identity]
            if others and (linked is None or linked.identity == participant.identity):
                hear(others[0].identity)

        self.room.on("active_speakers_changed", on_speakers)
        self.room.on("participant_disconnected", on_left)

    def speaker(self, session: Session) -> str:
        linked = session.room_io.linked_participant
        return (linked.name or linked.identity) if linked else ""

    def others_talking(self) -> bool:
        """Another agent in the room is thinking or speaking (its session's published state)."""
        return any(
            is_agent(p)
            and (p.name or p.identity) != self.me
            and p.attributes.get(AGENT_STATE) in BUSY
            for p in self.room.remote_participants.values()
        )

    async def wait_for_answers(self, names: Sequence[str]) -> None:
        """Let the agents named before this one answer first: each gets START_WITHIN seconds
        to begin and FINISH_WITHIN in all to finish."""
        for name in names:
            p = next(
                (
                    x
                    for x in self.room.remote_participants.values()
                    if is_agent(x) and (x.name or x.identity) == name
                ),
                None,
            )
            if p is None:
                continue
            deadline = time.monotonic() + FINISH_WITHIN
            start_by = time.monotonic() + START_WITHIN
            started = False
            while time.monotonic() < deadline and self.room.isconnected():
                busy = p.attributes.get(AGENT_STATE) in BUSY
                started = started or busy
                if (started and not busy) or (not started and time.monotonic() > start_by):
                    break
                await asyncio.sleep(0.1)


async def entrypoint(ctx: JobContext, *, settings: Settings) -> None:
    """One agent in one cloud call, from the claim to leaving the room."""
    meta = parse_metadata(ctx.job.metadata)
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
                PhaseEvent(
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
                PhaseEvent("failed", "agent_failed", f"{claim.agent.name}'s voice model stopped"),
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
            await _report(hub, PhaseEvent("ended"))
        return
    if closed.is_set():
        return
    await _report(hub, PhaseEvent("talking"))
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
                await _report(hub, PhaseEvent("ended"))
            return


async def _report(hub: HubClient, event: PhaseEvent) -> None:
    try:
        await hub.report([event])
    except HubError as e:
        log.warning("could not report a call phase", extra={"phase": event.phase, "code": e.code})
