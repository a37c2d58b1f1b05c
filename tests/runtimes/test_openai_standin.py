"""The stand-in speaks OpenAI's wire format well enough for the real `openai` SDK.

These checks pin the stand-in itself, so a failure in test_openai_chat.py points at the hub and
not at the fake server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from tests.standins.openai_server import OpenAIStandin, pieces


@pytest.fixture
async def sdk(openai_standin: OpenAIStandin) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=openai_standin.base_url, api_key="sk-standin-test", max_retries=1, timeout=5
    ) as c:
        yield c


async def test_models_and_plain_completion(
    sdk: openai.AsyncOpenAI, openai_standin: OpenAIStandin
) -> None:
    models = await sdk.models.list()
    assert [m.id for m in models.data] == ["test-model"]

    done = await sdk.chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "hello there"}]
    )
    assert done.object == "chat.completion"
    assert done.choices[0].message.role == "assistant"
    assert done.choices[0].message.content == "You said: hello there"
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.completion_tokens == 4

    models_req, chat_req = openai_standin.requests
    assert (models_req.method, models_req.path) == ("GET", "/v1/models")
    assert (chat_req.method, chat_req.path) == ("POST", "/v1/chat/completions")
    assert chat_req.authorization == "Bearer sk-standin-test"
    assert chat_req.body["messages"] == [{"role": "user", "content": "hello there"}]


async def test_streamed_completion(sdk: openai.AsyncOpenAI, openai_standin: OpenAIStandin) -> None:
    stream = await sdk.chat.completions.create(
        model="test-model",
        messages=[{"role": "user", "content": [{"type": "text", "text": "stream me please"}]}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: stream me please"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert chunks[-1].usage is not None and not chunks[-1].choices
    assert openai_standin.chat_requests[0].body["stream"] is True


async def test_raw_sse_ends_with_done(openai_standin: OpenAIStandin) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.post(
            f"{openai_standin.base_url}/chat/completions",
            json={
                "model": "test-model",
                "stream": True,
                "messages": [{"role": "user", "content": "one two"}],
            },
        )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in r.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    contents = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert contents == pieces("You said: one two") == ["You ", "said: ", "one ", "two"]
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


@pytest.mark.parametrize(
    ("status", "error", "code", "attempts"),
    [
        (401, openai.AuthenticationError, "invalid_api_key", 1),
        (429, openai.RateLimitError, "rate_limit_exceeded", 2),
        (500, openai.InternalServerError, None, 2),
    ],
)
async def test_scripted_errors_have_openai_shape(
    sdk: openai.AsyncOpenAI,
    openai_standin: OpenAIStandin,
    status: int,
    error: type[openai.APIStatusError],
    code: str | None,
    attempts: int,
) -> None:
    openai_standin.fail(status)
    with pytest.raises(error) as caught:
        await sdk.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == status
    assert caught.value.code == code
    assert isinstance(caught.value.body, dict) and caught.value.body["message"]
    if status == 401:  # OpenAI echoes the refused key, masked but for its last four characters
        assert "Incorrect API key provided: sk-" in caught.value.body["message"]
        assert "*test." in caught.value.body["message"]
    # The SDK retries 429 and 5xx once (max_retries=1), never 401.
    assert len(openai_standin.chat_requests) == attempts


async def test_failure_for_a_number_of_requests_then_recovery(
    sdk: openai.AsyncOpenAI, openai_standin: OpenAIStandin
) -> None:
    openai_standin.fail(500, times=1)
    done = await sdk.chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "again"}]
    )
    assert done.choices[0].message.content == "You said: again"
    assert len(openai_standin.chat_requests) == 2


async def test_unknown_model_and_scripted_answer(
    sdk: openai.AsyncOpenAI, openai_standin: OpenAIStandin
) -> None:
    with pytest.raises(openai.NotFoundError):
        await sdk.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "hi"}]
        )
    openai_standin.reply_with(lambda body: f"{len(body['messages'])} messages")
    done = await sdk.chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "hi"}]
    )
    assert done.choices[0].message.content == "1 messages"


async def test_delay_trips_the_client_timeout(openai_standin: OpenAIStandin) -> None:
    openai_standin.delay = 5
    async with openai.AsyncOpenAI(
        base_url=openai_standin.base_url, api_key="k", max_retries=0, timeout=0.3
    ) as sdk:
        with pytest.raises(openai.APITimeoutError):
            await sdk.chat.completions.create(
                model="test-model", messages=[{"role": "user", "content": "hi"}]
            )
