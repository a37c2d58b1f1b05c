"""OpenAI's chat API over hivecall agents: each agent is a model whose id is its name.

`GET /v1/models`, `GET /v1/models/{model}` and `POST /v1/chat/completions`, in the chat wire
format of hivecall.chat_wire (a `chat.completion`, or SSE chunks with `stream: true`), without
hivecall's own `hivecall` field. Each request is one bridge turn with source `openai`; the
earlier messages of the conversation are its history. Parameters hivecall has no use for
(temperature, tools, max_tokens, …) are accepted and ignored. A runtime that fails still
answers, with the spoken apology as the content, as `/api/chat/agent-runtime` does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hivecall.agents.records import AgentRecord
from hivecall.chat_wire import ChatMessages, completion, history_of, sse
from hivecall.compat.access import Gate, start_turn
from hivecall.compat.shapes import shaped
from hivecall.http_api import event_stream, hub_of, ok, read_json


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    messages: ChatMessages
    stream: bool | None = False


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
            return event_stream(sse(handle, extras=False))
        return ok(completion(await handle.result(), extras=False))

    def routes(self) -> list[Route]:
        openai = shaped("openai")
        return [
            Route("/v1/models", openai(self.models), methods=["GET"]),
            Route("/v1/models/{model}", openai(self.model), methods=["GET"]),
            Route("/v1/chat/completions", openai(self.chat), methods=["POST"]),
        ]
