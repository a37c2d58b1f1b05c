"""What the LiveKit stand-in records: handled API requests, /rtc attempts, workers and jobs."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from livekit.api import VideoGrants
from livekit.api.access_token import Claims
from livekit.protocol import agent, models

# Twirp error codes and the HTTP status each one is sent with (the Twirp spec's table).
TWIRP_STATUS: dict[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}


class TwirpError(Exception):
    """A Twirp error: answered as `{"code", "msg"}` JSON with the code's HTTP status."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg

    @property
    def status(self) -> int:
        return TWIRP_STATUS.get(self.code, 500)


class RoomFullError(Exception):
    """`LiveKitStandin.join` into a room that already has `max_participants` participants."""


@dataclass
class HandledRequest:
    """One Twirp request (`POST /twirp/livekit.<service>/<method>`) and how it was answered."""

    service: str  # "RoomService" | "AgentDispatchService" | whatever the path named
    method: str  # "CreateRoom", "CreateDispatch", ...
    identity: str  # the token's `sub` ("" for the server SDK's API tokens)
    grants: VideoGrants | None  # the token's video grants (None: no or invalid token)
    request: Message | None  # the decoded protobuf request (None if it could not be decoded)
    status: int = 0  # HTTP status answered
    code: str = ""  # Twirp error code ("" on success)
    msg: str = ""  # Twirp error message
    seconds: float = 0.0  # server-side handling time, injected delays included
    at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class RtcAttempt:
    """A participant's signal connection (`/rtc`, `/rtc/v1` websocket) or its `validate` probe.

    The stand-in has no SFU: every websocket attempt is refused (`status` >= 400) after it is
    recorded; `reason` is the text the refusal carried.
    """

    path: str  # "/rtc", "/rtc/v1", "/rtc/validate", "/rtc/v1/validate"
    websocket: bool  # False for the HTTP validate probe
    room: str
    identity: str
    name: str
    kind: str  # token `kind` ("", "standard", "agent", ...)
    grants: VideoGrants | None  # None when the token did not verify
    attributes: dict[str, str]
    metadata: str
    query: dict[str, str]  # the query string without access_token
    status: int
    reason: str
    token_valid: bool
    at: float = field(default_factory=time.time)


@dataclass
class WorkerRefusal:
    """A worker websocket (`/agent`) refused before registration (bad token, no agent grant)."""

    status: int
    reason: str
    grants: VideoGrants | None
    at: float = field(default_factory=time.time)


@dataclass
class WorkerRecord:
    """An agent worker registered over `/agent`."""

    id: str
    register: agent.RegisterWorkerRequest
    claims: Claims
    protocol: int
    status: agent.WorkerStatus = agent.WorkerStatus.WS_AVAILABLE
    load: float = 0.0
    job_count: int = 0
    connected: bool = True
    received: list[agent.WorkerMessage] = field(default_factory=list)
    registered_at: float = field(default_factory=time.time)
    closed_at: float | None = None

    @property
    def agent_name(self) -> str:
        return self.register.agent_name

    @property
    def job_type(self) -> int:
        return self.register.type

    @property
    def permissions(self) -> models.ParticipantPermission:
        return self.register.allowed_permissions


@dataclass
class JobRecord:
    """A job the stand-in launched for a dispatch, from availability request to the end."""

    job: agent.Job  # as sent in the AvailabilityRequest
    worker_id: str = ""  # the worker that took it ("" while unassigned)
    tried: list[str] = field(default_factory=list)  # worker ids asked, in order
    availability: agent.AvailabilityResponse | None = None  # the accepting answer
    refusals: list[agent.AvailabilityResponse] = field(default_factory=list)
    assignment: agent.JobAssignment | None = None
    token_claims: Claims | None = None  # the verified claims of `assignment.token`
    status: agent.JobStatus = agent.JobStatus.JS_PENDING
    error: str = ""
    updates: list[agent.UpdateJobStatus] = field(default_factory=list)
    terminations: int = 0  # JobTermination messages sent to the worker
    requested_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    assigned_at: float | None = None
    dropped: bool = False  # no worker took it: not listed, never offered again

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def dispatch_id(self) -> str:
        return self.job.dispatch_id

    @property
    def room(self) -> str:
        return self.job.room.name

    @property
    def agent_name(self) -> str:
        return self.job.agent_name

    @property
    def metadata(self) -> str:
        return self.job.metadata

    @property
    def status_name(self) -> str:
        return agent.JobStatus.Name(self.status)


@dataclass
class Fault:
    """An injected delay and/or failure for one Twirp method."""

    delay: float = 0.0
    code: str | None = None  # Twirp code to fail with (None: no failure)
    msg: str = "injected failure"
    times: int | None = None  # failures left (None: every request)

    def take_failure(self) -> TwirpError | None:
        if self.code is None:
            return None
        if self.times is not None:
            if self.times <= 0:
                return None
            self.times -= 1
        return TwirpError(self.code, self.msg)


def new_id(prefix: str) -> str:
    """A LiveKit-style id: prefix + 12 random characters (RM_, PA_, AD_, AJ_, AW_)."""
    return prefix + secrets.token_hex(6)


def describe(value: Any) -> str:
    """A short text for an exception, for refusal reasons."""
    text = str(value).strip()
    return f"{type(value).__name__}: {text}" if text else type(value).__name__
