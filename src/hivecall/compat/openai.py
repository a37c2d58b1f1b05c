"""OpenAI's chat API over hivecall agents: each agent is a model whose id is its name.

`GET /v1/models`, `GET /v1/models/{model}` and `POST /v1/chat/completions` (a `chat.completion`,
or with `stream: true` SSE `chat.completion.chunk`s: the first delta carries the role, the last
the `finish_reason`, then `data: [DONE]`). Each request is one bridge turn with source `openai`;
the earlier messages of the conversation are its history. Parameters hivecall has no use for
(temperature, tools, max_tokens, …) are accepted and ignored. A runtime that fails still
answers, with the spoken apology as the content, as `/api/chat/agent-runtime` does.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hivecall.agents.records import AgentRecord
from hivecall.bridge import TurnHandle, TurnResult
from hivecall.compat.access import Gate, start_turn
from hivecall.compat.shapes import shaped
from hivecall.runtimes import ChatMessage
from hivecall.web.http import hub_of, ok, read_json

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(
                str(p.get("text", ""))
                for p in self.content
                if p.get("type") in ("text", "input_text")
            )
        return self.content or ""


def history_of(messages: Sequence[MessageIn]) -> tuple[ChatMessage, ...]:
    """The conversation before the last message, as the bridge's history (user/assistant)."""
    return tuple(
        ChatMessage("assistant" if m.role == "assistant" else "user", m.text())
        for m in messages[:-1]
        if m.role in ("user", "assistant")
    )


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    messages: list[MessageIn] = Field(min_length=1, max_length=500)
    stream: bool | None = False

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, v: list[MessageIn]) -> list[MessageIn]:
        if v[-1].role != "user":
            raise ValueError("the last message must have role 'user'")
        return v


# -- the wire format (shared with /api/chat/agent-runtime) -----------------------------------


def _extras(handle: TurnHandle | TurnResult) -> dict[str, Any]:
    return {"turn_id": handle.turn_id, "session_id": handle.session_id}


def completion(result: TurnResult, *, extras: bool = True) -> dict[str, Any]:
    """A `chat.completion`; `extras` adds hivecall's `hivecall` field (turn, status, spoken)."""
    failed = result.status != "done"
    data: dict[str, Any] = {
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
    }
    if extras:
        more = _extras(result) | {"status": result.status, "spoken": result.spoken}
        if result.error_code:
            more["error"] = {"code": result.error_code, "message": result.error_message or ""}
        data["hivecall"] = more
    return data


def chunk(
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


async def sse(handle: TurnHandle, *, extras: bool = True) -> AsyncIterator[str]:
    """The turn as SSE chunks; `extras` tells how it ended in a `hivecall` field of the last."""
    created = int(time.time())
    yield chunk(handle, created, {"role": "assistant", "content": ""}, None)
    sent = False
    async for piece in handle.deltas():
        sent = True
        yield chunk(handle, created, {"content": piece}, None)
    result = await handle.result()
    if result.status != "done" and not sent:
        yield chunk(handle, created, {"content": result.spoken}, None)
    end = _extras(result) | {"status": result.status} if extras else None
    yield chunk(handle, created, {}, "stop", end)
    yield "data: [DONE]\n\n"


# -- routes ----------------------------------------------------------------------------------


def model_view(agent: AgentRecord) -> dict[str, Any]:
    return {
        "id": agent.name,
        "object": "model",
        "created": int(agent.created_at.timestamp()),
        "owned_by": "hivecall",
    }


class OpenAIRoutes:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def models(self, request: Request) -> Response:
        hub = hub_of(request)
        access = await self.gate.access(request, hub)
        agents = await self.gate.visible(hub, access)
        return ok({"object": "list", "data": [model_view(a) for a in agents]})

    async def model(self, request: Request) -> Response:
        hub = hub_of(request)
        access = await self.gate.access(request, hub)
        agent = await self.gate.agent(hub, access, request.path_params["model"])
        return ok(model_view(agent))

    async def chat(self, request: Request) -> Response:
        hub = hub_of(request)
        access = await self.gate.access(request, hub)
        body = await read_json(request, ChatCompletionRequest)
        agent = await self.gate.agent(hub, access, body.model)
        handle = await start_turn(
            hub,
            request,
            agent,
            body.messages[-1].text(),
            source="openai",
            access=access,
            history=history_of(body.messages),
        )
        if body.stream:
            return StreamingResponse(
                sse(handle, extras=False), media_type="text/event-stream", headers=SSE_HEADERS
            )
        return ok(completion(await handle.result(), extras=False))

    def routes(self) -> list[Route]:
        openai = shaped("openai")
        return [
            Route("/v1/models", openai(self.models), methods=["GET"]),
            Route("/v1/models/{model}", openai(self.model), methods=["GET"]),
            Route("/v1/chat/completions", openai(self.chat), methods=["POST"]),
        ]
