"""How `hivecall worker` talks to the hub: claim a dispatched job, relay tool turns, report.

The worker proves itself with a short LiveKit token signed with the LiveKit key and secret it
already holds (identity "hivecall-worker", the `agent` grant, 60 seconds) and trades it at
`POST /api/cloud/claim` for what the job needs: the agent's instructions, voice and greeting, and
a bearer token scoped to that one call. Everything after uses that token: `/api/phone` for
`ask_computer_agent` turns and `/api/calls/{id}/events` for phases and transcript lines.

Every hub error arrives as `{"error": {"code", "message"}}` and is raised as `HubError`. Tokens
and keys are never logged or put in an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any, Literal

import httpx
from livekit import api
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hivecall.cloud.livekit import WORKER_IDENTITY
from hivecall.errors import HivecallError
from hivecall.settings import Settings

log = logging.getLogger(__name__)

CLAIM_TTL = timedelta(seconds=60)
TIMEOUT = 10.0
# A tool turn runs the agent's runtime; the hub gives it up to turn_timeout to answer.
ASK_MARGIN = 30.0
MAX_EVENTS = 50  # per report request (the hub's limit)
MAX_LINE_CHARS = 4000


class HubError(HivecallError):
    """The hub refused a request, or could not be reached (code "hub_unreachable")."""

    code = "hub_error"
    status = 502

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message, code=code, status=status)
        self.retryable = self.status >= 500 or self.status == 429


@dataclass(frozen=True)
class ClaimedAgent:
    id: str
    name: str
    voice: str
    instructions: str
    greeting: str


@dataclass(frozen=True)
class Claim:
    """What a claimed job knows: its call, its agent, the call's agents and its call token."""

    token: str = field(repr=False)
    call_id: str
    room: str
    agent: ClaimedAgent
    agents: tuple[str, ...]


@dataclass(frozen=True)
class PhaseEvent:
    phase: Literal["talking", "ended", "failed"]
    error_code: str = ""
    error_message: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "phase", "phase": self.phase}
        if self.error_code:
            out["error"] = {"code": self.error_code, "message": self.error_message[:500]}
        return out


@dataclass(frozen=True)
class LineEvent:
    """A finished transcript line: what a person said, or what an agent said."""

    kind: Literal["user", "agent"]
    text: str
    speaker: str = ""

    def as_dict(self) -> dict[str, Any]:
        text = self.text.strip()
        if len(text) > MAX_LINE_CHARS:
            text = text[: MAX_LINE_CHARS - 1] + "…"
        out: dict[str, Any] = {"type": self.kind, "text": text}
        if self.speaker:
            out["speaker"] = self.speaker[:200]
        return out


CallEvent = PhaseEvent | LineEvent


class _AgentOut(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    name: str
    voice: str = ""
    instructions: str = ""
    greeting: str = ""


class _CallOut(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    room: str = ""


class _ClaimOut(BaseModel):
    model_config = ConfigDict(extra="ignore")
    token: str = Field(min_length=1)
    call: _CallOut
    agent: _AgentOut
    agents: list[str] = Field(default_factory=list)


class HubClient:
    """One per job. `claim()` first; `ask()` and `report()` then act for that call only."""

    def __init__(
        self,
        *,
        base_url: str,
        livekit_api_key: str,
        livekit_api_secret: str,
        timeout: float = TIMEOUT,
        ask_timeout: float = 600.0 + ASK_MARGIN,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = livekit_api_key
        self._secret = livekit_api_secret
        self._ask_timeout = ask_timeout
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, follow_redirects=False
        )
        self._claim: Claim | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> HubClient:
        return cls(
            base_url=settings.worker_hub_url or settings.resolved_public_url,
            livekit_api_key=settings.livekit_api_key,
            livekit_api_secret=settings.livekit_api_secret,
            ask_timeout=settings.turn_timeout + ASK_MARGIN,
            transport=transport,
        )

    @property
    def claimed(self) -> Claim | None:
        return self._claim

    def use(self, claim: Claim) -> None:
        """Act for a claim made elsewhere (tests; a job that already claimed)."""
        self._claim = claim

    # -- the claim -----------------------------------------------------------------------------

    def worker_jwt(self) -> str:
        """The short LiveKit token the hub checks: it proves the worker holds the LiveKit
        secret, without sending it."""
        return (
            api.AccessToken(self._key, self._secret)
            .with_identity(WORKER_IDENTITY)
            .with_grants(api.VideoGrants(agent=True))
            .with_ttl(CLAIM_TTL)
            .to_jwt()
        )

    async def claim(self, call_id: str, agent_id: str, job_id: str) -> Claim:
        data = await self._post(
            "/api/cloud/claim",
            {"call_id": call_id, "agent_id": agent_id, "job_id": job_id},
            bearer=self.worker_jwt(),
        )
        try:
            out = _ClaimOut.model_validate(data)
        except ValidationError as e:
            raise HubError(
                "the hub's answer to a claim is not what this worker expects (versions differ?)",
                code="hub_bad_answer",
            ) from e
        self._claim = Claim(
            token=out.token,
            call_id=out.call.id,
            room=out.call.room,
            agent=ClaimedAgent(
                id=out.agent.id,
                name=out.agent.name,
                voice=out.agent.voice,
                instructions=out.agent.instructions,
                greeting=out.agent.greeting,
            ),
            agents=tuple(out.agents),
        )
        log.info("claimed a cloud call job", extra={"call_id": out.call.id, "job_id": job_id})
        return self._claim

    # -- with the call's token -----------------------------------------------------------------

    def _need_claim(self) -> Claim:
        if self._claim is None:
            raise HubError("the job has not been claimed yet", code="not_claimed", status=409)
        return self._claim

    async def ask(self, message: str) -> str:
        """One `ask_computer_agent` turn. Always returns something to say: the agent's answer,
        or a short sentence saying why there is none."""
        claim = self._need_claim()
        try:
            data = await self._post(
                "/api/phone",
                {"agent_id": claim.agent.id, "message": message, "call_id": claim.call_id},
                bearer=claim.token,
                seconds=self._ask_timeout,
            )
        except HubError as e:
            log.warning("a tool turn failed", extra={"call_id": claim.call_id, "code": e.code})
            return f"I could not reach the computer agent: {e.message}."
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip():
            return "The computer agent gave no answer."
        return text

    async def report(self, events: Sequence[CallEvent]) -> None:
        """Send phases and transcript lines to the call, in order (empty lines are dropped)."""
        claim = self._need_claim()
        wire = [
            e.as_dict() for e in events if not (isinstance(e, LineEvent) and not e.text.strip())
        ]
        for start in range(0, len(wire), MAX_EVENTS):
            await self._post(
                f"/api/calls/{claim.call_id}/events",
                {"events": wire[start : start + MAX_EVENTS]},
                bearer=claim.token,
            )

    # -- plumbing ------------------------------------------------------------------------------

    async def _post(
        self, path: str, body: dict[str, Any], *, bearer: str, seconds: float | None = None
    ) -> Any:
        headers = {"authorization": f"Bearer {bearer}"}
        try:
            if seconds is None:
                response = await self._http.post(path, json=body, headers=headers)
            else:
                response = await self._http.post(path, json=body, headers=headers, timeout=seconds)
        except httpx.TimeoutException as e:
            raise HubError(
                f"the hub at {self.base_url} did not answer in time", code="hub_timeout"
            ) from e
        except httpx.HTTPError as e:
            raise HubError(
                f"cannot reach the hub at {self.base_url}", code="hub_unreachable"
            ) from e
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success:
            return data
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            raise HubError(
                str(error.get("message") or error["code"]),
                code=error["code"],
                status=response.status_code,
            )
        raise HubError(f"the hub answered HTTP {response.status_code}", status=response.status_code)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        await self.aclose()
