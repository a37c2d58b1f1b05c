"""OpenAI Realtime (GA) wire shapes: ids, the session object, HTTP and event errors.

Every server event the stand-in sends parses as the `openai` SDK's `RealtimeServerEvent`
(tests/realtime_standin checks that), and the client-secret answer as its
`ClientSecretCreateResponse`.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any

from starlette.responses import JSONResponse

from tests.standins.openai_server import ERRORS

CLIENT_EVENTS = frozenset(
    {
        "session.update",
        "conversation.item.create",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "input_audio_buffer.append",
        "input_audio_buffer.clear",
        "input_audio_buffer.commit",
        "output_audio_buffer.clear",
        "response.create",
        "response.cancel",
    }
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def default_session() -> dict[str, Any]:
    """What OpenAI fills in for a realtime session the request leaves out."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "model": "gpt-realtime",
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "include": None,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 200,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "alloy",
                "speed": 1,
            },
        },
    }


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` over `base`: objects merge key by key; anything else (null too) replaces."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def error_body(
    message: str, type: str = "invalid_request_error", code: str | None = None, param: Any = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def http_error(
    status: int,
    message: str | None = None,
    *,
    code: str | None = None,
    type: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    default = ERRORS.get(status, (f"HTTP {status}", "server_error", None))
    return JSONResponse(
        error_body(
            message if message is not None else default[0],
            type if type is not None else default[1],
            code if code is not None else default[2],
            param,
        ),
        status_code=status,
        headers=headers,
    )


def masked(key: str) -> str:
    return f"{key[:3]}{'*' * 20}{key[-4:]}"


def bad_key(key: str | None) -> JSONResponse:
    if not key:
        return http_error(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code=None,
        )
    return http_error(
        401,
        f"Incorrect API key provided: {masked(key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def bearer(authorization: str | None) -> str | None:
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    return authorization[7:].strip() or None


def error_event(
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    event_id: str | None = None,
    type: str = "invalid_request_error",
) -> dict[str, Any]:
    """A server `error` event; `event_id` inside names the client event that caused it."""
    return {
        "type": "error",
        "event_id": new_id("event"),
        "error": {
            "type": type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    }
