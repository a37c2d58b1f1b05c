"""Chromium calls the Realtime stand-in over real WebRTC, as the dashboard calls OpenAI."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
from openai import AsyncOpenAI

from tests.browser.conftest import StaticSite
from tests.keys import FAKE_OPENAI_KEY
from tests.standins.realtime import (
    OPENING,
    TOOL_MESSAGE,
    TOOL_NAME,
    USER_REQUEST,
    RealtimeStandin,
)

if TYPE_CHECKING:
    from playwright.async_api import Page

OUTPUT = "README.md, pyproject.toml and src"


async def mint(standin: RealtimeStandin) -> str:
    async with AsyncOpenAI(
        api_key=FAKE_OPENAI_KEY, base_url=standin.base_url, max_retries=0
    ) as client:
        secret = await client.realtime.client_secrets.create(
            session={
                "type": "realtime",
                "model": "gpt-realtime",
                "audio": {"output": {"voice": "marin"}},
            }
        )
    return secret.value


async def state(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("window.call")
    return result


async def test_a_call_connects_speaks_and_calls_the_tool(
    page: Page, realtime_standin: RealtimeStandin, static_site: StaticSite
) -> None:
    secret = await mint(realtime_standin)
    await page.goto(static_site.add_page("standin_call.html"))
    started = time.monotonic()
    await page.evaluate(
        "([base, secret, output]) => startCall(base, secret, output)",
        [realtime_standin.base_url, secret, OUTPUT],
    )
    answered = time.monotonic()
    await page.wait_for_function("window.call.connection === 'connected'", timeout=10_000)
    connected = time.monotonic()
    await page.wait_for_function(
        "Object.keys(window.call.transcripts).length === 2 && "
        "window.call.events.filter(e => e === 'response.done').length === 3",
        timeout=10_000,
    )
    finished = time.monotonic()
    print(
        f"offer answered {answered - started:.2f}s, connected {connected - started:.2f}s, "
        f"call done {finished - started:.2f}s"
    )

    seen = await state(page)
    assert seen["error"] is None
    assert seen["status"] == 201
    assert seen["location"].startswith("/v1/realtime/calls/rtc_")
    assert seen["events"][:2] == ["session.created", "session.updated"]
    # The opening, then (after the tool call, which says nothing) the agent's answer.
    assert list(seen["transcripts"].values()) == [OPENING, f"The agent says: {OUTPUT}"]
    assert seen["userTranscripts"] == [USER_REQUEST]
    # Three copies of the call arrived (arguments.done, output_item.done, response.done): one kept.
    assert len(seen["toolCalls"]) == 1
    tool = seen["toolCalls"][0]
    assert tool["name"] == TOOL_NAME
    assert tool["arguments"] == {"message": TOOL_MESSAGE}
    assert seen["errors"] == []
    assert seen["remoteTrack"] == "audio"
    assert await page.evaluate("inboundAudioPackets()") > 0

    call = realtime_standin.last_call
    assert call.connection_state == "connected"
    assert call.received_types == [
        "session.update",
        "response.create",
        "conversation.item.create",
        "response.create",
    ]
    assert call.session_updates[0]["instructions"] == "Be brief."
    assert call.session["audio"]["output"]["voice"] == "marin"
    assert call.function_outputs == {tool["call_id"]: OUTPUT}
    assert call.errors == []
    await call.wait_for(lambda c: c.audio.frames >= 10, what="microphone audio")
    assert realtime_standin.secrets[secret].uses == 1


@pytest.mark.parametrize(
    ("microphone", "error"), [("denied", "NotAllowedError"), ("missing", "NotFoundError")]
)
async def test_without_a_microphone_getusermedia_fails(
    page: Page, realtime_standin: RealtimeStandin, static_site: StaticSite, error: str
) -> None:
    await page.goto(static_site.add_page("standin_call.html"))
    assert await page.evaluate("microphoneError()") == error
    secret = await mint(realtime_standin)
    await page.evaluate(
        "([base, secret]) => startCall(base, secret, '')", [realtime_standin.base_url, secret]
    )
    assert (await state(page))["error"].startswith(error)
    assert realtime_standin.calls == []


@pytest.mark.parametrize("microphone", ["denied", "missing"])
async def test_a_speaker_only_call_connects_without_a_microphone(
    page: Page, realtime_standin: RealtimeStandin, static_site: StaticSite, microphone: str
) -> None:
    await page.goto(static_site.add_page("standin_call.html"))
    secret = await mint(realtime_standin)
    started = time.monotonic()
    await page.evaluate(
        "([base, secret]) => startCall(base, secret, 'ok', true)",
        [realtime_standin.base_url, secret],
    )
    await page.wait_for_function("window.call.connection === 'connected'", timeout=10_000)
    connected = time.monotonic() - started
    await page.wait_for_function(
        "window.call.events.filter(e => e === 'response.done').length === 3", timeout=10_000
    )
    print(f"speaker-only ({microphone}) connected {connected:.2f}s")
    seen = await state(page)
    assert seen["micError"] in ("NotAllowedError", "NotFoundError")
    assert seen["error"] is None
    assert next(iter(seen["transcripts"].values())) == OPENING
    assert await page.evaluate("inboundAudioPackets()") > 0
    call = realtime_standin.last_call
    assert call.audio.frames == 0
    assert len(call.function_outputs) == 1
