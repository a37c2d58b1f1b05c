"""The openai_chat runtime end to end: hub API → bridge → real `openai` SDK → local server.

The model server is tests/standins/openai_server.py on 127.0.0.1, so every request crosses a
real socket in OpenAI's wire format; the hub runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from starlette.applications import Starlette

from tests.conftest import OWNER
from tests.runtimes.conftest import HUB_OPENAI_KEY
from tests.standins.openai_server import OpenAIStandin, pieces
from tests.standins.threaded import free_port

AGENT = "modelbot"
MACHINE = "test-box"
AGENT_KEY = "sk-agent-secret-key-9f8e7d6c5b4aXYZW"


async def make_agent(
    client: httpx.AsyncClient, base_url: str, *, name: str = AGENT, **extra: Any
) -> dict[str, Any]:
    r = await client.post(
        "/api/agents",
        json={
            "name": name,
            "runtime": "openai_chat",
            "base_url": base_url,
            "model": "test-model",
            "machine": MACHINE,
            "description": "Keeps an eye on the build board.",
            **extra,
        },
    )
    assert r.status_code == 201, r.text
    agent: dict[str, Any] = r.json()["agent"]
    return agent


async def phone(client: httpx.AsyncClient, agent_id: str, message: str, **extra: Any) -> Any:
    r = await client.post("/api/phone", json={"agent_id": agent_id, "message": message, **extra})
    assert r.status_code == 200, r.text
    return r.json()


async def turn(client: httpx.AsyncClient, turn_id: str) -> Any:
    r = await client.get(f"/api/turns/{turn_id}")
    assert r.status_code == 200, r.text
    return r.json()["turn"]


def sse_events(text: str) -> list[str]:
    """The data payloads of an SSE body, in order."""
    events = []
    for block in text.split("\n\n"):
        data = [
            line.removeprefix("data: ") for line in block.splitlines() if line.startswith("data: ")
        ]
        if data:
            events.append("\n".join(data))
    return events


def assert_sentence(text: str) -> None:
    assert text and text[0].isupper() and text.rstrip().endswith((".", "!", "?")), text
    assert "{" not in text and "Traceback" not in text


# -- a good turn ------------------------------------------------------------------------------


async def test_phone_turn_goes_through_the_model_server(
    client: httpx.AsyncClient, openai_standin: OpenAIStandin
) -> None:
    agent = await make_agent(client, openai_standin.base_url)
    assert agent["runtime"] == "openai_chat" and agent["base_url"] == openai_standin.base_url

    body = await phone(client, agent["id"], "What is on the build board today?")
    answer = "You said: What is on the build board today?"
    assert body["ok"] is True and body["status"] == "done"
    assert answer in body["text"]
    assert "error" not in body

    t = await turn(client, body["turn_id"])
    assert t["status"] == "done" and t["error_code"] is None
    assert t["reply"] == answer
    assert t["spoken"] == body["text"]
    assert t["source"] == "phone" and t["agent_id"] == agent["id"]
    assert t["session_id"] == body["session_id"]
    assert t["finished_at"] is not None and t["duration_ms"] > 0

    [req] = openai_standin.chat_requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.body["model"] == "test-model"
    assert req.body["stream"] is True
    messages = req.body["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    system = messages[0]["content"]
    assert f"You are {AGENT}" in system
    assert f"Agent: {AGENT} (runtime: openai_chat) on machine {MACHINE}." in system
    assert "Keeps an eye on the build board." in system
    assert messages[-1] == {"role": "user", "content": "What is on the build board today?"}
    # No key configured and not OpenAI: the SDK's placeholder, never the hub's own key.
    assert req.authorization == "Bearer not-needed"


async def test_chat_agent_runtime_plain(
    client: httpx.AsyncClient, openai_standin: OpenAIStandin
) -> None:
    agent = await make_agent(client, openai_standin.base_url)
    r = await client.post(
        "/api/chat/agent-runtime",
        json={
            "agent_id": AGENT,
            "messages": [
                {"role": "user", "content": "Remember the number 42."},
                {"role": "assistant", "content": "Noted: 42."},
                {"role": "user", "content": [{"type": "text", "text": "Which number was it?"}]},
            ],
        },
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["object"] == "chat.completion"
    assert done["id"] == f"chatcmpl-{done['hivecall']['turn_id']}"
    assert done["model"] == AGENT
    assert done["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "You said: Which number was it?"},
            "finish_reason": "stop",
        }
    ]
    assert done["hivecall"]["status"] == "done"
    # The real SDK's model accepts it as a chat completion.
    assert ChatCompletion.model_validate(done).choices[0].message.content.startswith("You said")

    t = await turn(client, done["hivecall"]["turn_id"])
    assert (t["status"], t["source"], t["agent_id"]) == ("done", "chat", agent["id"])
    assert t["reply"] == "You said: Which number was it?"

    # The caller's own history is what the model sees, after the hub's system message.
    [req] = openai_standin.chat_requests
    assert req.body["messages"][1:] == [
        {"role": "user", "content": "Remember the number 42."},
        {"role": "assistant", "content": "Noted: 42."},
        {"role": "user", "content": "Which number was it?"},
    ]
    assert req.body["messages"][0]["role"] == "system"


async def test_chat_agent_runtime_streams_sse(
    client: httpx.AsyncClient, openai_standin: OpenAIStandin
) -> None:
    await make_agent(client, openai_standin.base_url)
    message = "Tell me how the deploy went."
    answer = f"You said: {message}"
    r = await client.post(
        "/api/chat/agent-runtime",
        json={
            "agent_id": AGENT,
            "stream": True,
            "messages": [{"role": "user", "content": message}],
        },
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1

    first, *middle, last = chunks
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert first["choices"][0]["finish_reason"] is None
    contents = [c["choices"][0]["delta"]["content"] for c in middle]
    # The model server's pieces come through one by one, not as one block at the end.
    assert contents == pieces(answer)
    assert "".join(contents) == answer
    assert all(c["choices"][0]["finish_reason"] is None for c in middle)
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["choices"][0]["delta"] == {}
    assert last["hivecall"]["status"] == "done"

    t = await turn(client, last["hivecall"]["turn_id"])
    assert t["status"] == "done" and t["reply"] == answer
    assert openai_standin.chat_requests[0].body["stream"] is True


@pytest.fixture
async def hub_sdk(app: Starlette) -> AsyncIterator[openai.AsyncOpenAI]:
    """The real openai SDK talking to the hub app in process (its HTTP stack is httpx2)."""
    http = openai.DefaultAsyncHttpxClient(transport=httpx2.ASGITransport(app=app))
    async with openai.AsyncOpenAI(
        base_url="http://127.0.0.1:8765", api_key=OWNER, http_client=http, max_retries=0
    ) as sdk:
        yield sdk


async def test_openai_sdk_reads_the_hubs_stream(
    client: httpx.AsyncClient, openai_standin: OpenAIStandin, hub_sdk: openai.AsyncOpenAI
) -> None:
    await make_agent(client, openai_standin.base_url)
    stream = await hub_sdk.post(
        "/api/chat/agent-runtime",
        body={"agent_id": AGENT, "stream": True, "messages": [{"role": "user", "content": "ping"}]},
        cast_to=ChatCompletion,
        stream=True,
        stream_cls=openai.AsyncStream[ChatCompletionChunk],
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: ping"
    assert chunks[-1].choices[0].finish_reason == "stop"


# -- sessions -----------------------------------------------------------------------------------


async def test_a_session_carries_its_history(
    client: httpx.AsyncClient, openai_standin: OpenAIStandin
) -> None:
    agent = await make_agent(client, openai_standin.base_url)
    one = await phone(client, agent["id"], "My name is Ada.", session_id="call-1")
    two = await phone(client, agent["id"], "What is my name?", session_id="call-1")
    assert one["ok"] and two["ok"]
    assert one["session_id"] == two["session_id"] == "call-1"

    first, second = openai_standin.chat_requests
    assert [m["role"] for m in first.body["messages"]] == ["system", "user"]
    assert second.body["messages"][1:] == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "You said: My name is Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    # The agent's recent work is part of its context too.
    assert "asked: My name is Ada." in second.body["messages"][0]["content"]

    # Another session starts clean.
    await phone(client, agent["id"], "Who am I?", session_id="call-2")
    third = openai_standin.chat_requests[2]
    assert [m["role"] for m in third.body["messages"]] == ["system", "user"]

    r = await client.get("/api/turns", params={"session_id": "call-1"})
    assert [t["message"] for t in r.json()["turns"]] == ["What is my name?", "My name is Ada."]


async def test_failed_turns_stay_out_of_the_history(
    client: httpx.AsyncClient, openai_standin: OpenAIStandin
) -> None:
    agent = await make_agent(client, openai_standin.base_url)
    openai_standin.fail(401, times=1)
    failed = await phone(client, agent["id"], "This one fails.", session_id="s")
    assert failed["ok"] is False
    ok = await phone(client, agent["id"], "This one works.", session_id="s")
    assert ok["ok"] is True
    last = openai_standin.chat_requests[-1]
    assert [m["content"] for m in last.body["messages"][1:]] == ["This one works."]


# -- keys ---------------------------------------------------------------------------------------


async def test_the_agents_key_reaches_the_server_and_nothing_else(
    client: httpx.AsyncClient, openai_standin: OpenAIStandin
) -> None:
    agent = await make_agent(client, openai_standin.base_url, api_key=AGENT_KEY)
    assert agent["api_key_set"] is True and "api_key" not in agent

    said = await phone(client, agent["id"], "Is my key safe?")
    assert said["ok"] is True
    chat = await client.post(
        "/api/chat/agent-runtime",
        json={"agent_id": AGENT, "messages": [{"role": "user", "content": "hi"}]},
    )
    sse = await client.post(
        "/api/chat/agent-runtime",
        json={"agent_id": AGENT, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    openai_standin.fail(401)
    refused = await phone(client, agent["id"], "And now?")
    assert refused["error"]["code"] == "runtime_auth_failed"

    for req in openai_standin.chat_requests:
        assert req.authorization == f"Bearer {AGENT_KEY}"
        # The key is a credential, not context: the model never reads it.
        assert AGENT_KEY not in json.dumps(req.body)

    responses = [
        json.dumps(said),
        chat.text,
        sse.text,
        json.dumps(refused),
        (await client.get("/api/agents")).text,
        (await client.get(f"/api/agents/{agent['id']}")).text,
        (await client.get(f"/api/agents/{AGENT}/context")).text,
        (await client.get(f"/api/turns/{said['turn_id']}")).text,
        (await client.get(f"/api/turns/{refused['turn_id']}")).text,
        (await client.get("/api/turns")).text,
    ]
    for text in responses:
        assert AGENT_KEY not in text
        assert AGENT_KEY[-4:] not in text  # not even the tail OpenAI echoes in its 401 message
    shown = (await client.get(f"/api/agents/{agent['id']}")).json()["agent"]
    assert shown["api_key_set"] is True


async def test_the_hubs_openai_key_only_goes_to_openai(
    client: httpx.AsyncClient, openai_standin: OpenAIStandin
) -> None:
    # A host that merely mentions api.openai.com in its URL is not OpenAI.
    lookalike = f"{openai_standin.origin}/api.openai.com/v1"
    agent = await make_agent(client, lookalike)
    said = await phone(client, agent["id"], "hello")
    assert said["ok"] is True, said
    [req] = openai_standin.chat_requests
    assert req.path == "/api.openai.com/v1/chat/completions"
    assert req.authorization == "Bearer not-needed"
    assert HUB_OPENAI_KEY not in json.dumps([r.headers for r in openai_standin.requests])


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "attempts"),
    [
        (500, "runtime_failed", 2),
        (401, "runtime_auth_failed", 1),
        (429, "runtime_rate_limited", 2),
    ],
)
async def test_a_failing_model_server_still_gets_a_spoken_answer(
    client: httpx.AsyncClient,
    openai_standin: OpenAIStandin,
    status: int,
    code: str,
    attempts: int,
) -> None:
    agent = await make_agent(client, openai_standin.base_url)
    openai_standin.fail(status)
    body = await phone(client, agent["id"], "Are you there?")
    assert body["ok"] is False and body["status"] == "failed"
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert_sentence(body["text"])
    assert AGENT in body["text"]
    # 429 and 5xx are retried once by the SDK (max_retries=1), a refused key is not.
    assert len(openai_standin.chat_requests) == attempts

    t = await turn(client, body["turn_id"])
    assert t["status"] == "failed" and t["error_code"] == code
    assert t["spoken"] == body["text"] and not t["reply"]
    r = await client.get("/api/turns", params={"agent": AGENT, "status": "failed"})
    assert [x["id"] for x in r.json()["turns"]] == [body["turn_id"]]


async def test_a_failing_model_server_in_the_chat_api(
    client: httpx.AsyncClient, openai_standin: OpenAIStandin
) -> None:
    await make_agent(client, openai_standin.base_url)
    openai_standin.fail(500)
    r = await client.post(
        "/api/chat/agent-runtime",
        json={"agent_id": AGENT, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200
    done = r.json()
    assert done["hivecall"]["status"] == "failed"
    assert done["hivecall"]["error"]["code"] == "runtime_failed"
    assert done["choices"][0]["message"]["content"] == done["hivecall"]["spoken"]
    assert_sentence(done["hivecall"]["spoken"])

    r = await client.post(
        "/api/chat/agent-runtime",
        json={"agent_id": AGENT, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    said = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert_sentence(said)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["hivecall"]["status"] == "failed"


async def test_an_unknown_model_is_a_failed_turn(
    client: httpx.AsyncClient, openai_standin: OpenAIStandin
) -> None:
    agent = await make_agent(client, openai_standin.base_url, model="no-such-model")
    body = await phone(client, agent["id"], "hello")
    assert body["ok"] is False and body["error"]["code"] == "runtime_failed"
    assert "404" in body["error"]["message"]
    assert len(openai_standin.chat_requests) == 1  # 404 is not retried


async def test_an_unreachable_model_server(client: httpx.AsyncClient) -> None:
    agent = await make_agent(client, f"http://127.0.0.1:{free_port()}/v1")
    body = await phone(client, agent["id"], "Anyone home?")
    assert body["ok"] is False and body["status"] == "failed"
    assert body["error"]["code"] == "runtime_unreachable"
    assert_sentence(body["text"])
    t = await turn(client, body["turn_id"])
    assert (t["status"], t["error_code"]) == ("failed", "runtime_unreachable")


@pytest.mark.parametrize("turn_timeout", [1.0])
async def test_a_silent_model_server_times_out(
    client: httpx.AsyncClient, openai_standin: OpenAIStandin
) -> None:
    agent = await make_agent(client, openai_standin.base_url)
    openai_standin.delay = 30
    body = await phone(client, agent["id"], "Hello?")
    assert body["ok"] is False and body["error"]["code"] == "runtime_timeout"
    assert_sentence(body["text"])
    assert "1 seconds" in body["text"]
    # The turn timeout bounds the whole turn: no second attempt after the first timed out.
    assert len(openai_standin.chat_requests) == 1
    t = await turn(client, body["turn_id"])
    assert (t["status"], t["error_code"]) == ("failed", "runtime_timeout")


@pytest.mark.parametrize("turn_timeout", [1.0])
async def test_a_trickling_model_server_times_out(
    client: httpx.AsyncClient, openai_standin: OpenAIStandin
) -> None:
    # Every chunk arrives well within the timeout, but the whole answer takes far longer.
    agent = await make_agent(client, openai_standin.base_url)
    openai_standin.chunk_delay = 0.25
    body = await phone(client, agent["id"], "one two three four five six seven eight nine ten")
    # Each chunk came in time, so only a deadline on the whole turn can stop it.
    assert body["ok"] is False and body["error"]["code"] == "runtime_timeout", body
    t = await turn(client, body["turn_id"])
    assert t["status"] == "failed"
    # What arrived before the deadline is kept.
    assert t["reply"].startswith("You said:")
