"""POST /v1/realtime/client_secrets, driven by the real openai SDK."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.realtime import RealtimeFunctionToolParam, RealtimeSessionCreateRequestParam

from tests.keys import FAKE_OPENAI_KEY
from tests.standins.realtime import RealtimeStandin

TOOL: RealtimeFunctionToolParam = {
    "type": "function",
    "name": "ask_computer_agent",
    "description": "Ask the agent on the user's computer.",
    "parameters": {
        "type": "object",
        "properties": {"message": {"type": "string"}},
        "required": ["message"],
    },
}
SESSION: RealtimeSessionCreateRequestParam = {
    "type": "realtime",
    "model": "gpt-realtime",
    "instructions": "You are the voice of a coding agent.",
    "audio": {
        "input": {
            "transcription": {"model": "gpt-4o-mini-transcribe"},
            "turn_detection": {"type": "semantic_vad", "eagerness": "auto"},
        },
        "output": {"voice": "marin"},
    },
    "tools": [TOOL],
    "tool_choice": "auto",
}


async def test_mints_a_secret_the_sdk_parses(
    openai_client: AsyncOpenAI, realtime_standin: RealtimeStandin
) -> None:
    before = int(time.time())
    secret = await openai_client.realtime.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": 120}, session=SESSION
    )
    assert secret.value.startswith("ek_")
    assert before + 120 <= secret.expires_at <= int(time.time()) + 120
    session = secret.session
    assert session.type == "realtime"
    assert session.id.startswith("sess_")
    assert session.model == "gpt-realtime"
    assert session.instructions == SESSION["instructions"]
    assert session.audio is not None and session.audio.output is not None
    assert session.audio.output.voice == "marin"
    assert session.audio.input is not None and session.audio.input.transcription is not None
    assert session.audio.input.transcription.model == "gpt-4o-mini-transcribe"
    assert session.tools is not None and session.tools[0].name == "ask_computer_agent"  # type: ignore[union-attr]

    # What the hub sent is on record, for tests of the hub's session.
    assert realtime_standin.mints == [
        {"expires_after": {"anchor": "created_at", "seconds": 120}, "session": SESSION}
    ]
    (request,) = realtime_standin.requests
    assert request.headers["authorization"] == f"Bearer {FAKE_OPENAI_KEY}"
    assert request.status == 200
    assert len(realtime_standin.mint_seconds) == 1
    assert 0 < realtime_standin.mint_seconds[0] < 1
    assert realtime_standin.secrets[secret.value].session["id"] == session.id


async def test_a_wrong_key_is_an_authentication_error(realtime_standin: RealtimeStandin) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        async with AsyncOpenAI(
            api_key="sk-wrong-key-000000", base_url=realtime_standin.base_url
        ) as client:
            await client.realtime.client_secrets.create(session={"type": "realtime"})
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert "sk-wrong-key-000000" not in str(caught.value)  # masked, as OpenAI does
    assert realtime_standin.secrets == {}


async def test_no_key_is_401(realtime_standin: RealtimeStandin) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{realtime_standin.base_url}/realtime/client_secrets", json={"session": {}}
        )
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (400, openai.BadRequestError),
    ],
)
async def test_scripted_failures(
    openai_client: AsyncOpenAI,
    realtime_standin: RealtimeStandin,
    status: int,
    error: type[openai.APIStatusError],
) -> None:
    realtime_standin.fail_mint(status, times=1)
    with pytest.raises(error) as caught:
        await openai_client.realtime.client_secrets.create(session={"type": "realtime"})
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict) and body["message"]  # the SDK unwraps {"error": {...}}
    # `times=1`: the next one succeeds.
    secret = await openai_client.realtime.client_secrets.create(session={"type": "realtime"})
    assert secret.value in realtime_standin.secrets


async def test_the_sdk_retries_a_500(realtime_standin: RealtimeStandin) -> None:
    realtime_standin.fail_mint(500, times=1)
    async with AsyncOpenAI(
        api_key=FAKE_OPENAI_KEY, base_url=realtime_standin.base_url, max_retries=1
    ) as client:
        secret = await client.realtime.client_secrets.create(session={"type": "realtime"})
    assert secret.value.startswith("ek_")
    assert [r.status for r in realtime_standin.requests] == [500, 200]


async def test_a_delay_times_the_client_out(realtime_standin: RealtimeStandin) -> None:
    realtime_standin.mint_delay = 5
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        async with AsyncOpenAI(
            api_key=FAKE_OPENAI_KEY, base_url=realtime_standin.base_url, max_retries=0, timeout=0.2
        ) as client:
            await client.realtime.client_secrets.create(session={"type": "realtime"})
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"expires_after": {"anchor": "created_at", "seconds": 5}}, "expires_after.seconds"),
        ({"session": {"model": "gpt-realtime"}}, "session.type"),
    ],
)
async def test_invalid_requests_are_400(
    realtime_standin: RealtimeStandin, body: dict[str, object], param: str
) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{realtime_standin.base_url}/realtime/client_secrets",
            json=body,
            headers={"authorization": f"Bearer {FAKE_OPENAI_KEY}"},
        )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


async def test_unknown_routes_are_404_in_openai_shape(realtime_standin: RealtimeStandin) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{realtime_standin.base_url}/models")
    assert r.status_code == 404
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
