"""Errors in the shape each client family expects.

hivecall's own error body is `{"error": {"code", "message"}}`. OpenAI clients read
`{"error": {"message", "type", "param", "code"}}`: that is ours plus `type` and `param`, so one
body serves both. Ollama clients read `{"error": "message"}`. The HTTP status is the same in
every shape, and messages never carry keys or transcripts.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hivecall.errors import HivecallError, NotFound
from hivecall.http_api import http_error_of

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]

_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error"}


class UnknownModel(NotFound):
    """The model (an agent's name) does not exist, or this caller may not use it.

    The two cases read alike on purpose: a key limited to one agent learns nothing about the
    others.
    """

    code = "agent_not_found"
    param = "model"

    def __init__(self, model: str) -> None:
        super().__init__(f"model {model!r} does not exist or this key may not use it")


def openai_error(status: int, code: str, message: str, param: str | None = None) -> JSONResponse:
    kind = "server_error" if status >= 500 else _OPENAI_TYPES.get(status, "invalid_request_error")
    body = {"error": {"code": code, "message": message, "type": kind, "param": param}}
    return JSONResponse(body, status_code=status)


def ollama_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _render(flavour: str, status: int, code: str, message: str, param: str | None) -> Response:
    if flavour == "openai":
        return openai_error(status, code, message, param)
    return ollama_error(status, message)


def shaped(flavour: str) -> Callable[[Endpoint], Endpoint]:
    """Turn every error an endpoint raises into `flavour`'s shape ("openai" or "ollama")."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except HivecallError as e:
                response = _render(flavour, e.status, e.code, e.message, getattr(e, "param", None))
                response.headers.update(e.headers())  # Retry-After on 429s
                return response
            except Exception:
                log.exception("compat request failed", extra={"path": request.url.path})
                return _render(
                    flavour, 500, "internal_error", "the hub hit an unexpected error", None
                )

        return run

    return wrap


def flavour_of(path: str) -> str:
    """OpenAI paths live under /v1; everything else on the compat listener is Ollama's."""
    return "openai" if path == "/v1" or path.startswith("/v1/") else "ollama"


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and wrong methods on the compat listener, in the path's flavour."""
    assert isinstance(exc, HTTPException)
    code, message = http_error_of(exc)
    return _render(flavour_of(request.url.path), exc.status_code, code, message, None)
