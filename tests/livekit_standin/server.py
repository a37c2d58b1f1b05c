"""LiveKitStandin: the server object, its state (rooms, participants, dispatches) and test hooks.

The HTTP and websocket protocols live beside it: `twirp.py` (RoomService and
AgentDispatchService), `rtc.py` (the participants' `/rtc` signal endpoint, always refused: there
is no SFU here) and `workers.py` (the agent workers' `/agent` websocket and job dispatch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf.message import Message
from livekit.api import AccessToken, TokenVerifier, VideoGrants
from livekit.protocol import agent_dispatch, models, room
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.livekit_standin import rtc, twirp, workers
from tests.livekit_standin.records import (
    Fault,
    HandledRequest,
    JobRecord,
    RoomFullError,
    RtcAttempt,
    TwirpError,
    WorkerRecord,
    WorkerRefusal,
    new_id,
)
from tests.standins.threaded import ServerThread

# Fake credentials. The secret is 32+ bytes: PyJWT warns about shorter HMAC keys.
DEFAULT_API_KEY = "APIhivecallStandin"
DEFAULT_API_SECRET = "hivecall-standin-secret-0123456789abcdefghijkl"

# livekit-server's defaults for rooms created without settings (config.RoomConfig).
DEFAULT_EMPTY_TIMEOUT = 300
DEFAULT_DEPARTURE_TIMEOUT = 20

STANDARD = models.ParticipantInfo.Kind.STANDARD
AGENT = models.ParticipantInfo.Kind.AGENT
# Kinds livekit-server treats as "dependent": they neither count toward nor are limited by
# max_participants (rtc.Room.Join).
DEPENDENT_KINDS = (models.ParticipantInfo.Kind.AGENT, models.ParticipantInfo.Kind.EGRESS)


@dataclass
class RoomState:
    info: models.Room
    participants: dict[str, models.ParticipantInfo] = field(default_factory=dict)
    dispatches: dict[str, agent_dispatch.AgentDispatch] = field(default_factory=dict)

    def counted(self) -> int:
        return sum(1 for p in self.participants.values() if p.kind not in DEPENDENT_KINDS)

    def view(self) -> models.Room:
        info = models.Room()
        info.CopyFrom(self.info)
        info.num_participants = len(self.participants)
        return info


class LiveKitStandin:
    """A LiveKit server stand-in on 127.0.0.1: `with running_standin() as lk:` (or `start()` /
    `close()`). Speaks the real wire protocols to the unmodified `livekit-api` client and the
    `livekit-agents` AgentServer; `/rtc` (media) is recorded and refused.

    Addresses: `url` (http://127.0.0.1:PORT, for `LiveKitAPI`), `ws_url` (ws://…, for clients
    and workers), `port`, `api_key`, `api_secret`.

    Test hooks (thread-safe, callable from sync or async tests and from other threads):
      `join(room, identity, name="", kind=STANDARD, attributes=None, metadata="")`,
      `leave(room, identity)`, `add_room(name, empty_timeout=, max_participants=, metadata=)`,
      `add_dispatch(CreateAgentDispatchRequest)`, `delay(method, seconds)`,
      `fail(method, code="unavailable", msg=, times=1)`, `clear_faults()`, `reset_records()`,
      `token(identity, grants=, name=, kind=, attributes=)` (a JWT signed with the stand-in's key).
    Views and records (read them under `lock` when another thread may be writing):
      `rooms` (name -> models.Room), `participants(room)`, `dispatches` (with their jobs),
      `requests` (HandledRequest per Twirp call), `handling_seconds` (their total server time),
      `rtc_attempts`, `workers`, `worker_refusals`, `jobs` (JobRecord per job), `job_for(id)`.
    Waiting: `await wait_for(predicate, timeout=, what=)` / `wait_for_sync(...)`.

    Options: `auto_create` (CreateDispatch, joins and /rtc accept unknown rooms, as
    livekit-server's default `room.auto_create: true`), `rtc_refusal_status` (HTTP status of the
    "no SFU" refusal; 403 makes both LiveKit client SDKs give up at once and show its text),
    `assign_timeout` (seconds a worker has to answer an AvailabilityRequest, livekit-server: 10),
    `agents_join_on_assignment` (an assigned job's agent appears as a room participant, as if it
    had connected).
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        auto_create: bool = True,
        rtc_refusal_status: int = 403,
        assign_timeout: float = 10.0,
        agents_join_on_assignment: bool = False,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.verifier = TokenVerifier(api_key, api_secret)
        self.auto_create = auto_create
        self.rtc_refusal_status = rtc_refusal_status
        self.assign_timeout = assign_timeout
        self.agents_join_on_assignment = agents_join_on_assignment

        self.lock = threading.RLock()
        self._rooms: dict[str, RoomState] = {}
        self._faults: dict[str, Fault] = {}
        self.requests: list[HandledRequest] = []
        self.rtc_attempts: list[RtcAttempt] = []
        self.workers: list[WorkerRecord] = []
        self.worker_refusals: list[WorkerRefusal] = []
        self.jobs: list[JobRecord] = []
        self.agents = workers.AgentHub(self)
        self._tasks: set[asyncio.Task[Any]] = set()

        app = Starlette(
            routes=[
                Route("/twirp/{service}/{method}", self._twirp, methods=["GET", "POST"]),
                WebSocketRoute("/rtc", self._rtc),
                WebSocketRoute("/rtc/v1", self._rtc),
                Route("/rtc/validate", self._rtc_validate, methods=["GET"]),
                Route("/rtc/v1/validate", self._rtc_validate, methods=["GET"]),
                WebSocketRoute("/agent", self.agents.serve),
                Route("/", self._health, methods=["GET"]),
                Route("/{path:path}", self._unknown, methods=["GET", "POST", "PUT", "DELETE"]),
            ],
            middleware=[
                # Browsers probe /rtc/validate from the dashboard's origin.
                Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST"]),
            ],
            lifespan=self._lifespan,
        )
        self.server = ServerThread(app, name=SERVER_THREAD, lifespan="on", ws="websockets-sansio")

    # -- addresses --------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    # -- test hooks -------------------------------------------------------------------------------

    def add_room(
        self,
        name: str,
        *,
        empty_timeout: int = 0,
        max_participants: int = 0,
        metadata: str = "",
    ) -> models.Room:
        """Create (or update) a room as CreateRoom would, without a request."""
        request = room.CreateRoomRequest(
            name=name,
            empty_timeout=empty_timeout,
            max_participants=max_participants,
            metadata=metadata,
        )
        return self.create_room(request)

    def join(
        self,
        room_name: str,
        identity: str,
        name: str = "",
        kind: models.ParticipantInfo.Kind = STANDARD,
        attributes: Mapping[str, str] | None = None,
        metadata: str = "",
    ) -> models.ParticipantInfo:
        """Put a fake participant in a room, as if it had connected.

        Raises KeyError if the room does not exist and `auto_create` is off, RoomFullError when
        `max_participants` non-agent participants are already there (agents and egress are not
        counted, as in livekit-server). The same identity again replaces the earlier one.
        """
        with self.lock:
            state = self._rooms.get(room_name)
            if state is None:
                if not self.auto_create:
                    raise KeyError(f"requested room does not exist: {room_name}")
                self.create_room(room.CreateRoomRequest(name=room_name))
                state = self._rooms[room_name]
            limit = state.info.max_participants
            if (
                identity not in state.participants
                and kind not in DEPENDENT_KINDS
                and limit > 0
                and state.counted() >= limit
            ):
                raise RoomFullError("room has exceeded its max participants")
            now = time.time()
            participant = models.ParticipantInfo(
                sid=new_id("PA_"),
                identity=identity,
                name=name,
                state=models.ParticipantInfo.State.ACTIVE,
                kind=kind,
                metadata=metadata,
                attributes=dict(attributes or {}),
                joined_at=int(now),
                joined_at_ms=int(now * 1000),
                is_publisher=False,
            )
            state.participants[identity] = participant
            return _copy(participant)

    def leave(self, room_name: str, identity: str) -> bool:
        """Take a participant out of a room (as if it had disconnected)."""
        with self.lock:
            state = self._rooms.get(room_name)
            return state is not None and state.participants.pop(identity, None) is not None

    def delay(self, method: str, seconds: float) -> None:
        """Make every later `method` call (e.g. "CreateRoom") take `seconds` longer."""
        with self.lock:
            self._faults.setdefault(method, Fault()).delay = seconds

    def fail(
        self,
        method: str,
        code: str = "unavailable",
        msg: str = "injected failure",
        *,
        times: int | None = 1,
    ) -> None:
        """Answer the next `times` calls of `method` (every call if None) with a Twirp error.

        A token that does not verify is still refused first (401); grants are checked after.
        """
        with self.lock:
            fault = self._faults.setdefault(method, Fault())
            fault.code, fault.msg, fault.times = code, msg, times

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def reset_records(self) -> None:
        """Forget handled requests and /rtc attempts (e.g. after a benchmark's warm-up)."""
        with self.lock:
            self.requests.clear()
            self.rtc_attempts.clear()

    def token(
        self,
        identity: str = "",
        *,
        grants: VideoGrants | None = None,
        name: str = "",
        kind: str = "",
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        """A JWT signed with the stand-in's key (for raw requests in tests)."""
        token = AccessToken(self.api_key, self.api_secret).with_identity(identity)
        if grants is not None:
            token = token.with_grants(grants)
        if name:
            token = token.with_name(name)
        if kind:
            token = token.with_kind(kind)  # type: ignore[arg-type]
        if attributes:
            token = token.with_attributes(dict(attributes))
        return token.to_jwt()

    # -- views ------------------------------------------------------------------------------------

    @property
    def rooms(self) -> dict[str, models.Room]:
        with self.lock:
            return {name: state.view() for name, state in self._rooms.items()}

    def participants(self, room_name: str) -> list[models.ParticipantInfo]:
        with self.lock:
            state = self._rooms.get(room_name)
            return [] if state is None else [_copy(p) for p in state.participants.values()]

    @property
    def dispatches(self) -> list[agent_dispatch.AgentDispatch]:
        with self.lock:
            return [
                self.dispatch_view(d)
                for state in self._rooms.values()
                for d in state.dispatches.values()
            ]

    @property
    def handling_seconds(self) -> float:
        """Total server-side time spent on the recorded Twirp requests."""
        with self.lock:
            return sum(r.seconds for r in self.requests)

    def job_for(self, dispatch_id: str) -> JobRecord | None:
        with self.lock:
            return next((j for j in reversed(self.jobs) if j.dispatch_id == dispatch_id), None)

    async def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition"
    ) -> Any:
        """Poll `predicate` until it returns something truthy; return that."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"LiveKit stand-in: timed out waiting for {what}")
            await asyncio.sleep(0.02)

    def wait_for_sync(
        self, predicate: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"LiveKit stand-in: timed out waiting for {what}")
            time.sleep(0.02)

    # -- state (called with or without the lock; it is re-entrant) ---------------------------------

    def room_state(self, name: str) -> RoomState | None:
        return self._rooms.get(name)

    def create_room(self, request: room.CreateRoomRequest) -> models.Room:
        """livekit-server's CreateRoom: create, or update the non-zero settings of, a room."""
        with self.lock:
            state = self._rooms.get(request.name)
            created = state is None
            if state is None:
                now = time.time()
                state = RoomState(
                    models.Room(
                        sid=new_id("RM_"),
                        name=request.name,
                        creation_time=int(now),
                        creation_time_ms=int(now * 1000),
                        empty_timeout=DEFAULT_EMPTY_TIMEOUT,
                        departure_timeout=DEFAULT_DEPARTURE_TIMEOUT,
                    )
                )
                self._rooms[request.name] = state
            if request.empty_timeout > 0:
                state.info.empty_timeout = request.empty_timeout
            if request.departure_timeout > 0:
                state.info.departure_timeout = request.departure_timeout
            if request.max_participants > 0:
                state.info.max_participants = request.max_participants
            if request.metadata:
                state.info.metadata = request.metadata
            if created:
                for spec in request.agents:
                    self.add_dispatch(
                        agent_dispatch.CreateAgentDispatchRequest(
                            agent_name=spec.agent_name,
                            room=request.name,
                            metadata=spec.metadata,
                            attributes=dict(spec.attributes),
                        )
                    )
            return state.view()

    def delete_room(self, name: str) -> None:
        with self.lock:
            state = self._rooms.pop(name, None)
            if state is None:
                raise TwirpError("not_found", "requested room does not exist")
            jobs = [j for j in self.jobs if j.room == name]
        for job in jobs:
            self.agents.terminate(job)

    def add_dispatch(
        self, request: agent_dispatch.CreateAgentDispatchRequest
    ) -> agent_dispatch.AgentDispatch:
        with self.lock:
            state = self._rooms.get(request.room)
            if state is None:
                if not self.auto_create:
                    raise TwirpError("not_found", "requested room does not exist")
                self.create_room(room.CreateRoomRequest(name=request.room))
                state = self._rooms[request.room]
            dispatch = agent_dispatch.AgentDispatch(
                id=new_id("AD_"),
                agent_name=request.agent_name,
                room=request.room,
                metadata=request.metadata,
                restart_policy=request.restart_policy,
                deployment=request.deployment,
                attributes=dict(request.attributes),
                state=agent_dispatch.AgentDispatchState(created_at=time.time_ns()),
            )
            state.dispatches[dispatch.id] = dispatch
            self.agents.launch(dispatch, state.view())
            return self.dispatch_view(dispatch)

    def delete_dispatch(self, room_name: str, dispatch_id: str) -> agent_dispatch.AgentDispatch:
        with self.lock:
            state = self._rooms.get(room_name)
            if state is None:
                raise TwirpError("not_found", "requested room does not exist")
            dispatch = state.dispatches.pop(dispatch_id, None)
            if dispatch is None:
                raise TwirpError("not_found", "dispatch ID not found")
            view = self.dispatch_view(dispatch)
            view.state.deleted_at = time.time_ns()
            jobs = [j for j in self.jobs if j.dispatch_id == dispatch_id]
        for job in jobs:
            self.agents.terminate(job)
        return view

    def dispatch_view(self, dispatch: agent_dispatch.AgentDispatch) -> agent_dispatch.AgentDispatch:
        """A copy of a dispatch with the states of its jobs (as ListDispatch shows them)."""
        with self.lock:
            view = _copy(dispatch)
            for record in self.jobs:
                if record.dispatch_id == dispatch.id and not record.dropped:
                    job = view.state.jobs.add()
                    job.CopyFrom(record.job)
                    job.state.status = record.status
                    job.state.error = record.error
                    job.state.worker_id = record.worker_id
                    if record.availability is not None:
                        job.state.participant_identity = record.availability.participant_identity
            return view

    def fault_for(self, method: str) -> Fault | None:
        with self.lock:
            return self._faults.get(method)

    # -- life cycle -------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine on the server's loop (from any thread), tracked until shutdown."""
        loop = self.server.loop
        if loop is None:
            coro.close()
            return

        def start() -> None:
            task = loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            start()
        else:
            loop.call_soon_threadsafe(start)

    def start(self) -> LiveKitStandin:
        _quiet_denials()
        self.server.start()
        return self

    def close(self) -> None:
        self.server.close()

    def __enter__(self) -> LiveKitStandin:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        yield
        await self.agents.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- routes -----------------------------------------------------------------------------------

    async def _twirp(self, request: Request) -> Response:
        return await twirp.handle(self, request)

    async def _rtc(self, websocket: WebSocket) -> None:
        await rtc.serve(self, websocket)

    async def _rtc_validate(self, request: Request) -> Response:
        return await rtc.validate(self, request)

    async def _health(self, _request: Request) -> Response:
        return PlainTextResponse("OK")

    async def _unknown(self, request: Request) -> Response:
        return PlainTextResponse("404 page not found", status_code=404)


SERVER_THREAD = "livekit-standin"
M = TypeVar("M", bound=Message)


class _DenialNoise(logging.Filter):
    """uvicorn's websockets-sansio protocol logs "ASGI callable returned without completing
    handshake." after every denial response (it never marks the handshake done). Refusing is what
    the stand-in's /rtc and /agent routes are for, so drop that line, from the stand-in's thread
    only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            threading.current_thread().name == SERVER_THREAD
            and record.getMessage() == "ASGI callable returned without completing handshake."
        )


def _quiet_denials() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DenialNoise) for f in logger.filters):
        logger.addFilter(_DenialNoise())


def _copy(message: M) -> M:
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


@contextlib.contextmanager
def running_standin(**options: Any) -> Iterator[LiveKitStandin]:
    """A started LiveKit stand-in, closed afterwards. Options: see LiveKitStandin."""
    with LiveKitStandin(**options) as standin:
        yield standin
