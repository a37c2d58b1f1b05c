"""The agent workers' websocket (`/agent`) and job dispatch, as livekit-server runs them.

Protocol (binary protobuf frames; `agent.WorkerMessage` in, `agent.ServerMessage` out):
- The upgrade needs `Authorization: Bearer <jwt>` (or `?access_token=`) that verifies and has the
  `agent` video grant; otherwise 401 before the upgrade ("no permissions to access the room").
- The worker's first message must be `register` (within 10 s); the answer is
  `RegisterWorkerResponse(worker_id="AW_…", server_info)`. Pings get pongs, `update_worker`
  updates status/load, `update_job` updates the job's status.
- A dispatch (CreateDispatch, or a CreateRoom with `agents`) launches a JT_ROOM job for the
  registered workers with that agent_name: `AvailabilityRequest(job)`; on `available` the worker
  gets `JobAssignment(job, url=ws_url, token)` where the token is minted as livekit-server's
  BuildAgentToken does: identity/name/metadata/attributes from the AvailabilityResponse plus
  `lk.agent_name`, kind agent, roomJoin for the room, agent grant, the worker's permissions,
  TTL 1 h. A refusal tries the next worker; `terminate` ends the job. A job no registered worker
  takes (none with that agent_name, or all refused) is dropped, as livekit-server v1.13.5 drops
  it: the dispatch stays, with no job, and a worker that registers later never hears of it
  (only a new dispatch reaches it). ListDispatch does not show dropped jobs.
- Deleting the room or the dispatch sends `JobTermination` for its assigned jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from typing import TYPE_CHECKING

from livekit.api import AccessToken, VideoGrants
from livekit.api.access_token import Claims
from livekit.protocol import agent, agent_dispatch, models
from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.livekit_standin.records import JobRecord, WorkerRecord, WorkerRefusal, describe, new_id

if TYPE_CHECKING:
    from tests.livekit_standin.server import LiveKitStandin

REGISTER_TIMEOUT = 10.0
AGENT_NAME_ATTRIBUTE = "lk.agent_name"
SERVER_INFO = models.ServerInfo(
    edition=models.ServerInfo.Edition.Standard,
    version="1.9.0-hivecall-standin",
    protocol=16,
    agent_protocol=1,
    region="local",
    node_id="ND_standin",
)
ENDED = (agent.JobStatus.JS_SUCCESS, agent.JobStatus.JS_FAILED)


class WorkerSession:
    """One registered worker's websocket."""

    def __init__(self, record: WorkerRecord, websocket: WebSocket) -> None:
        self.record = record
        self.websocket = websocket
        self.pending: dict[str, asyncio.Future[agent.AvailabilityResponse | None]] = {}
        self.ready = False  # registered and answered: jobs may be offered
        self.send_lock = asyncio.Lock()

    @property
    def id(self) -> str:
        return self.record.id

    async def send(self, message: agent.ServerMessage) -> None:
        async with self.send_lock:
            await self.websocket.send_bytes(message.SerializeToString())

    def drop_pending(self) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_result(None)
        self.pending.clear()


async def _receive(websocket: WebSocket) -> agent.WorkerMessage | None:
    """The next protobuf frame (None for a text frame, which is ignored)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    data = message.get("bytes")
    if data is None:
        return None
    return agent.WorkerMessage.FromString(data)


class AgentHub:
    def __init__(self, lk: LiveKitStandin) -> None:
        self.lk = lk
        self.sessions: dict[str, WorkerSession] = {}

    # -- connections ------------------------------------------------------------------------------

    def _refuse(self, status: int, reason: str, claims: Claims | None) -> PlainTextResponse:
        with self.lk.lock:
            self.lk.worker_refusals.append(
                WorkerRefusal(status, reason, None if claims is None else claims.video)
            )
        return PlainTextResponse(reason, status_code=status)

    async def serve(self, websocket: WebSocket) -> None:
        header = websocket.headers.get("authorization", "")
        token = (
            header.removeprefix("Bearer ")
            if header.startswith("Bearer ")
            else websocket.query_params.get("access_token", "")
        )
        claims: Claims | None = None
        if token:
            try:
                claims = self.lk.verifier.verify(token)
            except Exception as e:
                denial = self._refuse(401, f"invalid token: {describe(e)}", None)
                await websocket.send_denial_response(denial)
                return
        if claims is None or claims.video is None or not claims.video.agent:
            denial = self._refuse(401, "no permissions to access the room", claims)
            await websocket.send_denial_response(denial)
            return
        await websocket.accept()
        try:
            session = await self._handshake(websocket, claims)
        except (WebSocketDisconnect, TimeoutError, ValueError):
            with contextlib.suppress(Exception):
                await websocket.close()
            return
        try:
            while True:
                message = await _receive(websocket)
                if message is not None:
                    await self._handle(session, message)
        except WebSocketDisconnect:
            pass
        finally:
            with self.lk.lock:
                session.record.connected = False
                session.record.closed_at = time.time()
                self.sessions.pop(session.id, None)
            session.drop_pending()

    async def _handshake(self, websocket: WebSocket, claims: Claims) -> WorkerSession:
        async with asyncio.timeout(REGISTER_TIMEOUT):
            while True:
                message = await _receive(websocket)
                if message is None:
                    continue
                if message.WhichOneof("message") == "ping":
                    await websocket.send_bytes(_pong(message.ping).SerializeToString())
                    continue
                if message.WhichOneof("message") == "register":
                    break
        register = message.register
        if register.type not in agent.JobType.values():
            raise ValueError("unknown job type")
        try:
            protocol = int(websocket.query_params.get("protocol", "1"))
        except ValueError:
            protocol = 1
        record = WorkerRecord(id=new_id("AW_"), register=register, claims=claims, protocol=protocol)
        record.received.append(message)
        session = WorkerSession(record, websocket)
        with self.lk.lock:
            self.lk.workers.append(record)
            self.sessions[record.id] = session
        answer = agent.ServerMessage(
            register=agent.RegisterWorkerResponse(worker_id=record.id, server_info=SERVER_INFO)
        )
        # Ready from the moment it can know it is registered (a dispatch it makes next must
        # reach it), yet its first message is the RegisterWorkerResponse: a job offered
        # meanwhile waits for the send lock. Only jobs dispatched from now on are offered.
        async with session.send_lock:
            with self.lk.lock:
                session.ready = True
            await websocket.send_bytes(answer.SerializeToString())
        return session

    async def _handle(self, session: WorkerSession, message: agent.WorkerMessage) -> None:
        with self.lk.lock:
            session.record.received.append(message)
        which = message.WhichOneof("message")
        if which == "ping":
            await session.send(_pong(message.ping))
        elif which == "availability":
            future = session.pending.pop(message.availability.job_id, None)
            if future is not None and not future.done():
                future.set_result(message.availability)
        elif which == "update_worker":
            update = message.update_worker
            with self.lk.lock:
                if update.HasField("status"):
                    session.record.status = update.status
                session.record.load = update.load
                session.record.job_count = update.job_count
        elif which == "update_job":
            job_update = message.update_job
            with self.lk.lock:
                job = next((j for j in self.lk.jobs if j.id == job_update.job_id), None)
                if job is not None:
                    job.updates.append(job_update)
                    job.status = job_update.status
                    job.error = job_update.error
        # migrate_job and simulate_job are recorded and otherwise ignored (as on OSS servers).

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            session.drop_pending()

    # -- jobs -------------------------------------------------------------------------------------

    @staticmethod
    def _fits(worker: WorkerRecord, job: JobRecord) -> bool:
        return (
            worker.connected
            and worker.agent_name == job.agent_name
            and worker.job_type == agent.JobType.JT_ROOM
        )

    def launch(self, dispatch: agent_dispatch.AgentDispatch, room: models.Room) -> JobRecord:
        """Start a job for a new dispatch (called with the stand-in's lock held)."""
        job = agent.Job(
            id=new_id("AJ_"),
            dispatch_id=dispatch.id,
            type=agent.JobType.JT_ROOM,
            room=room,
            metadata=dispatch.metadata,
            agent_name=dispatch.agent_name,
            attributes=dict(dispatch.attributes),
            state=agent.JobState(status=agent.JobStatus.JS_PENDING),
        )
        record = JobRecord(job=job)
        self.lk.jobs.append(record)
        self.lk.spawn(self._run(record))
        return record

    def _pick(self, record: JobRecord) -> WorkerSession | None:
        with self.lk.lock:
            candidates = [
                s
                for s in self.sessions.values()
                if s.ready
                and self._fits(s.record, record)
                and s.record.status == agent.WorkerStatus.WS_AVAILABLE
                and s.id not in record.tried
            ]
            # livekit-server picks at random weighted by free capacity; take the least loaded.
            return min(candidates, key=lambda s: s.record.load, default=None)

    async def _run(self, record: JobRecord) -> None:
        loop = asyncio.get_running_loop()
        while True:
            session = self._pick(record)
            if session is None:
                with self.lk.lock:
                    record.error = "no worker available"
                    record.status = agent.JobStatus.JS_FAILED
                    record.dropped = True
                return
            now = time.time_ns()
            job = agent.Job()
            job.CopyFrom(record.job)
            job.state.CopyFrom(
                agent.JobState(
                    status=agent.JobStatus.JS_RUNNING,
                    worker_id=session.id,
                    started_at=now,
                    updated_at=now,
                )
            )
            future: asyncio.Future[agent.AvailabilityResponse | None] = loop.create_future()
            with self.lk.lock:
                record.tried.append(session.id)
                record.job = job
                session.pending[job.id] = future
            try:
                await session.send(
                    agent.ServerMessage(availability=agent.AvailabilityRequest(job=job))
                )
                answer = await asyncio.wait_for(future, self.lk.assign_timeout)
            except TimeoutError:
                session.pending.pop(job.id, None)
                with self.lk.lock:
                    record.status = agent.JobStatus.JS_FAILED
                    record.error = "agent worker availability timeout"
                return
            except Exception:
                session.pending.pop(job.id, None)
                continue  # the worker went away: try another
            if answer is None:
                continue
            record.answered_at = time.time()
            if answer.terminate:
                with self.lk.lock:
                    record.status = agent.JobStatus.JS_SUCCESS
                return
            if not answer.available:
                with self.lk.lock:
                    record.refusals.append(answer)
                continue
            await self._assign(record, session, answer)
            return

    async def _assign(
        self, record: JobRecord, session: WorkerSession, answer: agent.AvailabilityResponse
    ) -> None:
        attributes = dict(answer.participant_attributes)
        attributes[AGENT_NAME_ATTRIBUTE] = session.record.agent_name
        permissions = session.record.permissions
        try:
            token = (
                AccessToken(self.lk.api_key, self.lk.api_secret)
                .with_identity(answer.participant_identity)
                .with_name(answer.participant_name)
                .with_kind("agent")
                .with_metadata(answer.participant_metadata)
                .with_attributes(attributes)
                .with_ttl(datetime.timedelta(hours=1))
                .with_grants(
                    VideoGrants(
                        room_join=True,
                        agent=True,
                        room=record.room,
                        can_subscribe=permissions.can_subscribe,
                        can_publish=permissions.can_publish,
                        can_publish_data=permissions.can_publish_data,
                        hidden=permissions.hidden,
                        can_update_own_metadata=permissions.can_update_metadata,
                        can_subscribe_metrics=permissions.can_subscribe_metrics,
                    )
                )
                .to_jwt()
            )
        except ValueError as e:  # no identity: AccessToken refuses a roomJoin token without one
            with self.lk.lock:
                record.availability = answer
                record.status = agent.JobStatus.JS_FAILED
                record.error = f"failed to build agent token: {e}"
            return
        assignment = agent.JobAssignment(job=record.job, url=self.lk.ws_url, token=token)
        with self.lk.lock:
            record.availability = answer
            record.worker_id = session.id
            record.assignment = assignment
            record.token_claims = self.lk.verifier.verify(token)
            record.status = agent.JobStatus.JS_RUNNING
            record.error = ""
            record.assigned_at = time.time()
            if self.lk.agents_join_on_assignment:
                with contextlib.suppress(KeyError):
                    self.lk.join(
                        record.room,
                        answer.participant_identity,
                        answer.participant_name,
                        kind=models.ParticipantInfo.Kind.AGENT,
                        attributes=attributes,
                        metadata=answer.participant_metadata,
                    )
        await session.send(agent.ServerMessage(assignment=assignment))

    def terminate(self, record: JobRecord) -> None:
        """Ask the job's worker to end it (room or dispatch deleted)."""
        self.lk.spawn(self._terminate(record))

    async def _terminate(self, record: JobRecord) -> None:
        with self.lk.lock:
            session = self.sessions.get(record.worker_id)
            if session is None or record.assignment is None or record.status in ENDED:
                return
            record.terminations += 1
            record.status = agent.JobStatus.JS_SUCCESS
        with contextlib.suppress(Exception):
            await session.send(
                agent.ServerMessage(termination=agent.JobTermination(job_id=record.id))
            )


def _pong(ping: agent.WorkerPing) -> agent.ServerMessage:
    return agent.ServerMessage(
        pong=agent.WorkerPong(last_timestamp=ping.timestamp, timestamp=int(time.time() * 1000))
    )
