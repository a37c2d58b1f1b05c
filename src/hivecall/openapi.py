"""`GET /openapi.json`: an OpenAPI 3.1 document of the hub's HTTP API, built from its routes.

`OPERATIONS` is the one table: for each (method, path) of the app's API routes, the pydantic
model its body is read into, its query and header parameters, who may call it (a security
scheme and the token scopes it accepts) and what it answers. `document(routes)` joins that
table with the routes the app really serves: a route without an entry, or an entry without a
route, is an error, so the document cannot drift from the hub (tests/test_openapi.py). Body
schemas are the models' own `model_json_schema`; nothing here is written twice.

This module sits beside app.py (it reads every front door's models, as app.py mounts every
front door's routes), so front doors never import each other for it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hivecall import __version__
from hivecall.agents.records import AgentCreate, AgentUpdate
from hivecall.auth import SESSION_COOKIE
from hivecall.calls.cloud.invites import InviteIn
from hivecall.calls.cloud.wire import ClaimIn
from hivecall.calls.events import EventsIn
from hivecall.compat.keys import KeyCreate
from hivecall.compat.ollama import NDJSON, ChatBody, GenerateBody, ShowBody
from hivecall.compat.openai import ChatCompletionRequest
from hivecall.http_api import JSON_TYPE
from hivecall.preferences import SettingsPatch
from hivecall.web.api import AgentRuntimeRequest, VoiceToolCall
from hivecall.web.calls_api import CallEnd, CallStart, KeyTest
from hivecall.web.cloud_api import AgentIn, JoinIn
from hivecall.web.pairing_api import Claim

SSE = "text/event-stream"
SDP = "application/sdp"
# Paths that are the API; the rest (/, /m, /join/{code}, /static) are pages for people.
API_PREFIXES = ("/api/", "/v1/")
PATH = "/openapi.json"

# Which error body a route's clients read (compat/shapes.py): hivecall's own, OpenAI's (ours
# plus `type` and `param`) or Ollama's (`{"error": "message"}`).
Flavour = Literal["hivecall", "openai", "ollama"]
# token: a hivecall token (owner, phone, session cookie); key: a compat API key or the owner
# token; worker: a cloud call worker's LiveKit token; none: no credentials.
Auth = Literal["token", "key", "worker", "none"]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """The one error body of hivecall's routes (errors.py)."""

    error: ErrorDetail


class OpenAIErrorDetail(ErrorDetail):
    type: str
    param: str | None


class OpenAIErrorBody(BaseModel):
    """Errors on OpenAI's paths: hivecall's shape plus the fields OpenAI's clients read."""

    error: OpenAIErrorDetail


class OllamaErrorBody(BaseModel):
    """Errors on Ollama's paths, as Ollama's clients read them."""

    error: str


ERRORS: dict[Flavour, type[BaseModel]] = {
    "hivecall": ErrorBody,
    "openai": OpenAIErrorBody,
    "ollama": OllamaErrorBody,
}


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "string"})
    where: Literal["query", "header"] = "query"


@dataclass(frozen=True)
class Op:
    summary: str
    answer: str  # what the success response holds
    body: type[BaseModel] | None = None  # read with http_api.py read_json (application/json)
    body_media: str = JSON_TYPE
    body_required: bool = True
    status: int = 200
    media: tuple[str, ...] = (JSON_TYPE,)
    params: tuple[Param, ...] = ()
    auth: Auth = "token"
    scopes: tuple[str, ...] = ("admin",)
    flavour: Flavour = "hivecall"
    tag: str = ""
    example: dict[str, Any] | None = None


Key = tuple[str, str]
# A model's schema: a $ref into components.schemas.
Refs = dict[type, dict[str, Any]]


_DEFAULTS = Op("", "")


def _tag(tag: str, ops: dict[Key, Op], **common: Any) -> dict[Key, Op]:
    """A section of the table: its tag, and `common` where an entry kept Op's default."""

    def merged(op: Op) -> Op:
        kept = {f: v for f, v in common.items() if getattr(op, f) == getattr(_DEFAULTS, f)}
        return dataclasses.replace(op, tag=tag, **kept)

    return {k: merged(op) for k, op in ops.items()}


LIMIT = Param("limit", "how many, newest first (clamped to the route's range)", {"type": "integer"})
SESSION_HEADERS = (
    Param(
        "x-hivecall-session-id",
        "the conversation these turns belong to (1-64 of A-Z a-z 0-9 _ . : -)",
        where="header",
    ),
    Param("x-openwebui-chat-id", "Open WebUI's chat id, used when ours is absent", where="header"),
)
CALL_SCOPES = ("calls",)
ECHO_CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hello"}]}

OPERATIONS: dict[Key, Op] = {
    ("GET", PATH): Op(
        "This document", "the OpenAPI 3.1 document", auth="none", scopes=(), tag="meta"
    ),
    **_tag(
        "hub",
        {
            ("GET", "/api/health"): Op(
                "Whether the hub is up", "`{ok, version, database}`", auth="none", scopes=()
            ),
            ("GET", "/api/settings"): Op("The settings and where each comes from", "`{settings}`"),
            ("PATCH", "/api/settings"): Op(
                "Change the dashboard's settings (null: back to the configured value)",
                "`{settings}`",
                body=SettingsPatch,
            ),
            ("POST", "/api/settings/openai-key/test"): Op(
                "Check an OpenAI key (the one given, else the stored one)",
                "`{ok, model}`",
                body=KeyTest,
                body_required=False,
            ),
            ("POST", "/api/logout"): Op("Sign this browser out", "`{ok}`", scopes=("agents:read",)),
        },
    ),
    **_tag(
        "agents",
        {
            ("GET", "/api/agents"): Op("The agents", "`{agents}`", scopes=("agents:read",)),
            ("POST", "/api/agents"): Op(
                "Add an agent",
                "`{agent}`",
                body=AgentCreate,
                status=201,
                example={"name": "helper", "runtime": "echo"},
            ),
            ("GET", "/api/agents/{ref}"): Op(
                "One agent, by id or name", "`{agent}`", scopes=("agents:read",)
            ),
            ("PATCH", "/api/agents/{ref}"): Op("Change an agent", "`{agent}`", body=AgentUpdate),
            ("DELETE", "/api/agents/{ref}"): Op("Remove an agent", "`{deleted}`"),
            ("GET", "/api/agents/{ref}/context"): Op(
                "The context the agent gets on every turn", "`{context}`"
            ),
        },
    ),
    **_tag(
        "turns",
        {
            ("POST", "/api/phone"): Op(
                "One voice turn; a turn still running after voice_ack_s answers `running`",
                "`{ok, text, turn_id, session_id, status, error?}`",
                body=VoiceToolCall,
                scopes=("turns:write", "calls", "call:worker"),
                example={"agent_id": "echo", "message": "hello"},
            ),
            ("POST", "/api/chat/agent-runtime"): Op(
                "One chat turn in OpenAI chat-completion form",
                "a `chat.completion`, or with `stream: true` SSE chunks ending in `[DONE]`",
                body=AgentRuntimeRequest,
                media=(JSON_TYPE, SSE),
                scopes=("turns:write",),
                example={"agent_id": "echo", "messages": ECHO_CHAT["messages"]},
            ),
            ("GET", "/api/turns"): Op(
                "Turns, newest first",
                "`{turns}`",
                params=(
                    Param("agent", "an agent's id or name"),
                    Param("session_id", "one session's turns"),
                    Param("call_id", "one call's turns"),
                    Param("status", "comma-separated statuses (queued, running, done, …)"),
                    LIMIT,
                ),
            ),
            ("GET", "/api/turns/{turn_id}"): Op("One turn, with its progress", "`{turn}`"),
            ("GET", "/api/turns/{turn_id}/events"): Op(
                "Follow a turn: `progress`, `delta` and `done` events, from the first one",
                "server-sent events, each with an `id`; `error` (the one error shape) if the "
                "stream fails",
                media=(SSE,),
                params=(
                    Param(
                        "last-event-id",
                        "the `id` of the last event a dropped stream delivered: the stream "
                        "starts after it (400 `invalid_last_event_id` for one the hub did not "
                        "send)",
                        where="header",
                    ),
                ),
                scopes=("admin", *CALL_SCOPES, "call:worker"),
            ),
            ("POST", "/api/turns/{turn_id}/cancel"): Op(
                "Stop a running turn",
                "`{ok, turn_id, status: cancelling}`",
                scopes=("admin", *CALL_SCOPES, "call:worker"),
            ),
        },
    ),
    **_tag(
        "calls",
        {
            ("GET", "/api/calls/modes"): Op(
                "The call modes and which are available",
                "`{default, modes, connect_timeout_s}`",
                scopes=CALL_SCOPES,
            ),
            ("POST", "/api/calls"): Op(
                "Start a call (BYOK, local or cloud)",
                "`{call, connect_timeout_s}`: the call with what the page needs to connect, and "
                "the seconds it has to connect before the hub fails it",
                body=CallStart,
                status=201,
                scopes=CALL_SCOPES,
                example={"agent_id": "echo", "mode": "byok"},
            ),
            ("GET", "/api/calls"): Op(
                "Call history, newest first",
                "`{calls}`",
                params=(Param("agent", "an agent's id or name"), LIMIT),
                scopes=CALL_SCOPES,
            ),
            ("GET", "/api/calls/{call_id}"): Op(
                "One call with its transcript and turns",
                "`{call, lines, turns}`",
                scopes=(*CALL_SCOPES, "call:worker"),
            ),
            ("POST", "/api/calls/{call_id}/events"): Op(
                "Report phases, transcript lines and network drops (a batch is taken whole or "
                "not at all)",
                "`{call}`",
                body=EventsIn,
                scopes=(*CALL_SCOPES, "call:worker"),
            ),
            ("POST", "/api/calls/{call_id}/end"): Op(
                "End a call (with an error: it failed)",
                "`{call}`",
                body=CallEnd,
                body_required=False,
                scopes=CALL_SCOPES,
            ),
            ("POST", "/api/calls/{call_id}/local/offer"): Op(
                "A local call's SDP offer in, the hub's SDP answer out",
                "the SDP answer",
                body_media=SDP,
                status=201,
                media=(SDP,),
                scopes=CALL_SCOPES,
            ),
            ("POST", "/api/calls/{call_id}/token"): Op(
                "A fresh LiveKit join token for the caller's own cloud call",
                "`{livekit}`",
                scopes=CALL_SCOPES,
            ),
            ("GET", "/api/calls/{call_id}/participants"): Op(
                "Who is in a cloud call's room", "`{participants}`", scopes=CALL_SCOPES
            ),
            ("DELETE", "/api/calls/{call_id}/participants/{identity}"): Op(
                "Remove someone from a cloud call's room", "`{removed}`", scopes=CALL_SCOPES
            ),
            ("POST", "/api/calls/{call_id}/agents"): Op(
                "Bring another agent into a cloud call",
                "`{agent, dispatch_id}`",
                body=AgentIn,
                status=201,
                scopes=CALL_SCOPES,
            ),
            ("POST", "/api/calls/{call_id}/invites"): Op(
                "Invite guests to a cloud call (the code is shown once)",
                "`{invite}`",
                body=InviteIn,
                status=201,
                scopes=CALL_SCOPES,
            ),
            ("GET", "/api/calls/{call_id}/invites"): Op(
                "A cloud call's invites", "`{invites}`", scopes=CALL_SCOPES
            ),
            ("DELETE", "/api/calls/{call_id}/invites/{invite_id}"): Op(
                "Revoke an invite", "`{invite}`", scopes=CALL_SCOPES
            ),
            ("POST", "/api/join"): Op(
                "A guest trades an invite code and a name for a join token (the code is it)",
                "`{call, livekit}`",
                body=JoinIn,
                auth="none",
                scopes=(),
            ),
            ("POST", "/api/cloud/claim"): Op(
                "`hivecall worker` claims a dispatched job",
                "the call, the agent and the worker's hub token",
                body=ClaimIn,
                auth="worker",
                scopes=(),
            ),
        },
    ),
    **_tag(
        "phones",
        {
            ("POST", "/api/pairing"): Op(
                "A new pairing code, its URL and QR code (shown once)",
                "`{pairing, qr_svg, public_url, hint}`",
                status=201,
            ),
            ("POST", "/api/pairing/claim"): Op(
                "A phone trades a pairing code for its device token (shown once)",
                "`{token, device, hub}`",
                body=Claim,
                status=201,
                auth="none",
                scopes=(),
            ),
            ("GET", "/api/pairing/{id}"): Op("Whether a pairing code was used", "`{pairing}`"),
            ("GET", "/api/devices"): Op("Paired devices", "`{devices}`"),
            ("DELETE", "/api/devices/{id}"): Op("Unpair a device", "`{revoked}`"),
        },
    ),
    **_tag(
        "keys",
        {
            ("GET", "/api/keys"): Op("The compat API's keys (never their values)", "`{keys}`"),
            ("POST", "/api/keys"): Op(
                "A new API key (its value is shown once)",
                "`{key, token}`",
                body=KeyCreate,
                status=201,
            ),
            ("DELETE", "/api/keys/{name}"): Op("Revoke a key by its name", "`{revoked}`"),
        },
    ),
    **_tag(
        "openai",
        {
            ("GET", "/v1/models"): Op("The agents this key may use", "a model list"),
            ("GET", "/v1/models/{model}"): Op("One agent as a model", "a model"),
            ("POST", "/v1/chat/completions"): Op(
                "One turn on the agent named by `model`",
                "a `chat.completion`, or with `stream: true` SSE chunks ending in `[DONE]`",
                body=ChatCompletionRequest,
                media=(JSON_TYPE, SSE),
                params=SESSION_HEADERS,
                example=ECHO_CHAT,
            ),
        },
        auth="key",
        scopes=("compat",),
        flavour="openai",
    ),
    **_tag(
        "ollama",
        {
            ("GET", "/api/version"): Op(
                "The Ollama API version spoken", "`{version}`", auth="none", scopes=()
            ),
            ("GET", "/api/tags"): Op("The agents as `AGENT:latest` models", "`{models}`"),
            ("GET", "/api/ps"): Op("Loaded models (never any)", "`{models: []}`"),
            ("POST", "/api/show"): Op("One agent as a model", "the model's details", body=ShowBody),
            ("POST", "/api/chat"): Op(
                "One turn; no message only 'loads' the model",
                "NDJSON lines ending in `done: true`; with `stream: false` one object",
                body=ChatBody,
                media=(NDJSON, JSON_TYPE),
                params=SESSION_HEADERS,
                example={**ECHO_CHAT, "stream": False},
            ),
            ("POST", "/api/generate"): Op(
                "One turn on a prompt; an empty one only 'loads' the model",
                "NDJSON lines ending in `done: true`; with `stream: false` one object",
                body=GenerateBody,
                media=(NDJSON, JSON_TYPE),
                params=SESSION_HEADERS,
                example={"model": "echo", "prompt": "hello", "stream": False},
            ),
        },
        auth="key",
        scopes=("compat",),
        flavour="ollama",
    ),
}

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "token": {
        "type": "http",
        "scheme": "bearer",
        "description": "A hivecall token: the owner token, a paired phone's device token. Each "
        "operation names the scopes it accepts in `x-hivecall-scopes`.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The dashboard's session cookie (from the login URL). Unsafe requests "
        "made with it also need the hub's own Origin (or Sec-Fetch-Site: same-origin).",
    },
    "key": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`hivecall keys create`, possibly limited to one agent) or "
        "the owner token. On the compat listener, agents named in compat_open_agents need none.",
    },
    "worker": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The LiveKit token a dispatched `hivecall worker` job was given.",
    },
}
SECURITY: dict[Auth, list[dict[str, list[str]]]] = {
    "token": [{"token": []}, {"session": []}],
    "key": [{"key": []}],
    "worker": [{"worker": []}],
    "none": [],
}
_ANSWER_SCHEMAS = {JSON_TYPE: {"type": "object"}}


class Undocumented(LookupError):
    """The app serves an API route the table does not describe, or the other way round."""


def api_routes(routes: Iterable[BaseRoute]) -> list[tuple[str, Route]]:
    """(method, route) for each API operation the app serves (HEAD is GET's twin)."""
    found = []
    for route in routes:
        if not isinstance(route, Route):
            continue
        if route.path != PATH and not route.path.startswith(API_PREFIXES):
            continue
        found += [(m, route) for m in sorted(route.methods or ()) if m != "HEAD"]
    return found


def document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of `routes` (an app's routes), from OPERATIONS."""
    served = api_routes(routes)
    keys = {(m, r.path) for m, r in served}
    missing = sorted(keys - OPERATIONS.keys())
    stale = sorted(OPERATIONS.keys() - keys)
    if missing or stale:
        raise Undocumented(f"routes without an entry: {missing}; entries without a route: {stale}")
    bodies = sorted({op.body for op in OPERATIONS.values() if op.body}, key=lambda m: m.__name__)
    models = [*bodies, *ERRORS.values()]
    schemas, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    refs: Refs = {model: ref for (model, _mode), ref in schemas.items()}
    paths: dict[str, dict[str, Any]] = {}
    for method, route in served:
        op = OPERATIONS[(method, route.path)]
        paths.setdefault(route.path, {})[method.lower()] = _operation(method, route, op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hivecall",
            "version": __version__,
            "description": "The hub's HTTP API: hivecall's own routes under /api/, and the "
            "OpenAI- and Ollama-compatible routes. Every hivecall error is "
            '`{"error": {"code", "message"}}`; OpenAI\'s paths add `type` and `param`, '
            'Ollama\'s answer `{"error": "message"}` as Ollama does.',
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "responses": {
                _error_name(f): {
                    "description": f"an error ({f} shape)",
                    "content": {JSON_TYPE: {"schema": refs[model]}},
                }
                for f, model in ERRORS.items()
            },
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def _error_name(flavour: Flavour) -> str:
    return {"hivecall": "Error", "openai": "OpenAIError", "ollama": "OllamaError"}[flavour]


def _operation(method: str, route: Route, op: Op, refs: Refs) -> dict[str, Any]:
    error = {"$ref": f"#/components/responses/{_error_name(op.flavour)}"}
    out: dict[str, Any] = {
        "operationId": re.sub(r"[^a-z0-9]+", "_", f"{method}{route.path}".lower()).strip("_"),
        "summary": op.summary,
        "tags": [op.tag],
        "security": SECURITY[op.auth],
        "x-hivecall-scopes": list(op.scopes),
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in route.param_convertors
        ]
        + [
            {"name": p.name, "in": p.where, "description": p.description, "schema": p.schema}
            for p in op.params
        ],
        "responses": {
            str(op.status): {
                "description": op.answer,
                "content": {
                    m: {"schema": _ANSWER_SCHEMAS.get(m, {"type": "string"})} for m in op.media
                },
            },
            "4XX": error,
            "5XX": error,
        },
    }
    if op.body is not None or op.body_media != JSON_TYPE:
        schema = refs[op.body] if op.body else {"type": "string"}
        media: dict[str, Any] = {"schema": schema}
        if op.example is not None:
            media["example"] = op.example
        out["requestBody"] = {"required": op.body_required, "content": {op.body_media: media}}
    return out


# Served without a token, as /api/health is: it lists routes and body shapes (what the source
# publishes anyway), never agents, settings, calls or tokens, and clients and test tools can
# discover the API before they have a key. It does describe the security schemes each route needs.
async def openapi_json(request: Request) -> Response:
    state = request.app.state
    if getattr(state, "openapi", None) is None:
        state.openapi = document(request.app.routes)
    return JSONResponse(state.openapi)


routes = [Route(PATH, openapi_json, methods=["GET"])]
