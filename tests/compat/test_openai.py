"""The OpenAI-compatible API, driven by the real `openai` SDK against a running hub."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.compat.conftest import Served, add_agent, make_key, turns

ERROR_KEYS = {"code", "message", "type", "param"}


def client(served: Served, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{served.url}/v1", api_key=key, max_retries=0)


async def test_models_are_the_agents(served: Served, owner: httpx.AsyncClient, key: str) -> None:
    await add_agent(owner, "helper")
    async with client(served, key) as c:
        models = [m async for m in c.models.list()]
        assert [m.id for m in models] == ["echo", "helper"]
        assert all(m.object == "model" and m.owned_by == "hivecall" for m in models)
        assert (await c.models.retrieve("helper")).id == "helper"
        with pytest.raises(openai.NotFoundError):
            await c.models.retrieve("nobody")


async def test_a_chat_completion_is_a_recorded_turn(
    served: Served, owner: httpx.AsyncClient, key: str
) -> None:
    async with client(served, key) as c:
        done = await c.chat.completions.create(
            model="echo",
            messages=[
                {"role": "system", "content": "You are a voice assistant in a kitchen."},
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "Hi! What can I do?"},
                {"role": "user", "content": [{"type": "text", "text": "is the oven on?"}]},
            ],
            # What real clients send along; hivecall accepts and ignores it.
            temperature=0.2,
            max_tokens=50,
            user="kitchen",
            tools=[
                {
                    "type": "function",
                    "function": {"name": "turn_on", "parameters": {"type": "object"}},
                }
            ],
        )
    assert done.object == "chat.completion" and done.model == "echo"
    choice = done.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert "is the oven on?" in (choice.message.content or "")
    [turn] = await turns(owner)
    assert done.id == f"chatcmpl-{turn['id']}"
    assert turn | {"source": "openai", "status": "done", "message": "is the oven on?"} == turn


async def test_streaming_is_openai_chunks_ending_in_done(
    served: Served, owner: httpx.AsyncClient, key: str
) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "stream it"}]}
    async with client(served, key) as c:
        stream = await c.chat.completions.create(**body, stream=True)  # type: ignore[call-overload]
        chunks = [chunk async for chunk in stream]
    assert all(ch.object == "chat.completion.chunk" and ch.model == "echo" for ch in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(ch.choices[0].finish_reason is None for ch in chunks[:-1])
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert "stream it" in text

    # The raw wire: SSE `data:` lines, the last one `[DONE]`.
    async with (
        httpx.AsyncClient(base_url=served.url) as raw,
        raw.stream(
            "POST",
            "/v1/chat/completions",
            json={**body, "stream": True},
            headers={"authorization": f"Bearer {key}"},
        ) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line async for line in r.aiter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    last = json.loads(lines[-2].removeprefix("data: "))
    assert set(last) == {"id", "object", "created", "model", "choices"}
    assert [t["source"] for t in await turns(owner)] == ["openai", "openai"]


async def test_without_a_valid_key_it_is_401_in_openai_shape(served: Served) -> None:
    # The SDK always sends some key; a wrong one is refused like none at all.
    for key in ("hca_not-a-key", "sk-0123456789"):
        async with client(served, key) as c:
            with pytest.raises(openai.AuthenticationError) as caught:
                await c.chat.completions.create(
                    model="echo", messages=[{"role": "user", "content": "hi"}]
                )
        assert caught.value.status_code == 401
        assert isinstance(caught.value.body, dict) and set(caught.value.body) == ERROR_KEYS
        assert caught.value.body["code"] == "unauthorized"
    async with httpx.AsyncClient(base_url=served.url) as raw:
        r = await raw.get("/v1/models")
    assert r.status_code == 401
    assert r.json()["error"] | {"type": "authentication_error", "param": None} == r.json()["error"]
    assert "hivecall keys create" in r.json()["error"]["message"]


async def test_bad_requests_are_openai_errors_and_change_nothing(
    served: Served, owner: httpx.AsyncClient, key: str
) -> None:
    async with client(served, key) as c:
        with pytest.raises(openai.NotFoundError) as missing:
            await c.chat.completions.create(
                model="nobody", messages=[{"role": "user", "content": "hi"}]
            )
        assert missing.value.body == {
            "code": "agent_not_found",
            "message": "model 'nobody' does not exist or this key may not use it",
            "type": "invalid_request_error",
            "param": "model",
        }
        with pytest.raises(openai.BadRequestError) as last_not_user:
            await c.chat.completions.create(
                model="echo", messages=[{"role": "assistant", "content": "hi"}]
            )
        assert isinstance(last_not_user.value.body, dict)
        assert last_not_user.value.body["code"] == "invalid_request"
        with pytest.raises(openai.BadRequestError) as empty:
            await c.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "   "}]
            )
        assert isinstance(empty.value.body, dict) and empty.value.body["code"] == "empty_message"

    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=served.url, headers=headers) as raw:
        cases = [
            (b"{not json", 400, "malformed_json"),
            (b'{"model": "echo"}', 400, "invalid_request"),
            (b'{"model": "echo", "messages": "hi"}', 400, "invalid_request"),
            (b'{"messages": [' + b" " * 1_100_000 + b"]}", 413, "payload_too_large"),
        ]
        for content, status, code in cases:
            r = await raw.post("/v1/chat/completions", content=content)
            assert r.status_code == status, r.text
            assert set(r.json()["error"]) == ERROR_KEYS and r.json()["error"]["code"] == code
    assert await turns(owner) == []


async def test_a_key_limited_to_one_agent_reaches_no_other(
    served: Served, owner: httpx.AsyncClient
) -> None:
    await add_agent(owner, "private")
    limited = await make_key(owner, "kitchen", agent="echo")
    async with client(served, limited) as c:
        assert [m.id async for m in c.models.list()] == ["echo"]
        with pytest.raises(openai.NotFoundError):
            await c.chat.completions.create(
                model="private", messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(openai.NotFoundError):
            await c.models.retrieve("private")
        done = await c.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hi"}]
        )
        assert "hi" in (done.choices[0].message.content or "")
    # An API key is for the compat API only: hivecall's own API refuses it.
    r = await owner.get("/api/agents", headers={"authorization": f"Bearer {limited}"})
    assert r.status_code == 403
    r = await owner.post(
        "/api/phone",
        json={"agent_id": "private", "message": "hi"},
        headers={"authorization": f"Bearer {limited}"},
    )
    assert r.status_code == 403
    assert [t["message"] for t in await turns(owner)] == ["hi"]


async def test_a_revoked_key_fails_at_once(served: Served, owner: httpx.AsyncClient) -> None:
    value = await make_key(owner, "short-lived")
    async with client(served, value) as c:
        assert [m.id async for m in c.models.list()] == ["echo"]  # verified, and cached
        r = await owner.delete("/api/keys/short-lived")
        assert r.status_code == 200 and r.json()["revoked"]["name"] == "short-lived"
        with pytest.raises(openai.AuthenticationError):
            await c.models.list()
    assert (await owner.delete("/api/keys/short-lived")).status_code == 404


async def test_a_client_keeps_its_turns_in_one_session(
    served: Served, owner: httpx.AsyncClient, key: str
) -> None:
    async with client(served, key) as c:
        for text in ("one", "two"):
            await c.chat.completions.create(
                model="echo",
                messages=[{"role": "user", "content": text}],
                extra_headers={"x-hivecall-session-id": "kitchen-1"},
            )
        await c.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.BadRequestError):
            await c.chat.completions.create(
                model="echo",
                messages=[{"role": "user", "content": "y"}],
                extra_headers={"x-hivecall-session-id": "not a session!"},
            )
    recorded = {t["message"]: t["session_id"] for t in await turns(owner)}
    assert recorded["one"] == recorded["two"] == "kitchen-1" != recorded["x"]
    assert "y" not in recorded


async def test_the_owner_token_is_a_key_for_every_agent(served: Served) -> None:
    from tests.conftest import OWNER

    async with client(served, OWNER) as c:
        assert [m.id async for m in c.models.list()] == ["echo"]
