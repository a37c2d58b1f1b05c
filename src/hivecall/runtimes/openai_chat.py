"""The openai_chat runtime: any OpenAI-compatible chat endpoint (OpenAI, Ollama, vLLM, llama.cpp).

The agent's context (machine, workspace, repo, memory, recent work) becomes the system message;
the answer streams back as it is generated.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import openai

from hivecall.agents.context import render_context
from hivecall.errors import BadRequest, RuntimeFailure
from hivecall.runtimes.base import TurnInput, timeout_failure

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

    from hivecall.agents.records import AgentRecord

SYSTEM = (
    "You are {name}, an agent reached through hivecall. People often talk to you out loud: answer "
    "in plain sentences without markdown unless asked for code."
)


class OpenAIChatRuntime:
    exclusive = False
    wants_context = True
    resumes_sessions = False  # the bridge replays the session's history instead
    runs_command = False

    @staticmethod
    def check(fields: Mapping[str, Any], search_path: str | None) -> None:
        if not (fields.get("base_url") and fields.get("model")):
            raise BadRequest(
                "an openai_chat agent needs --base-url and --model", code="invalid_agent"
            )

    @staticmethod
    def problem(agent: AgentRecord, search_path: str | None) -> str | None:
        return None

    def __init__(self, *, default_api_key: Callable[[], str] = lambda: "") -> None:
        # A callable: the user may replace the hub's key in the dashboard while it runs.
        self._default_key = default_api_key
        self._clients: dict[tuple[str, str], openai.AsyncOpenAI] = {}

    def _client(self, base_url: str, api_key: str) -> openai.AsyncOpenAI:
        key = (base_url, api_key)
        if key not in self._clients:
            # Local servers (Ollama, llama.cpp) take any key; the SDK insists on one.
            self._clients[key] = openai.AsyncOpenAI(
                base_url=base_url, api_key=api_key or "not-needed", max_retries=1
            )
        return self._clients[key]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def stream(self, turn: TurnInput) -> AsyncIterator[str]:
        agent = turn.agent
        if not agent.base_url or not agent.model:
            raise RuntimeFailure(
                f"agent {agent.name!r} has no base URL or model",
                code="runtime_misconfigured",
                spoken=f"Sorry, {agent.name} is missing its model settings.",
            )
        system = SYSTEM.format(name=agent.name)
        if turn.context is not None:
            system += "\n\n" + render_context(turn.context)
        messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}]
        for m in turn.history:
            if m.role == "assistant":
                messages.append({"role": "assistant", "content": m.content})
            else:
                messages.append({"role": "user", "content": m.content})
        messages.append({"role": "user", "content": turn.message})
        # The hub's own key goes to OpenAI only, never to a URL that merely mentions its host.
        key = agent.api_key or (self._default_key() if _is_openai(agent.base_url) else "")
        client = self._client(agent.base_url, key)
        host = urlsplit(agent.base_url).netloc.rpartition("@")[2]  # never credentials
        # turn.timeout bounds the whole turn (the SDK's timeout is per read and per attempt).
        # The deadline wraps each await only, never a yield.
        deadline = asyncio.get_running_loop().time() + turn.timeout
        try:
            async with asyncio.timeout_at(deadline):
                stream: Any = await client.chat.completions.create(
                    model=agent.model, messages=messages, stream=True, timeout=turn.timeout
                )
            try:
                chunks = aiter(stream)
                while True:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(chunks, None)
                    if chunk is None:
                        break
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
            finally:
                await stream.close()
        except (TimeoutError, openai.APITimeoutError) as e:
            raise timeout_failure(agent.name, turn.timeout) from e
        except openai.APIConnectionError as e:
            raise RuntimeFailure(
                f"could not reach {host}",
                code="runtime_unreachable",
                spoken=f"Sorry, I could not reach {agent.name}'s model server.",
            ) from e
        except openai.AuthenticationError as e:
            raise RuntimeFailure(
                f"{host} refused the API key",
                code="runtime_auth_failed",
                spoken=f"Sorry, {agent.name}'s model server refused its key.",
            ) from e
        except openai.RateLimitError as e:
            raise RuntimeFailure(
                f"{host} is rate limiting",
                code="runtime_rate_limited",
                spoken=f"Sorry, {agent.name}'s model server is busy. Try again in a moment.",
            ) from e
        except openai.APIStatusError as e:
            raise RuntimeFailure(
                f"{host} answered HTTP {e.status_code}",
                code="runtime_failed",
                spoken=f"Sorry, {agent.name}'s model server returned an error.",
            ) from e


def _is_openai(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "api.openai.com" or host.endswith(".api.openai.com")
