"""A BYOK call from the dashboard, end to end: Chromium ↔ the Realtime stand-in over WebRTC,
the tool call relayed through the hub to a real agent process, captions in the call modal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import ARTIFACTS
from tests.conftest import script
from tests.live import LiveHub
from tests.standins.realtime import RealtimeStandin
from tests.standins.realtime.script import (
    OPENING,
    TOOL_MESSAGE,
    USER_REQUEST,
    Script,
    default_script,
)

if TYPE_CHECKING:
    from playwright.async_api import Page

T = 15_000  # ms: generous waits for a loaded 2-core CI machine


@pytest.fixture
def agent_log(tmp_path: Path) -> Path:
    return tmp_path / "agent.log"


@pytest.fixture
def environ(environ: dict[str, str], agent_log: Path) -> dict[str, str]:
    return {**environ, "FAKE_AGENT_LOG": str(agent_log)}


def add_coder(live: LiveHub, workspace: Path) -> dict[str, Any]:
    r = httpx.post(
        f"{live.url}/api/agents",
        headers=live.headers,
        json={
            "name": "coder",
            "command": f"{script('fake_agent.py')} --mode slow {{message}}",
            "workspace": str(workspace),
            "env": ["FAKE_AGENT_LOG"],
        },
    )
    assert r.status_code == 201, r.text
    agent: dict[str, Any] = r.json()["agent"]
    return agent


async def open_dashboard(page: Page, live: LiveHub) -> None:
    await page.goto(live.login_url)
    await page.wait_for_selector("body[data-ready='1']", timeout=T)


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"call-modal-{name}.png"))


async def test_a_call_reaches_the_agent_and_shows_the_latest_caption(
    page: Page,
    live_hub: LiveHub,
    realtime_standin: RealtimeStandin,
    workspace: Path,
    agent_log: Path,
    console: list[str],
) -> None:
    add_coder(live_hub, workspace)
    realtime_standin.mint_delay = 0.6  # long enough to see the ringing phase
    # The user "speaks" 1.5 s after the opening: long enough to see its caption.
    realtime_standin.script = Script(turns=default_script().turns, user_delay=1.5)
    await open_dashboard(page, live_hub)
    await page.click("button.call[data-agent='coder']")
    await page.wait_for_selector("#call-title:text('Calling coder')", timeout=T)
    await shot(page, "ringing")

    await page.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)
    assert await page.text_content("#call-mic") == "Mic live"
    await page.wait_for_selector("#call-caption:text('What should I do?')", timeout=T)
    # The user's words, then the tool turn: "working on it" while the agent runs.
    await page.wait_for_selector("#call-working:visible", timeout=T)
    await shot(page, "working")
    assert await page.text_content("#call-user") == f"You: {USER_REQUEST}"
    # The answer's words stream in; wait for the part that quotes the agent's reply.
    await page.wait_for_selector(f"#call-caption:has-text('{TOOL_MESSAGE}')", timeout=T)
    await page.wait_for_selector("#call-working", state="hidden", timeout=T)
    await shot(page, "answer")
    caption = await page.text_content("#call-caption") or ""
    assert OPENING not in caption  # only the latest response, never glued to the previous one
    assert TOOL_MESSAGE in caption  # the fake agent's answer quotes the request

    # The tool reached the agent's runtime once, and its output went back to the stand-in once.
    runs = [json.loads(line) for line in agent_log.read_text().splitlines()]
    assert [r["message"] for r in runs] == [TOOL_MESSAGE]
    call = realtime_standin.last_call
    outputs = call.function_outputs
    assert len(outputs) == 1
    (output,) = outputs.values()
    assert TOOL_MESSAGE in output

    await page.click("#call-mute")
    assert await page.text_content("#call-mic") == "Muted"
    await page.click("#call-end")
    await page.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    await shot(page, "ended")

    calls = httpx.get(f"{live_hub.url}/api/calls", headers=live_hub.headers).json()["calls"]
    assert [(c["agent"]["name"], c["state"], c["speaker_only"]) for c in calls] == [
        ("coder", "ended", False)
    ]
    detail = httpx.get(f"{live_hub.url}/api/calls/{calls[0]['id']}", headers=live_hub.headers)
    body = detail.json()
    assert len(body["turns"]) == 1 and body["turns"][0]["message"] == TOOL_MESSAGE
    kinds = [(ln["kind"], ln["text"]) for ln in body["lines"]]
    assert ("agent", OPENING) in kinds and ("user", USER_REQUEST) in kinds
    assert ("tool", TOOL_MESSAGE) in kinds
    assert [t for k, t in kinds if k == "phase"] == ["connecting", "talking", "ended"]
    assert not [line for line in console if line.startswith("pageerror")]


@pytest.mark.parametrize("microphone", ["missing", "denied"])
async def test_without_a_microphone_the_call_is_speaker_only(
    page: Page,
    live_hub: LiveHub,
    realtime_standin: RealtimeStandin,
    console: list[str],
    microphone: str,
) -> None:
    await open_dashboard(page, live_hub)
    await page.click("button.call[data-agent='echo']")
    await page.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)
    assert await page.text_content("#call-mic") == "Speaker-only"
    # The whole default script plays: the opening, a tool call, the spoken answer.
    await page.wait_for_selector("#call-caption:text('The agent says:')", timeout=T)
    assert await page.is_hidden("#call-error")
    assert await page.is_disabled("#call-mute")
    await shot(page, f"speaker-only-{microphone}")
    await page.click("#call-end")
    await page.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    (call,) = httpx.get(f"{live_hub.url}/api/calls", headers=live_hub.headers).json()["calls"]
    assert call["speaker_only"] is True and call["state"] == "ended"
    assert not [line for line in console if line.startswith(("pageerror", "error"))]


# With no key, "auto" picks local calls; a hub set to BYOK says what is missing.
@pytest.mark.parametrize("live_hub_settings", [{"openai_api_key": "", "default_call_mode": "byok"}])
async def test_a_missing_key_shows_the_clear_error(
    page: Page, live_hub: LiveHub, realtime_standin: RealtimeStandin
) -> None:
    await open_dashboard(page, live_hub)
    note = await page.text_content("#call-mode-note") or ""
    assert "no OpenAI key" in note
    await page.click("button.call[data-agent='echo']")
    await page.wait_for_selector("#call-phase[data-phase='failed']", timeout=T)
    error = await page.text_content("#call-error") or ""
    assert "no OpenAI key" in error and "Settings" in error
    await shot(page, "missing-key")
    assert realtime_standin.mints == []

    # Adding the key in the settings panel makes the next call work.
    await page.click("#call-close")
    await page.fill("#set-key", realtime_standin.api_key)
    await page.click("#settings-save")
    await page.wait_for_selector("#settings-result:text('Saved.')", timeout=T)
    assert realtime_standin.api_key not in (await page.content())
    await page.click("button.call[data-agent='echo']")
    await page.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)
