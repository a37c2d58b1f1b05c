"""How `hivecall worker` talks to the hub: claim a dispatched job, relay tool turns, report.

The worker proves itself with a short LiveKit token signed with the LiveKit key and secret it
already holds (identity "hivecall-worker", the `agent` grant, 60 seconds) and trades it at
`POST /api/cloud/claim` for what the job needs: the agent's instructions, voice and greeting, and
a bearer token scoped to that one call. Everything after uses that token: `/api/phone` for
`ask_computer_agent` turns, `/api/turns/{id}/events` and `/cancel` to follow and stop a turn
that is still running when the hub answered, and `/api/calls/{id}/events` for phases and
transcript lines.

Every hub error arrives as `{"error": {"code", "message"}}` and is raised as `HubError`. Tokens
and keys are never logged or put in an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any

import httpx
from livekit import api
from pydantic import ValidationError

from hivecall.calls.cloud.wire import ID, WORKER_IDENTITY, ClaimIn, ClaimOut
from hivecall.calls.events import MAX_EVENTS, CallEvent, LineEvent, to_wire
from hivecall.cloud.sse import sse_events
from hivecall.errors import HivecallError
from hivecall.settings import Settings
from hivecall.turns.handle import TurnEvent

log = logging.getLogger(__name__)

CLAIM_TTL = timedelta(seconds=60)
TIMEOUT = 10.0
# A tool turn runs the agent's runtime; the hub gives it up to turn_timeout to answer.
ASK_MARGIN = 30.0
# Following a turn: the hub sends a keep-alive comment every 15 s, so a stream silent for longer
# than FOLLOW_IDLE is dead; it is reopened (and replayed) after a pause growing to RETRY_MAX_S,
# until the hub has not answered for FOLLOW_GIVE_UP seconds (long enough for a hub restart).
FOLLOW_IDLE = 45.0
FOLLOW_GIVE_UP = 120.0
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 5.0


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
class Answer:
    """What `/api/phone` answered: the text to speak and, for work still going on when the hub
    stopped waiting (status "running"), the turn to follow."""

    text: str
    turn_id: str = ""
    status: str = ""  # "done", "failed", "running", ...; "" when the hub said nothing usable

    @property
    def running(self) -> bool:
        return self.status == "running" and bool(self.turn_id)


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
        follow_idle: float = FOLLOW_IDLE,
        follow_give_up: float = FOLLOW_GIVE_UP,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = livekit_api_key
        self._secret = livekit_api_secret
        self._ask_timeout = ask_timeout
        self._timeout = timeout
        self._follow_idle = follow_idle
        self._follow_give_up = follow_give_up
        # A plain-HTTP hub needs no TLS context: building one (loading the CA bundle) costs a
        # job 60 ms on a quiet machine and over a second on a busy one, before its greeting.
        plain = self.base_url.startswith("http://")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            verify=not plain,
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
        try:
            body = ClaimIn(call_id=call_id, agent_id=agent_id, job_id=job_id)
        except ValidationError as e:  # what the hub would answer, without asking it
            raise HubError(
                "not a job the hub can have dispatched", code="invalid_request", status=400
            ) from e
        data = await self._post("/api/cloud/claim", body.model_dump(), bearer=self.worker_jwt())
        try:
            out = ClaimOut.model_validate(data)
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

    async def ask(self, message: str, *, tool_call_id: str | None = None) -> Answer:
        """One `ask_computer_agent` turn. Always has something to say: the agent's answer, the
        hub's short "started" line for long work (then `running`, with the turn to follow), or
        a short sentence saying why there is none.

        `tool_call_id` is the voice model's id for the tool call: with it the hub starts one
        turn for it however often it is sent, so a request whose answer was lost on the way is
        sent once more."""
        claim = self._need_claim()
        body: dict[str, Any] = {
            "agent_id": claim.agent.id,
            "message": message,
            "call_id": claim.call_id,
        }
        if tool_call_id:
            body["tool_call_id"] = tool_call_id
        tries = 2 if tool_call_id else 1
        for attempt in range(1, tries + 1):
            try:
                data = await self._post(
                    "/api/phone", body, bearer=claim.token, seconds=self._ask_timeout
                )
                break
            except HubError as e:
                if attempt < tries and _resendable(e):
                    await asyncio.sleep(RETRY_FIRST_S)
                    continue
                log.warning("a tool turn failed", extra={"call_id": claim.call_id, "code": e.code})
                return Answer(f"I could not reach the computer agent: {e.message}.")
        if not isinstance(data, dict):
            return Answer("The computer agent gave no answer.")
        text, turn_id, status = data.get("text"), data.get("turn_id"), data.get("status")
        answer = Answer(
            text=text if isinstance(text, str) and text.strip() else "",
            turn_id=turn_id if isinstance(turn_id, str) and ID.match(turn_id) else "",
            status=status if isinstance(status, str) else "",
        )
        if not answer.text:
            return Answer("The computer agent gave no answer.", answer.turn_id, answer.status)
        return answer

    async def follow(self, turn_id: str) -> AsyncIterator[TurnEvent]:
        """A turn's events (`progress`, `delta`, then `done`) from `/api/turns/{id}/events`.

        When the stream drops it is reopened with the last event's id as `Last-Event-ID`, and
        the hub sends only what came after it (turns/resume.py), whether the turn still runs
        or has ended meanwhile; `done` always comes through. A turn the hub does not show this
        call (404), or any other refusal, raises HubError at once; a hub unreachable for
        `follow_give_up` seconds raises it then."""
        claim = self._need_claim()
        if not ID.match(turn_id):
            raise HubError("not a turn id", code="turn_not_found", status=404)
        path = f"/api/turns/{turn_id}/events"
        headers = {"authorization": f"Bearer {claim.token}", "accept": "text/event-stream"}
        timeout = httpx.Timeout(self._timeout, read=self._follow_idle)
        loop = asyncio.get_running_loop()
        failures = 0
        heard = loop.time()  # when the hub last answered
        while True:
            try:
                async with self._http.stream(
                    "GET", path, headers=headers, timeout=timeout
                ) as response:
                    if not response.is_success:
                        await response.aread()
                        raise _error_of(response)
                    heard = loop.time()
                    failures = 0
                    async for event_id, event in sse_events(response.aiter_lines()):
                        heard = loop.time()
                        if event_id:
                            headers["last-event-id"] = event_id
                        yield event
                        if event.kind == "done":
                            return
                problem = HubError("the hub ended a turn's events early", code="hub_unreachable")
            except httpx.HTTPError as e:
                problem = HubError(
                    f"lost the connection to the hub at {self.base_url}", code="hub_unreachable"
                )
                problem.__cause__ = e
            except HubError as e:
                if not e.retryable:
                    raise
                problem = e
            failures += 1
            if loop.time() - heard > self._follow_give_up:
                raise problem
            log.info(
                "following a turn again",
                extra={"turn_id": turn_id, "code": problem.code, "try": failures},
            )
            await asyncio.sleep(min(RETRY_FIRST_S * 2 ** (failures - 1), RETRY_MAX_S))

    async def cancel(self, turn_id: str) -> str:
        """Stop a running turn of this call; returns the hub's status ("cancelling"). A turn
        that already ended is HubError 409 `turn_finished`; one the call does not have, 404."""
        claim = self._need_claim()
        if not ID.match(turn_id):
            raise HubError("not a turn id", code="turn_not_found", status=404)
        data = await self._post(f"/api/turns/{turn_id}/cancel", {}, bearer=claim.token)
        status = data.get("status") if isinstance(data, dict) else None
        return status if isinstance(status, str) else "cancelling"

    async def report(self, events: Sequence[CallEvent]) -> None:
        """Send phases and transcript lines to the call, in order (empty lines are dropped)."""
        claim = self._need_claim()
        wire = [to_wire(e) for e in events if not (isinstance(e, LineEvent) and not e.text.strip())]
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
        if response.is_success:
            try:
                return response.json()
            except ValueError:
                return None
        raise _error_of(response)

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


def _error_of(response: httpx.Response) -> HubError:
    """The hub's `{"error": {"code", "message"}}` as a HubError (any other body: its status)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return HubError(
            str(error.get("message") or error["code"]),
            code=error["code"],
            status=response.status_code,
        )
    return HubError(f"the hub answered HTTP {response.status_code}", status=response.status_code)


def _resendable(e: HubError) -> bool:
    """A request that may not have been answered: worth sending once more when the hub makes a
    resend harmless (an idempotency key). A timeout is not: the hub took it and is slow."""
    return e.code == "hub_unreachable" or e.status in (502, 503, 504)
