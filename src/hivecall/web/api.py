"""The hub's JSON API: health, agents, the bridge (phone and agent-runtime), turns, settings."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hivecall import __version__
from hivecall.agents.context import gather
from hivecall.agents.records import AgentCreate, AgentUpdate
from hivecall.auth import WORKER_SCOPE
from hivecall.calls.tool_turns import open_call, record_tool_line
from hivecall.chat_wire import SESSION_ID, ChatMessages, completion, history_of, sse
from hivecall.errors import Forbidden
from hivecall.http_api import authed, event_stream, hub_of, limit_of, ok, read_json
from hivecall.turns.handle import started_line
from hivecall.turns.request import TurnRequest
from hivecall.turns.view import turn_view
from hivecall.web.turns_api import visible_turn


class VoiceToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str = Field(min_length=1, max_length=64)
    message: str
    session_id: str | None = Field(default=None, pattern=SESSION_ID)
    call_id: str | None = Field(default=None, max_length=64)
    # The voice model's own id for this tool call: sent twice, it is still one turn.
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=64)


class AgentRuntimeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str = Field(min_length=1, max_length=64)
    messages: ChatMessages
    session_id: str | None = Field(default=None, pattern=SESSION_ID)
    call_id: str | None = Field(default=None, max_length=64)
    stream: bool = False


# -- health and settings ---------------------------------------------------------------------


async def health(request: Request) -> Response:
    hub = hub_of(request)
    return ok(
        {
            "ok": True,
            "version": __version__,
            "database": "sqlite" if hub.store.is_sqlite else "postgresql",
        }
    )


# -- agents ----------------------------------------------------------------------------------


async def agents_list(request: Request) -> Response:
    await authed(request, "agents:read")
    hub = hub_of(request)
    agents = await hub.agents.list()
    return ok({"agents": [hub.bridge.view(a) for a in agents]})


async def agents_create(request: Request) -> Response:
    await authed(request)
    hub = hub_of(request)
    agent = await hub.agents.create(await read_json(request, AgentCreate))
    return ok({"agent": hub.bridge.view(agent)}, 201)


async def agents_show(request: Request) -> Response:
    await authed(request, "agents:read")
    hub = hub_of(request)
    agent = await hub.agents.get(request.path_params["ref"])
    return ok({"agent": hub.bridge.view(agent)})


async def agents_update(request: Request) -> Response:
    await authed(request)
    hub = hub_of(request)
    patch = await read_json(request, AgentUpdate)
    agent = await hub.agents.update(request.path_params["ref"], patch)
    return ok({"agent": hub.bridge.view(agent)})


async def agents_delete(request: Request) -> Response:
    await authed(request)
    agent = await hub_of(request).agents.delete(request.path_params["ref"])
    return ok({"deleted": agent.id})


async def agents_context(request: Request) -> Response:
    await authed(request)
    hub = hub_of(request)
    agent = await hub.agents.get(request.path_params["ref"])
    context = await gather(agent, await hub.bridge.recent(agent.id))
    return ok({"context": context.public()})


# -- the bridge ------------------------------------------------------------------------------


async def voice_tool_relay(request: Request) -> Response:
    """The voice tool relay (`POST /api/phone`, a path kept for the clients that use it; the
    name has nothing to do with paired phones): one voice turn, `{agent_id, message}` in,
    speakable `{ok, text, turn_id}` out.

    A runtime failure is still a spoken answer (`ok: false` with an error code), so a voice
    front door always has something to say. A turn still running after `voice_ack_s` answers
    `{ok: true, status: "running", text: <a short "started" line>}` and goes on: the caller
    follows /api/turns/{turn_id}/events and speaks the answer when it is done.
    """
    who = await authed(request, "turns:write", "calls", WORKER_SCOPE)
    hub = hub_of(request)
    body = await read_json(request, VoiceToolCall)
    session_id = body.session_id
    call = None
    if body.call_id:
        # A tool turn of a call: only on the caller's own live call, in the call's session.
        agent = await hub.agents.get(body.agent_id)
        call = await open_call(hub.calls, hub.cloud, who, body.call_id, agent.id)
        session_id = session_id or call.id
    elif not who.can("turns:write"):
        raise Forbidden("this token may only relay turns of its own calls (send call_id)")
    handle, new = await hub.bridge.start_or_join(
        TurnRequest(
            agent=body.agent_id,
            message=body.message,
            source="phone",
            session_id=session_id,
            call_id=body.call_id,
            caller=who.caller,
            tool_call_id=body.tool_call_id if body.call_id else None,
        )
    )
    if call is not None and new:
        await record_tool_line(hub.calls, call, body.message, handle.turn_id)
    try:
        result = await asyncio.wait_for(handle.result(), hub.settings.voice_ack_s)
    except TimeoutError:
        return ok(
            {
                "ok": True,
                "status": "running",
                "text": started_line(handle.agent.name),
                "turn_id": handle.turn_id,
                "session_id": handle.session_id,
            }
        )
    out: dict[str, Any] = {
        "ok": result.status == "done",
        "text": result.spoken,
        "turn_id": result.turn_id,
        "session_id": result.session_id,
        "status": result.status,
    }
    if result.error_code:
        out["error"] = {"code": result.error_code, "message": result.error_message or ""}
    return ok(out)


async def agent_runtime(request: Request) -> Response:
    """A chat turn in OpenAI chat-completion form, streamed as SSE when asked."""
    who = await authed(request, "turns:write")
    body = await read_json(request, AgentRuntimeRequest)
    history = history_of(body.messages)
    handle = await hub_of(request).bridge.start(
        TurnRequest(
            agent=body.agent_id,
            message=body.messages[-1].text(),
            source="chat",
            session_id=body.session_id,
            call_id=body.call_id,
            caller=who.caller,
            history=history,
        )
    )
    if body.stream:
        return event_stream(sse(handle))
    return ok(completion(await handle.result()))


# -- turns -----------------------------------------------------------------------------------


async def turns_list(request: Request) -> Response:
    await authed(request)
    hub = hub_of(request)
    q = request.query_params
    limit = limit_of(request, most=500)
    agent_id = None
    if q.get("agent"):
        agent_id = (await hub.agents.get(q["agent"])).id
    turns = await hub.bridge.list_turns(
        agent_id=agent_id,
        session_id=q.get("session_id"),
        call_id=q.get("call_id"),
        status=[s for s in q.get("status", "").split(",") if s],
        limit=limit,
    )
    return ok({"turns": [turn_view(t) for t in turns]})


async def turns_show(request: Request) -> Response:
    """One turn: the owner's any, a phone's or worker's only of its own calls."""
    return ok({"turn": turn_view(await visible_turn(request))})


routes = [
    Route("/api/health", health, methods=["GET"]),
    Route("/api/agents", agents_list, methods=["GET"]),
    Route("/api/agents", agents_create, methods=["POST"]),
    Route("/api/agents/{ref}", agents_show, methods=["GET"]),
    Route("/api/agents/{ref}", agents_update, methods=["PATCH"]),
    Route("/api/agents/{ref}", agents_delete, methods=["DELETE"]),
    Route("/api/agents/{ref}/context", agents_context, methods=["GET"]),
    Route("/api/phone", voice_tool_relay, methods=["POST"]),
    Route("/api/chat/agent-runtime", agent_runtime, methods=["POST"]),
    Route("/api/turns", turns_list, methods=["GET"]),
    Route("/api/turns/{turn_id}", turns_show, methods=["GET"]),
]
