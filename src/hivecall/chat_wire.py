"""OpenAI's chat-completion wire format, as hivecall speaks it on every route that uses it.

The bridge's `/api/chat/agent-runtime` and the compat API's `/v1/chat/completions` take the
same messages and answer in the same shapes: a `chat.completion`, or with `stream: true` SSE
`chat.completion.chunk`s (the first delta carries the role, the last the `finish_reason`, then
`data: [DONE]`). A turn that fails still answers, with the spoken apology as the content.
hivecall's own route adds a `hivecall` field (turn, session, status); the compat API does not.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hivecall.runtimes import ChatMessage
from hivecall.turns.handle import TurnHandle, TurnResult

# A session id a client names (in a body or a header): turns with one session id are one session.
SESSION_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
_SESSION_ID = re.compile(SESSION_ID)


def is_session_id(value: str) -> bool:
    return _SESSION_ID.match(value) is not None


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


# The last message is the turn's request; the ones before it are its history.
LAST_NOT_USER = "the last message must have role 'user'"


def _ends_with_user(v: list[MessageIn]) -> list[MessageIn]:
    if v[-1].role != "user":
        raise ValueError(LAST_NOT_USER)
    return v


ChatMessages = Annotated[
    list[MessageIn], Field(min_length=1, max_length=500), AfterValidator(_ends_with_user)
]


class Said(Protocol):
    """One message of a conversation, in OpenAI's shape or Ollama's."""

    @property
    def role(self) -> str: ...

    def text(self) -> str: ...


def history_of(messages: Sequence[Said]) -> tuple[ChatMessage, ...]:
    """The conversation before the last message, as the bridge's history (user/assistant)."""
    return tuple(
        ChatMessage("assistant" if m.role == "assistant" else "user", m.text())
        for m in messages[:-1]
        if m.role in ("user", "assistant")
    )


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
