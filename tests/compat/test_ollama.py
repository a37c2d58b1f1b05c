"""The Ollama-compatible API, driven by the real `ollama` client against a running hub."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import ollama
import pytest

from tests.compat.conftest import Served, add_agent, make_key, turns

# What Home Assistant's Ollama integration sends along with a chat.
HA_EXTRAS = {
    "tools": [
        {
            "type": "function",
            "function": {"name": "HassTurnOn", "parameters": {"type": "object", "properties": {}}},
        }
    ],
    "keep_alive": "-1s",
    "options": {"num_ctx": 8192},
    "format": None,
}


@contextlib.asynccontextmanager
async def client(served: Served, key: str | None) -> AsyncIterator[ollama.AsyncClient]:
    headers = {"authorization": f"Bearer {key}"} if key else None
    c = ollama.AsyncClient(host=served.url, headers=headers)
    try:
        yield c
    finally:
        await c.close()


async def test_tags_list_the_agents(served: Served, owner: httpx.AsyncClient, key: str) -> None:
    await add_agent(owner, "helper")
    async with client(served, key) as c:
        listed = await c.list()
        assert [m.model for m in listed.models] == ["echo:latest", "helper:latest"]
        assert all(m.details and m.details.family == "echo" for m in listed.models)
        shown = await c.show("helper")
        assert shown.capabilities == ["completion"]
        assert (await c.ps()).models == []
    async with httpx.AsyncClient(base_url=served.url) as raw:
        version = (await raw.get("/api/version")).json()["version"]
    assert [int(p) for p in version.split(".")]  # clients compare it as numbers


async def test_chat_is_a_recorded_turn(served: Served, owner: httpx.AsyncClient, key: str) -> None:
    messages = [
        {"role": "system", "content": "You are Home Assistant's voice."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "turn on the lights"},
    ]
    async with client(served, key) as c:
        done = await c.chat(model="echo:latest", messages=messages, stream=False, **HA_EXTRAS)
        # The bare name works as well as name:latest.
        plain = await c.chat(model="echo", messages=messages[-1:], stream=False)
    assert done.done is True and done.done_reason == "stop" and done.model == "echo:latest"
    assert done.message.role == "assistant"
    assert "turn on the lights" in (done.message.content or "")
    assert done.total_duration is not None and done.total_duration >= 0
    assert "turn on the lights" in (plain.message.content or "")
    recorded = await turns(owner)
    assert [t["source"] for t in recorded] == ["ollama", "ollama"]
    assert {t["message"] for t in recorded} == {"turn on the lights"}


async def test_chat_streams_ndjson_by_default(
    served: Served, owner: httpx.AsyncClient, key: str
) -> None:
    async with client(served, key) as c:
        parts = [
            part
            async for part in await c.chat(
                model="echo:latest",
                messages=[{"role": "user", "content": "what time is it"}],
                stream=True,
                **HA_EXTRAS,
            )
        ]
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert parts[-1].done_reason == "stop"
    assert "what time is it" in "".join(p.message.content or "" for p in parts)

    # Real Ollama streams unless told not to: no "stream" field means NDJSON.
    async with httpx.AsyncClient(
        base_url=served.url, headers={"authorization": f"Bearer {key}"}
    ) as raw:
        r = await raw.post(
            "/api/chat", json={"model": "echo", "messages": [{"role": "user", "content": "x"}]}
        )
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines[-1]["done"] is True and all(line["done"] is False for line in lines[:-1])
    assert len(await turns(owner)) == 2


async def test_generate(served: Served, owner: httpx.AsyncClient, key: str) -> None:
    async with client(served, key) as c:
        done = await c.generate(model="echo", prompt="say cheese", stream=False, keep_alive="5m")
        parts = [p async for p in await c.generate(model="echo", prompt="again", stream=True)]
    assert done.done is True and "say cheese" in (done.response or "")
    assert parts[-1].done is True
    assert "again" in "".join(p.response or "" for p in parts)
    assert [t["message"] for t in await turns(owner)] == ["again", "say cheese"]


async def test_load_requests_run_no_turn(
    served: Served, owner: httpx.AsyncClient, key: str
) -> None:
    async with client(served, key) as c:
        loaded = await c.chat(model="echo:latest", messages=[], stream=False)
        unloaded = await c.generate(model="echo", prompt="", keep_alive=0, stream=False)
    assert loaded.done is True and loaded.done_reason == "load"
    assert unloaded.done_reason == "unload"
    assert await turns(owner) == []


async def test_errors_are_ollama_shaped(served: Served, owner: httpx.AsyncClient, key: str) -> None:
    for bad in (None, "hca_wrong"):
        async with client(served, bad) as c:
            with pytest.raises(ollama.ResponseError) as caught:
                await c.list()
        assert caught.value.status_code == 401
    async with client(served, key) as c:
        with pytest.raises(ollama.ResponseError) as missing:
            await c.chat(model="nobody", messages=[{"role": "user", "content": "hi"}], stream=False)
        with pytest.raises(ollama.ResponseError) as streaming:
            async for _ in await c.chat(
                model="nobody", messages=[{"role": "user", "content": "hi"}], stream=True
            ):
                pass
    assert missing.value.status_code == 404
    assert missing.value.error == "model 'nobody' does not exist or this key may not use it"
    assert streaming.value.status_code == 404

    json_body = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=served.url, headers=json_body) as raw:
        r = await raw.get("/api/tags")
        assert r.status_code == 401 and set(r.json()) == {"error"}
        assert isinstance(r.json()["error"], str) and "hivecall keys create" in r.json()["error"]
        raw.headers["authorization"] = f"Bearer {key}"
        cases = [
            ("/api/chat", b"{not json", 400),
            ("/api/chat", b'{"messages": []}', 400),
            ("/api/chat", b'{"model": "echo", "messages": [{"role": "tool"}]}', 400),
            ("/api/chat", b'{"model": "echo", "messages": [{"role": "robot"}]}', 400),
            ("/api/generate", b'{"model": "echo", "prompt": 5}', 400),
            ("/api/show", b"{}", 400),
            ("/api/generate", b'{"prompt": "' + b"x" * 1_100_000 + b'"}', 413),
        ]
        for path, content, status in cases:
            r = await raw.post(path, content=content)
            assert r.status_code == status, (path, content[:40], r.text)
            assert set(r.json()) == {"error"} and isinstance(r.json()["error"], str)
    assert await turns(owner) == []


async def test_a_key_limited_to_one_agent(served: Served, owner: httpx.AsyncClient) -> None:
    await add_agent(owner, "private")
    async with client(served, await make_key(owner, "ha", agent="echo")) as c:
        assert [m.model for m in (await c.list()).models] == ["echo:latest"]
        for call in (
            c.chat(model="private", messages=[{"role": "user", "content": "hi"}], stream=False),
            c.generate(model="private:latest", prompt="hi", stream=False),
            c.show("private"),
        ):
            with pytest.raises(ollama.ResponseError) as caught:
                await call
            assert caught.value.status_code == 404
    assert await turns(owner) == []
