"""A local OpenAI-compatible chat server for tests: real HTTP on 127.0.0.1, real wire format.

It answers `GET …/models` and `POST …/chat/completions` (plain `chat.completion` or SSE
`chat.completion.chunk` events ending in `data: [DONE]`) under any path prefix, so a base URL
such as `http://127.0.0.1:PORT/v1` works as it does with OpenAI, Ollama or vLLM. Every request
is recorded (method, path, headers, JSON body). The answer is derived from the request
("You said: <last user message>", streamed a word at a time) and each test can script it:
another answer, an HTTP error in OpenAI's error shape, or a delay before the answer or between
chunks.

The server is uvicorn serving a Starlette app in a thread of its own with its own event loop
(tests/standins/threaded.py), so the code under test reaches it over a real socket exactly as
it would reach a model server.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.standins.threaded import ServerThread

# OpenAI's error bodies for the statuses tests script most often.
ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: (
        "You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    429: (
        "Rate limit reached for requests. Please try again in 1ms.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


@dataclass(frozen=True)
class Recorded:
    """One request the stand-in received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # the parsed JSON body, or None

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class Failure:
    status: int
    message: str
    type: str
    code: str | None
    times: int | None  # None: every request until cleared
    headers: dict[str, str] = field(default_factory=dict)


def last_user_text(body: Any) -> str:
    """The text of the last user message of a chat request (string or content parts)."""
    for m in reversed(body.get("messages") or []):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, list):
            return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return str(content or "")
    return ""


def default_answer(body: Any) -> str:
    return f"You said: {last_user_text(body)}"


def pieces(text: str) -> list[str]:
    """Split an answer into stream chunks: one word (with its trailing space) each."""
    return re.findall(r"\S+\s*|\s+", text) or [text]


class OpenAIStandin:
    """The server and its script. Use `start()`/`close()` or `with OpenAIStandin() as s:`."""

    def __init__(self, *, models: tuple[str, ...] = ("test-model",)) -> None:
        self.models = models
        self.requests: list[Recorded] = []
        self.answer: Callable[[Any], str] = default_answer
        self.delay = 0.0  # seconds before the response starts
        self.chunk_delay = 0.0  # seconds between streamed chunks
        self._failure: Failure | None = None
        self._closing = False
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST"])]
        )
        self._server = ServerThread(self.app, name="openai-standin")

    # -- script -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def origin(self) -> str:
        return self._server.origin

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def reply_with(self, answer: str | Callable[[Any], str]) -> None:
        """Answer every chat request with this text, or with what the function makes of the body."""
        self.answer = answer if callable(answer) else (lambda _body: answer)

    def fail(
        self,
        status: int,
        *,
        message: str | None = None,
        type: str | None = None,
        code: str | None = None,
        times: int | None = None,
        retry_after_ms: int | None = 1,
    ) -> None:
        """Answer the next `times` requests (all when None) with an OpenAI-shaped HTTP error.

        `retry-after-ms` defaults to 1 ms so the SDK's single retry does not sleep.
        """
        default = ERRORS.get(status, (f"HTTP {status}", "server_error", None))
        headers = {} if retry_after_ms is None else {"retry-after-ms": str(retry_after_ms)}
        self._failure = Failure(
            status=status,
            message=message if message is not None else default[0],
            type=type if type is not None else default[1],
            code=code if code is not None else default[2],
            times=times,
            headers=headers,
        )

    def clear(self) -> None:
        """Forget the script (failures, delays, answer); keep the recorded requests."""
        self._failure = None
        self.delay = self.chunk_delay = 0.0
        self.answer = default_answer

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> OpenAIStandin:
        self._server.start(timeout=10)
        return self

    def close(self) -> None:
        self._closing = True  # ends any scripted delay at once
        self._server.close()

    def __enter__(self) -> OpenAIStandin:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the server -----------------------------------------------------------------------------

    async def _pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._closing and (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.02))

    def _take_failure(self) -> Failure | None:
        with self._lock:
            f = self._failure
            if f is None:
                return None
            if f.times is not None:
                f.times -= 1
                if f.times <= 0:
                    self._failure = None
            return f

    async def _dispatch(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        path = "/" + request.path_params["path"]
        self.requests.append(
            Recorded(
                request.method,
                path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        if self.delay:
            await self._pause(self.delay)
        if failure := self._take_failure():
            message = failure.message
            if failure.code == "invalid_api_key":
                # Like OpenAI, echo a masked form of the key that was refused.
                key = request.headers.get("authorization", "").removeprefix("Bearer ")
                message = f"Incorrect API key provided: {key[:3]}{'*' * 20}{key[-4:]}. " + message
            return JSONResponse(
                {
                    "error": {
                        "message": message,
                        "type": failure.type,
                        "param": None,
                        "code": failure.code,
                    }
                },
                status_code=failure.status,
                headers=failure.headers,
            )
        if request.method == "GET" and path.endswith("/models"):
            return JSONResponse(
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "standin"}
                        for m in self.models
                    ],
                }
            )
        if request.method == "POST" and path.endswith("/chat/completions"):
            return self._chat(body)
        return JSONResponse(
            {
                "error": {
                    "message": f"Unknown request URL: {request.method} {path}.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "unknown_url",
                }
            },
            status_code=404,
        )

    def _chat(self, body: Any) -> Response:
        if not isinstance(body, dict) or not body.get("messages") or not body.get("model"):
            return JSONResponse(
                {
                    "error": {
                        "message": "'messages' and 'model' are required properties",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                status_code=400,
            )
        model = str(body["model"])
        if model not in self.models:
            message, kind, code = ERRORS[404]
            return JSONResponse(
                {"error": {"message": message, "type": kind, "param": "model", "code": code}},
                status_code=404,
            )
        text = self.answer(body)
        cid = f"chatcmpl-standin{len(self.requests)}"
        created = int(time.time())
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                self._sse(cid, created, model, text, include_usage),
                media_type="text/event-stream",
            )
        return JSONResponse(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(body, text),
            }
        )

    async def _sse(
        self, cid: str, created: int, model: str, text: str, include_usage: bool
    ) -> AsyncIterator[str]:
        def event(delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
            data = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
                **extra,
            }
            return f"data: {json.dumps(data)}\n\n"

        yield event({"role": "assistant", "content": ""}, None)
        for piece in pieces(text):
            if self.chunk_delay:
                await self._pause(self.chunk_delay)
            yield event({"content": piece}, None)
        yield event({}, "stop")
        if include_usage:
            usage = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
            yield f"data: {json.dumps(usage)}\n\n"
        yield "data: [DONE]\n\n"


def _usage(body: Any, text: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    completion = len(text.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def serve() -> Iterator[OpenAIStandin]:
    """A started stand-in, closed afterwards (the body of a pytest fixture)."""
    with OpenAIStandin() as standin:
        yield standin
