"""Calls API: start a call, report its phases and transcript, end it, read the history.

Also the dashboard's editable settings (the OpenAI key, model, voice, default call mode), since
they exist to make calls work.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hivecall.agents.records import AgentRecord
from hivecall.auth import WORKER_SCOPE, Principal
from hivecall.calls import TERMINAL, CallLineIn, CallView
from hivecall.calls.events import (
    ErrorIn,
    Event,
    EventsIn,
    LineEvent,
    NetworkEvent,
    PhaseEvent,
    SpeakerOnlyEvent,
)
from hivecall.calls.local import MAX_OFFER_BYTES, Tuning
from hivecall.calls.modes import all_modes, resolve
from hivecall.calls.records import line_view, new_call_id
from hivecall.calls.state import FROM, reached
from hivecall.errors import BadRequest, Conflict, HivecallError, PayloadTooLarge
from hivecall.http_api import authed, hub_of, limit_of, ok, read_json
from hivecall.hub import Hub
from hivecall.preferences import SettingsPatch
from hivecall.settings import Settings, describe
from hivecall.store.models import Call
from hivecall.turns.view import turn_view
from hivecall.voice.instructions import greeting, instructions
from hivecall.voice.tool import realtime_tools


class CallStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str = Field(min_length=1, max_length=64)
    mode: Literal["auto", "byok", "local", "cloud"] | None = None


class CallEnd(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: ErrorIn | None = None


class KeyTest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    openai_api_key: str | None = Field(default=None, min_length=20, max_length=400)


# -- calls -----------------------------------------------------------------------------------


async def view_of(hub: Hub, call: Call) -> dict[str, Any]:
    agent = await hub.agents.get(call.agent_id)
    return CallView(call, hub.bridge.view(agent)).public()


async def modes(request: Request) -> Response:
    await authed(request, "calls")
    settings = hub_of(request).settings
    default = resolve(settings, None)
    return ok(
        {
            "default": default.name,
            "modes": [m.public() for m in all_modes(settings)],
            "connect_timeout_s": settings.call_connect_timeout,
        }
    )


async def start(request: Request) -> Response:
    """Start a call. Nothing is recorded when the hub cannot even try (no key, bad agent); a
    call that OpenAI refuses is recorded as failed, with the reason."""
    who = await authed(request, "calls")
    hub = hub_of(request)
    body = await read_json(request, CallStart)
    settings = hub.settings
    mode = resolve(settings, body.mode)
    if not mode.available:
        raise mode.error()
    agent = await hub.agents.get(body.agent_id)
    if problem := hub.agents.problem(agent):
        raise Conflict(
            f"agent {agent.name!r} cannot take calls: {problem}", code="agent_unavailable"
        )
    if mode.name == "local":
        return _started(settings, await _start_local(hub, who, agent))
    if mode.name == "cloud":
        return _started(settings, await _start_cloud(hub, who, agent))
    ctx = await hub.contexts.get(agent)
    # The record is written while OpenAI mints: the two waits overlap.
    recording = asyncio.create_task(hub.calls.create(agent_id=agent.id, mode=mode.name, who=who))
    try:
        secret = await hub.minter.mint(settings, instructions(ctx))
    except HivecallError as e:
        await hub.calls.advance(await recording, "failed", error=(e.code, e.message))
        raise
    except Exception:
        error = ("internal_error", "the hub hit an unexpected error")
        await hub.calls.advance(await recording, "failed", error=error)
        raise
    call = await recording
    out = CallView(call, hub.bridge.view(agent)).public()
    out["realtime"] = secret.public() | {
        "tools": realtime_tools(),
        "greeting": greeting(agent.name),
    }
    return _started(settings, out)


def _started(settings: Settings, call: dict[str, Any]) -> Response:
    # The page gives up connecting after the same time the hub's sweeper fails the call.
    return ok({"call": call, "connect_timeout_s": settings.call_connect_timeout}, 201)


async def _start_local(hub: Hub, who: Principal, agent: AgentRecord) -> dict[str, Any]:
    """A local call: the record, and where the page sends its offer. The speech models start
    loading now, while the page asks for the microphone and gathers its candidates."""
    hub.local.check_capacity(hub.settings.local_max_calls)
    hub.local.warm()
    call = await hub.calls.create(agent_id=agent.id, mode="local", who=who)
    out = CallView(call, hub.bridge.view(agent)).public()
    out["local"] = {"offer_url": f"/api/calls/{call.id}/local/offer"}
    return out


async def _start_cloud(hub: Hub, who: Principal, agent: AgentRecord) -> dict[str, Any]:
    """A cloud call: the record, the LiveKit room with the agent dispatched into it, and the
    caller's join token. If LiveKit refuses, the call is recorded as failed with the reason.
    The record is written while LiveKit makes the room; the agent's row needs both."""
    call_id = new_call_id()
    room = asyncio.create_task(hub.cloud.open_room(hub.settings, call_id))
    try:
        call = await hub.calls.create(agent_id=agent.id, mode="cloud", who=who, call_id=call_id)
    except BaseException:
        if await _succeeded(room):  # a room no call will use
            await hub.cloud.discard_room(hub.settings, call_id)
        raise
    try:
        await room
        token = await hub.cloud.start(hub.settings, call=call, agent=agent, who=who)
    except HivecallError as e:
        await hub.calls.advance(call, "failed", error=(e.code, e.message))
        raise
    out = CallView(call, hub.bridge.view(agent)).public()
    out["livekit"] = token.public()
    return out


async def _succeeded(task: asyncio.Task[None]) -> bool:
    """Wait for `task`; whether it ended without an error."""
    try:
        await task
    except Exception:
        return False
    return True


async def local_offer(request: Request) -> Response:
    """The page's SDP offer for a local call in, the hub's SDP answer out (`application/sdp`
    both ways, like OpenAI's /realtime/calls, so the page has one code path for both)."""
    who = await authed(request, "calls")
    hub = hub_of(request)
    call = await hub.calls.get(request.path_params["call_id"], who=who)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/sdp":
        raise HivecallError(
            "send the offer as application/sdp", code="unsupported_media_type", status=415
        )
    body = await _read_offer(request)
    try:
        offer = body.decode()
    except UnicodeDecodeError as e:
        raise BadRequest("the offer is not valid SDP", code="invalid_sdp") from e
    settings = hub.settings
    answer = await hub.local.answer(
        call,
        offer=offer,
        max_calls=settings.local_max_calls,
        tuning=Tuning.of(settings),
    )
    return Response(
        answer,
        status_code=201,
        media_type="application/sdp",
        headers={"location": f"/api/calls/{call.id}"},
    )


async def _read_offer(request: Request) -> bytes:
    """The offer's bytes, refused (413) by its Content-Length or as soon as it passes the
    limit, never read whole first: a client may stream far more than it declares."""
    too_large = PayloadTooLarge(f"the offer is larger than {MAX_OFFER_BYTES} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_OFFER_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_OFFER_BYTES:
            raise too_large
    return bytes(body)


async def history(request: Request) -> Response:
    who = await authed(request, "calls")
    hub = hub_of(request)
    q = request.query_params
    limit = limit_of(request, most=200)
    agent_id = (await hub.agents.get(q["agent"])).id if q.get("agent") else None
    calls = await hub.calls.history(who=who, agent_id=agent_id, limit=limit)
    agents = {a.id: hub.bridge.view(a) for a in await hub.agents.list()}
    return ok({"calls": [CallView(c, agents[c.agent_id]).public() for c in calls]})


async def show(request: Request) -> Response:
    who = await authed(request, "calls", WORKER_SCOPE)
    hub = hub_of(request)
    call = await hub.calls.get(request.path_params["call_id"], who=who)
    lines = await hub.calls.lines(call.id)
    turns = await hub.bridge.list_turns(call_id=call.id, limit=500)
    turns.reverse()
    return ok(
        {
            "call": await view_of(hub, call),
            "lines": [line_view(ln) for ln in lines],
            "turns": [turn_view(t) for t in turns],
        }
    )


async def events(request: Request) -> Response:
    """The page (or a cloud call's worker) reports what happened: phases, finished transcript
    lines, speaker-only, errors, network drops."""
    who = await authed(request, "calls", WORKER_SCOPE)
    hub = hub_of(request)
    call = await hub.calls.get(request.path_params["call_id"], who=who)
    body = await read_json(request, EventsIn)
    if not hub.calls.accepts_lines(call):
        raise Conflict(f"the call has already {call.state}", code="call_finished")
    check_phases(call.state, body.events)
    pending: list[CallLineIn] = []
    for ev in body.events:
        if isinstance(ev, PhaseEvent):
            await hub.calls.add_lines(call, pending)
            pending = []
            err = (ev.error.code, ev.error.message) if ev.error else None
            call = await hub.calls.advance(call, ev.phase, error=err)
            if call.mode == "cloud" and call.state in TERMINAL:
                await hub.cloud.end(hub.settings, call)
        elif isinstance(ev, LineEvent):
            pending.append(CallLineIn(kind=ev.type, text=ev.text, speaker=ev.speaker))
        elif isinstance(ev, SpeakerOnlyEvent):
            await hub.calls.mark_speaker_only(call)
        elif isinstance(ev, NetworkEvent):
            if line := hub.calls.network_line(call.id, ev.state):
                pending.append(line)
        else:
            pending.append(CallLineIn(kind="error", text=f"{ev.code}: {ev.message}".strip()))
    await hub.calls.add_lines(call, pending)
    return ok({"call": await view_of(hub, await hub.calls.get(call.id))})


def check_phases(state: str, events: list[Event]) -> None:
    """Refuse a batch (409, nothing written) when one of its phases cannot follow the call's
    state and the phases before it: its earlier lines would be kept while the page, told the
    batch failed, sends them again."""
    for ev in events:
        if isinstance(ev, PhaseEvent) and not reached(state, ev.phase):
            if state not in FROM[ev.phase]:
                raise Conflict(f"the call has already {state}", code="call_finished")
            state = ev.phase


async def end(request: Request) -> Response:
    who = await authed(request, "calls")
    hub = hub_of(request)
    call = await hub.calls.get(request.path_params["call_id"], who=who)
    body = await read_json(request, CallEnd) if await _has_body(request) else CallEnd()
    if body.error:
        call = await hub.calls.advance(call, "failed", error=(body.error.code, body.error.message))
    else:
        call = await hub.calls.advance(call, "ended")
    await hub.local.hang_up(call.id)
    if call.mode == "cloud":
        await hub.cloud.end(hub.settings, call)
    return ok({"call": await view_of(hub, call)})


async def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") not in ("", "0")


# -- settings the dashboard edits ------------------------------------------------------------


def settings_body(hub: Hub) -> dict[str, Any]:
    return {"settings": describe(hub.settings, sources=hub.prefs.sources())}


async def settings_view(request: Request) -> Response:
    await authed(request)
    return ok(settings_body(hub_of(request)))


async def settings_update(request: Request) -> Response:
    await authed(request)
    hub = hub_of(request)
    hub.settings = await hub.prefs.update(await read_json(request, SettingsPatch))
    return ok(settings_body(hub))


async def openai_key_test(request: Request) -> Response:
    """Check a key (the one given, else the stored one) by minting a throwaway call secret."""
    await authed(request)
    hub = hub_of(request)
    body = await read_json(request, KeyTest) if await _has_body(request) else KeyTest()
    settings = hub.settings
    if body.openai_api_key:
        settings = settings.replace(openai_api_key=body.openai_api_key.strip())
    await hub.minter.check(settings)
    return ok({"ok": True, "model": settings.realtime_model})


routes = [
    Route("/api/settings", settings_view, methods=["GET"]),
    Route("/api/settings", settings_update, methods=["PATCH"]),
    Route("/api/settings/openai-key/test", openai_key_test, methods=["POST"]),
    Route("/api/calls/modes", modes, methods=["GET"]),
    Route("/api/calls", start, methods=["POST"]),
    Route("/api/calls", history, methods=["GET"]),
    Route("/api/calls/{call_id}", show, methods=["GET"]),
    Route("/api/calls/{call_id}/events", events, methods=["POST"]),
    Route("/api/calls/{call_id}/end", end, methods=["POST"]),
    Route("/api/calls/{call_id}/local/offer", local_offer, methods=["POST"]),
]
