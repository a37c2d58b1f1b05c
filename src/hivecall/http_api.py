"""Request and response plumbing shared by every HTTP route of every front door: bodies,
errors, auth. The web routes and the compat API both use it, so it lives in neither."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from hivecall.auth import SESSION_COOKIE, Principal
from hivecall.errors import BadRequest, Forbidden, HivecallError, PayloadTooLarge, Unauthorized

if TYPE_CHECKING:
    # Routes read the hub their app holds; only its type is needed here.
    from hivecall.hub import Hub

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def client_address(request: Request) -> str:
    """The peer's address: the socket's, or a trusted proxy's client (`trusted_proxies`)."""
    return request.client.host if request.client else "unknown"


JSON_TYPE = "application/json"


def is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == JSON_TYPE


async def read_json(request: Request, model: type[M]) -> M:
    """Parse the body into `model`, or raise a clear 4xx error (nothing is changed).

    The body must say it is JSON: a page on another origin can send text/plain or form bodies
    without asking the hub first (no CORS preflight), but never application/json.
    """
    limit = hub_of(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    if not is_json(request):
        raise HivecallError(
            f"send the body as JSON with Content-Type: {JSON_TYPE}",
            code="unsupported_media_type",
            status=415,
        )
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest("the request body is not valid JSON", code="malformed_json") from e
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object", code="malformed_json")
    try:
        # NUL (U+0000) is dropped: no store keeps it in text (PostgreSQL refuses it), and it is
        # invisible anyway, as the routes' name cleaning already treats it.
        return model.model_validate(_without_nul(data))
    except ValidationError as e:
        raise BadRequest(_describe(e), code="invalid_request") from e


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _describe(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "is not a known field"
        elif err["type"] == "missing":
            msg = "is required"
        parts.append(f"{where}: {msg}" if not msg.startswith(f"{where}:") else msg)
    return "; ".join(parts)


def limit_of(request: Request, *, most: int) -> int:
    """A list route's `?limit=` (50 unless given), kept within 1..`most`."""
    try:
        return min(max(int(request.query_params.get("limit", "50")), 1), most)
    except ValueError as e:
        raise BadRequest("limit must be a number", code="invalid_request") from e


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


# Server-sent events: never cached, never held back by a buffering proxy (nginx).
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def event_stream(frames: AsyncIterator[str] | AsyncIterator[bytes]) -> StreamingResponse:
    """A text/event-stream response of already framed server-sent events."""
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def on_hivecall_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HivecallError)
    response = error_response(exc.status, exc.code, exc.message)
    response.headers.update(exc.headers())
    return response


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def http_error_of(exc: HTTPException) -> tuple[str, str]:
    """The code and message of Starlette's own errors (unknown route, wrong method)."""
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = "no such route" if exc.status_code == 404 else str(exc.detail)
    return code, message


async def on_http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, *http_error_of(exc))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    response = error_response(500, "internal_error", "the hub hit an unexpected error")
    # This response is sent outside the app's middleware: give it the boundary's headers here.
    response.headers.update(getattr(request.app.state, "security_headers", {}))
    return response


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(SESSION_COOKIE)


async def authed(request: Request, scope: str = "admin", *more: str) -> Principal:
    """The caller's principal if its token allows `scope` (or any of `more`); 401/403 otherwise."""
    value = bearer(request)
    if not value:
        raise Unauthorized("sign in: send Authorization: Bearer <token> or open the login URL")
    principal = await hub_of(request).tokens.authenticate(value, source=client_address(request))
    if principal is None:
        raise Unauthorized("the token is not valid (wrong, expired or revoked)")
    if not any(principal.can(s) for s in (scope, *more)):
        raise Forbidden(f"this token may not do that (needs {scope})")
    return principal
