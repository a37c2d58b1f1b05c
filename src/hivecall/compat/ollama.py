"""Ollama's API over hivecall agents: what Home Assistant's Ollama integration and Open WebUI use.

`GET /api/tags` lists the agents as models named `AGENT:latest` (Open WebUI looks models up with
a tag; a request may name `AGENT` or `AGENT:latest`). `POST /api/chat` and `POST /api/generate`
are one bridge turn each (source `ollama`), streamed as NDJSON by default as real Ollama does,
ending in a line with `"done": true`; `"stream": false` gives one JSON object. A request with
no message (or an empty prompt) only "loads" the model, as clients do to warm one up: it is
answered with `done_reason: "load"` and runs no turn. `POST /api/show`, `GET /api/ps` and
`GET /api/version` answer what those clients ask of a server before they chat. Fields hivecall
has no use for (options, keep_alive, tools, format, think, images, …) are accepted and ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hivecall.agents.records import AgentRecord
from hivecall.chat_wire import LAST_NOT_USER, history_of
from hivecall.compat.access import Gate, start_turn
from hivecall.compat.shapes import shaped
from hivecall.errors import BadRequest
from hivecall.http_api import hub_of, ok, read_json
from hivecall.turns.handle import TurnHandle

# The Ollama API version hivecall speaks (clients parse it as numbers; some compare it).
OLLAMA_VERSION = "0.9.0"
NDJSON = "application/x-ndjson"

KeepAlive = int | float | str | None


class OllamaMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None

    def text(self) -> str:
        return self.content or ""


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    messages: list[OllamaMessage] = Field(default_factory=list, max_length=500)
    stream: bool | None = True
    keep_alive: KeepAlive = None


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    prompt: str | None = ""
    stream: bool | None = True
    keep_alive: KeepAlive = None


class ShowBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = Field(default=None, min_length=1, max_length=200)
    name: str | None = Field(default=None, min_length=1, max_length=200)  # older clients


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _tagged(agent: AgentRecord) -> str:
    return f"{agent.name}:latest"


def _details(agent: AgentRecord) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "hivecall",
        "family": agent.runtime,
        "families": [agent.runtime],
        "parameter_size": "",
        "quantization_level": "",
    }


def tag_view(agent: AgentRecord) -> dict[str, Any]:
    digest = hashlib.sha256(f"{agent.id}:{agent.updated_at.isoformat()}".encode()).hexdigest()
    return {
        "name": _tagged(agent),
        "model": _tagged(agent),
        "modified_at": agent.updated_at.isoformat(),
        "size": 0,
        "digest": digest,
        "details": _details(agent),
    }


def _loaded(model: str, keep_alive: KeepAlive, field: str) -> dict[str, Any]:
    """The answer to a request with nothing to say: the model is 'loaded' (or 'unloaded')."""
    unload = keep_alive in (0, "0", "0s", "0m")
    body: dict[str, Any] = {"model": model, "created_at": _now()}
    if field == "message":
        body["message"] = {"role": "assistant", "content": ""}
    else:
        body["response"] = ""
    return body | {"done_reason": "unload" if unload else "load", "done": True}


Piece = Callable[[str], dict[str, Any]]


async def _ndjson(handle: TurnHandle, model: str, piece: Piece) -> AsyncIterator[str]:
    sent = False
    async for text in handle.deltas():
        sent = True
        yield json.dumps({"model": model, "created_at": _now(), **piece(text), "done": False})
        yield "\n"
    result = await handle.result()
    if result.status != "done" and not sent:
        yield json.dumps(
            {"model": model, "created_at": _now(), **piece(result.spoken), "done": False}
        )
        yield "\n"
    yield json.dumps(_final(model, piece(""), result.duration_ms)) + "\n"


def _final(model: str, content: dict[str, Any], duration_ms: float) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": _now(),
        **content,
        "done_reason": "stop",
        "done": True,
        "total_duration": int(duration_ms * 1_000_000),
    }


def _message(text: str) -> dict[str, Any]:
    return {"message": {"role": "assistant", "content": text}}


def _response(text: str) -> dict[str, Any]:
    return {"response": text}


class OllamaRoutes:
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def version(self, request: Request) -> Response:
        return ok({"version": OLLAMA_VERSION})

    async def tags(self, request: Request) -> Response:
        hub = hub_of(request)
        access = await self.gate.access(request, hub)
        agents = await self.gate.visible(hub, access)
        return ok({"models": [tag_view(a) for a in agents]})

    async def ps(self, request: Request) -> Response:
        # Agents are not models held in memory: nothing is ever "loaded".
        await self.gate.access(request, hub_of(request))
        return ok({"models": []})

    async def show(self, request: Request) -> Response:
        hub = hub_of(request)
        access = await self.gate.access(request, hub)
        body = await read_json(request, ShowBody)
        model = body.model or body.name
        if not model:
            raise BadRequest("model: is required", code="invalid_request")
        agent = await self.gate.agent(hub, access, model)
        return ok(
            {
                "modelfile": "",
                "parameters": "",
                "template": "",
                "details": _details(agent),
                "model_info": {"general.architecture": "hivecall"},
                "capabilities": ["completion"],
                "modified_at": agent.updated_at.isoformat(),
            }
        )

    async def chat(self, request: Request) -> Response:
        hub = hub_of(request)
        access = await self.gate.access(request, hub)
        body = await read_json(request, ChatBody)
        agent = await self.gate.agent(hub, access, body.model)
        if not body.messages:
            return self._answer(body.stream, _loaded(body.model, body.keep_alive, "message"))
        # Unlike OpenAI's, an empty list is allowed (it loads the model), so this is checked here.
        last = body.messages[-1]
        if last.role != "user":
            raise BadRequest(LAST_NOT_USER, code="invalid_request")
        history = history_of(body.messages)
        handle = await start_turn(
            hub, request, agent, last.text(), source="ollama", access=access, history=history
        )
        return await self._reply(handle, body.model, body.stream, _message)

    async def generate(self, request: Request) -> Response:
        hub = hub_of(request)
        access = await self.gate.access(request, hub)
        body = await read_json(request, GenerateBody)
        agent = await self.gate.agent(hub, access, body.model)
        if not body.prompt:
            return self._answer(body.stream, _loaded(body.model, body.keep_alive, "response"))
        handle = await start_turn(hub, request, agent, body.prompt, source="ollama", access=access)
        return await self._reply(handle, body.model, body.stream, _response)

    @staticmethod
    def _answer(stream: bool | None, data: dict[str, Any]) -> Response:
        if stream is False:
            return ok(data)
        return Response(json.dumps(data) + "\n", media_type=NDJSON)

    @staticmethod
    async def _reply(handle: TurnHandle, model: str, stream: bool | None, piece: Piece) -> Response:
        if stream is not False:
            return StreamingResponse(_ndjson(handle, model, piece), media_type=NDJSON)
        result = await handle.result()
        text = result.text if result.status == "done" else result.spoken
        return ok(_final(model, piece(text), result.duration_ms))

    def routes(self) -> list[Route]:
        ollama = shaped("ollama")
        return [
            Route("/api/version", ollama(self.version), methods=["GET"]),
            Route("/api/tags", ollama(self.tags), methods=["GET"]),
            Route("/api/ps", ollama(self.ps), methods=["GET"]),
            Route("/api/show", ollama(self.show), methods=["POST"]),
            Route("/api/chat", ollama(self.chat), methods=["POST"]),
            Route("/api/generate", ollama(self.generate), methods=["POST"]),
        ]
