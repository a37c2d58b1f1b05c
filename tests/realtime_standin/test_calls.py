"""POST /v1/realtime/calls and the oai-events channel, driven by an aiortc client.

The browser tests (tests/browser) do the same from Chromium; this one runs anywhere, network
namespace or not, and checks every server event against the openai SDK's types.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from openai import AsyncOpenAI

from tests.keys import FAKE_OPENAI_KEY
from tests.realtime_standin.conftest import assert_sdk_parses
from tests.standins.realtime import (
    OPENING,
    TOOL_MESSAGE,
    USER_REQUEST,
    RealtimeStandin,
    Script,
    Turn,
)


class Client:
    """What a browser does: mic track, `oai-events` channel, offer POSTed with the secret."""

    def __init__(self, *, tool_output: str = "two files") -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(AudioStreamTrack())
        self.channel = self.pc.createDataChannel("oai-events")
        self.events: list[dict[str, Any]] = []
        self.answered: set[str] = set()
        self.tool_output = tool_output
        self.response: httpx.Response | None = None

        @self.channel.on("open")
        def on_open() -> None:
            self.send({"type": "session.update", "session": {"type": "realtime"}})
            self.send({"type": "response.create"})

        @self.channel.on("message")
        def on_message(message: str) -> None:
            event = json.loads(message)
            self.events.append(event)
            for call in calls_in(event):
                if call["call_id"] not in self.answered:
                    self.answered.add(call["call_id"])
                    self.send(
                        {
                            "type": "conversation.item.create",
                            "item": {
                                "type": "function_call_output",
                                "call_id": call["call_id"],
                                "output": self.tool_output,
                            },
                        }
                    )
                    self.send({"type": "response.create"})

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(json.dumps(event))

    async def connect(self, url: str, secret: str) -> httpx.Response:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient() as http:
            self.response = await http.post(
                f"{url}/realtime/calls",
                content=self.pc.localDescription.sdp,
                headers={"authorization": f"Bearer {secret}", "content-type": "application/sdp"},
            )
        if self.response.status_code == 201:
            answer = RTCSessionDescription(sdp=self.response.text, type="answer")
            await self.pc.setRemoteDescription(answer)
        return self.response

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


def calls_in(event: dict[str, Any]) -> list[dict[str, Any]]:
    if event["type"] == "response.function_call_arguments.done":
        return [event]
    if event["type"] == "response.output_item.done" and event["item"]["type"] == "function_call":
        return [event["item"]]
    if event["type"] == "response.done":
        return [i for i in event["response"]["output"] if i["type"] == "function_call"]
    return []


async def until(predicate: Any, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def secret(openai_client: AsyncOpenAI) -> str:
    minted = await openai_client.realtime.client_secrets.create(
        session={"type": "realtime", "instructions": "Be brief."}
    )
    return minted.value


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    c = Client()
    yield c
    await c.pc.close()


async def test_the_default_script_over_webrtc(
    realtime_standin: RealtimeStandin, secret: str, client: Client
) -> None:
    response = await client.connect(realtime_standin.base_url, secret)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/sdp"
    assert response.text.startswith("v=0")
    assert "a=candidate:" in response.text and " 127.0.0.1 " in response.text
    call = realtime_standin.last_call
    assert response.headers["location"] == f"/v1/realtime/calls/{call.id}"

    await call.wait_for(lambda c: len(c.responses) == 3, what="three responses")
    assert client.pc.connectionState == "connected"
    assert call.connection_state == "connected"
    assert call.transcripts == [OPENING, "The agent says: two files"]
    (tool_call,) = call.tool_calls
    assert json.loads(tool_call["arguments"]) == {"message": TOOL_MESSAGE}
    assert call.function_outputs == {tool_call["call_id"]: "two files"}
    assert call.session["instructions"] == "Be brief."
    assert call.errors == []
    await call.wait_for(lambda c: c.audio.frames > 5, what="microphone frames")

    await until(lambda: client.types().count("response.done") == 3)
    assert client.types()[0] == "session.created"
    user = [e for e in client.events if e["type"].endswith("transcription.completed")]
    assert [e["transcript"] for e in user] == [USER_REQUEST]
    # The call shows up three times; the client answered it once.
    copies = [c for e in client.events for c in calls_in(e)]
    assert len(copies) == 3 and {c["call_id"] for c in copies} == {tool_call["call_id"]}
    assert client.types().count("output_audio_buffer.started") == 2
    # Everything the stand-in sent (output_audio_buffer.stopped follows the last response.done,
    # so wait for it to arrive) is a valid server event for the openai SDK.
    await until(lambda: len(client.events) >= len(call.sent))
    assert client.events == call.sent
    assert_sdk_parses(call.sent)


async def test_a_custom_script(realtime_standin: RealtimeStandin, secret: str) -> None:
    realtime_standin.script = Script(
        turns=[Turn.say("Ready."), Turn.tool("run the tests", user="Run the tests.", auto=True)],
        fallback=Turn.say("Anything else?"),
    )
    client = Client(tool_output="all green")
    try:
        await client.connect(realtime_standin.base_url, secret)
        call = await realtime_standin.wait_for_call()
        await call.wait_for(lambda c: len(c.responses) == 3)
        assert call.transcripts == ["Ready.", "Anything else?"]
        assert call.function_outputs == {call.tool_calls[0]["call_id"]: "all green"}
    finally:
        await client.pc.close()


async def test_offer_errors(realtime_standin: RealtimeStandin, secret: str) -> None:
    url = f"{realtime_standin.base_url}/realtime/calls"
    sdp_headers = {"content-type": "application/sdp"}
    async with httpx.AsyncClient() as http:

        async def post(headers: dict[str, str], body: str = "v=0\r\nm=audio 9\r\n") -> int:
            r = await http.post(url, content=body, headers=headers)
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}
            return r.status_code

        assert await post(sdp_headers) == 401  # no secret
        assert await post({**sdp_headers, "authorization": "Bearer ek_unknown"}) == 401
        # The user's key itself is refused: a browser call takes a minted secret.
        assert await post({**sdp_headers, "authorization": f"Bearer {FAKE_OPENAI_KEY}"}) == 401
        auth = {"authorization": f"Bearer {secret}"}
        assert await post({**auth, "content-type": "application/json"}) == 400
        assert await post({**auth, **sdp_headers}, body="not sdp") == 400
        realtime_standin.fail_calls(503, times=1)
        assert await post({**auth, **sdp_headers}) == 503
        realtime_standin.expire(secret)
        assert await post({**auth, **sdp_headers}) == 401
    assert realtime_standin.calls == []


async def test_cors_lets_a_page_post_its_offer(realtime_standin: RealtimeStandin) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.options(
            f"{realtime_standin.base_url}/realtime/calls",
            headers={
                "origin": "http://127.0.0.1:9",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization,content-type",
            },
        )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
