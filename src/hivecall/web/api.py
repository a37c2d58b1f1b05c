"""The hub's JSON API: health, agents, the bridge (phone and agent-runtime), turns, settings."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hivecall import __version__
from hivecall.agents.context import gather
from hivecall.agents.records import AgentCreate, AgentUpdate
from hivecall.bridge import TurnHandle, TurnRequest, TurnResult
from hivecall.errors import BadRequest, NotFound
from hivecall.runtimes import ChatMessage
from hivecall.settings import describe
from hivecall.store.models import Turn
from hivecall.web.http import authed, hub_of, ok, read_json

SESSION_ID = r"^[A-Za-z0-9_.:-]{1,64}$"


class PhoneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str = Field(min_length=1, max_length=64)
    message: str
    session_id: str | None = Field(default=None, pattern=SESSION_ID)
    call_id: str | None = Field(default=None, max_length=64)


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(
                str(p.get("text", ""))
                for p in self.content
                if p.get("type") in ("text", "input_text")
            )
        return self.content or ""


class AgentRuntimeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str = Field(min_length=1, max_length=64)
    messages: list[MessageIn] = Field(min_length=1, max_length=500)
    session_id: str | None = Field(default=None, pattern=SESSION_ID)
    call_id: str | None = Field(default=None, max_length=64)
    stream: bool = False

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, v: list[MessageIn]) -> list[MessageIn]:
        if v[-1].role != "user":
            raise ValueError("the last message must have role 'user'")
        return v


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


async def settings_view(request: Request) -> Response:
    await authed(request)
    return ok({"settings": describe(hub_of(request).settings)})


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
    return ok({"context": context.as_dict()})


# -- the bridge ------------------------------------------------------------------------------


async def phone(request: Request) -> Response:
    """One voice turn: `{agent_id, message}` in, speakable `{ok, text, turn_id}` out.

    A runtime failure is still a spoken answer (`ok: false` with an error code), so a voice
    front door always has something to say.
    """
    await authed(request, "turns:write")
    body = await read_json(request, PhoneRequest)
    result = await hub_of(request).bridge.run(
        TurnRequest(
            agent=body.agent_id,
            message=body.message,
            source="phone",
            session_id=body.session_id,
            call_id=body.call_id,
        )
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
    await authed(request, "turns:write")
    body = await read_json(request, AgentRuntimeRequest)
    history = tuple(
        ChatMessage("assistant" if m.role == "assistant" else "user", m.text())
        for m in body.messages[:-1]
        if m.role in ("user", "assistant")
    )
    handle = await hub_of(request).bridge.start(
        TurnRequest(
            agent=body.agent_id,
            message=body.messages[-1].text(),
            source="chat",
            session_id=body.session_id,
            call_id=body.call_id,
            history=history,
        )
    )
    if body.stream:
        return StreamingResponse(
            _sse(handle),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
    return ok(completion(await handle.result()))


def _extras(handle: TurnHandle | TurnResult) -> dict[str, Any]:
    return {"turn_id": handle.turn_id, "session_id": handle.session_id}


def completion(result: TurnResult) -> dict[str, Any]:
    failed = result.status != "done"
    extras = _extras(result) | {"status": result.status, "spoken": result.spoken}
    if result.error_code:
        extras["error"] = {"code": result.error_code, "message": result.error_message or ""}
    return {
        "id": f"chatcmpl-{result.turn_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.agent.name,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": result.spoken if failed else result.text,
                },
                "finish_reason": "stop",
            }
        ],
        "hivecall": extras,
    }


def _chunk(
    handle: TurnHandle,
    created: int,
    delta: dict[str, Any],
    finish: str | None,
    extra: dict[str, Any] | None = None,
) -> str:
    data: dict[str, Any] = {
        "id": f"chatcmpl-{handle.turn_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": handle.agent.name,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if extra:
        data["hivecall"] = extra
    return f"data: {json.dumps(data)}\n\n"


async def _sse(handle: TurnHandle) -> AsyncIterator[str]:
    created = int(time.time())
    yield _chunk(handle, created, {"role": "assistant", "content": ""}, None)
    sent = False
    async for piece in handle.deltas():
        sent = True
        yield _chunk(handle, created, {"content": piece}, None)
    result = await handle.result()
    if result.status != "done" and not sent:
        yield _chunk(handle, created, {"content": result.spoken}, None)
    # The final chunk also says how the turn ended (an extension field clients ignore).
    yield _chunk(handle, created, {}, "stop", _extras(result) | {"status": result.status})
    yield "data: [DONE]\n\n"


# -- turns -----------------------------------------------------------------------------------


def turn_view(t: Turn) -> dict[str, Any]:
    return {
        "id": t.id,
        "agent_id": t.agent_id,
        "session_id": t.session_id,
        "call_id": t.call_id,
        "source": t.source,
        "status": t.status,
        "message": t.message,
        "reply": t.reply,
        "spoken": t.spoken,
        "error_code": t.error_code,
        "queued_at": t.queued_at.isoformat(),
        "started_at": t.started_at.isoformat() if t.started_at else None,
        "finished_at": t.finished_at.isoformat() if t.finished_at else None,
        "duration_ms": t.duration_ms,
    }


async def turns_list(request: Request) -> Response:
    await authed(request)
    hub = hub_of(request)
    q = request.query_params
    try:
        limit = min(max(int(q.get("limit", "50")), 1), 500)
    except ValueError as e:
        raise BadRequest("limit must be a number", code="invalid_request") from e
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
    await authed(request)
    turn = await hub_of(request).bridge.get_turn(request.path_params["turn_id"])
    if turn is None:
        raise NotFound("no such turn", code="turn_not_found")
    return ok({"turn": turn_view(turn)})


routes = [
    Route("/api/health", health, methods=["GET"]),
    Route("/api/settings", settings_view, methods=["GET"]),
    Route("/api/agents", agents_list, methods=["GET"]),
    Route("/api/agents", agents_create, methods=["POST"]),
    Route("/api/agents/{ref}", agents_show, methods=["GET"]),
    Route("/api/agents/{ref}", agents_update, methods=["PATCH"]),
    Route("/api/agents/{ref}", agents_delete, methods=["DELETE"]),
    Route("/api/agents/{ref}/context", agents_context, methods=["GET"]),
    Route("/api/phone", phone, methods=["POST"]),
    Route("/api/chat/agent-runtime", agent_runtime, methods=["POST"]),
    Route("/api/turns", turns_list, methods=["GET"]),
    Route("/api/turns/{turn_id}", turns_show, methods=["GET"]),
]
