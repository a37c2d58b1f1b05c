"""Long agent work on a BYOK call, end to end: Chromium ↔ the Realtime stand-in over WebRTC, the
tool call answered "started" at once while a real CLI-like agent keeps working and printing.

The page follows the turn's events: the model gets the progress as items (no response asked),
then the answer and a `response.create` to tell it; the call modal shows the progress lines,
the elapsed time and a Stop button. Stopping (the cancel tool, or Stop on the phone app) kills
the agent's whole process group.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import ARTIFACTS
from tests.conftest import script
from tests.live import LiveHub
from tests.procs import alive
from tests.standins.realtime import RealtimeSession, RealtimeStandin, Script, ToolCall, Turn
from tests.standins.realtime.script import OPENING, agent_says

if TYPE_CHECKING:
    from playwright.async_api import Page

T = 20_000  # ms: generous waits for a loaded 2-core CI machine
STEPS = 8
REQUEST = "check every part of the repo"
STARTED = "is on it and is still working"  # the hub's "started" line (web/api.py)
ANSWER = f"All {STEPS} parts are fine: {REQUEST}"


@pytest.fixture
def live_hub_settings() -> dict[str, Any]:
    return {"voice_ack_s": 0.5}  # longer turns answer "started" after half a second


@pytest.fixture
def agent_log(tmp_path: Path) -> Path:
    return tmp_path / "agent.log"


def add_agent(live: LiveHub, workspace: Path, agent_log: Path, mode: str) -> None:
    r = httpx.post(
        f"{live.url}/api/agents",
        headers=live.headers,
        json={
            "name": "coder",
            "command": f"{script('fake_agent.py')} --mode {mode} {{message}}",
            "workspace": str(workspace),
            "env": [f"FAKE_AGENT_LOG={agent_log}", f"FAKE_AGENT_CHILD_PID={agent_log}.child"],
        },
    )
    assert r.status_code == 201, r.text


def label(event: dict[str, Any]) -> str | None:
    """A client event as the story of the call tells it."""
    if event["type"] == "response.create":
        return "response.create"
    if event["type"] != "conversation.item.create":
        return None
    item = event["item"]
    if item["type"] == "function_call_output":
        return "output"
    text = item["content"][0]["text"]
    return "progress" if text.startswith("Progress of the computer") else "answer"


def system_lines(call: RealtimeSession) -> list[str]:
    return [text for role, text in call.messages if role == "system"]


def tells(call: RealtimeSession) -> str:
    """What the stand-in's model says when asked to tell the answer: the last system item's."""
    lines = system_lines(call)
    said = json.loads(lines[-1].rsplit("instructions): ", 1)[-1]) if lines else ""
    return f"Here is what happened: {said}"


def how_it_goes(call: RealtimeSession) -> str:
    """A long answer to "how is it going?", from the latest progress item."""
    notes = [line for line in system_lines(call) if line.startswith("Progress")]
    return f"Last I heard: {notes[-1] if notes else 'nothing'}. " + "Still going. " * 80


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"long-call-{name}.png"))


def clock_s(text: str) -> int:
    m = re.fullmatch(r"(\d+):(\d\d)", text.strip())
    assert m, text
    return int(m[1]) * 60 + int(m[2])


async def test_a_long_turn_is_started_narrated_and_its_answer_told(
    page: Page,
    live_hub: LiveHub,
    realtime_standin: RealtimeStandin,
    workspace: Path,
    agent_log: Path,
    console: list[str],
) -> None:
    add_agent(live_hub, workspace, agent_log, f"work:{STEPS}:0.8")  # about 6.4 s of work
    realtime_standin.script = Script(
        turns=[
            Turn.say(OPENING),
            Turn.tool(REQUEST, user="Check every part of the repo, please."),
            Turn.say(agent_says),  # speaks the tool's output: the "started" line
            Turn.say(tells),  # asked later, once the work is done
        ]
    )
    await page.goto(live_hub.login_url)
    await page.wait_for_selector("body[data-ready='1']", timeout=T)
    await page.click("button.call[data-agent='coder']")
    await page.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)

    # The tool call is answered at once with the "started" line, and the model says it.
    await page.wait_for_selector(f"#call-caption:has-text('{STARTED}')", timeout=T)
    call = realtime_standin.last_call
    ((tool_call_id, output),) = call.function_outputs.items()
    assert STARTED in output
    assert call.tool_calls[0]["call_id"] == tool_call_id

    # The modal shows the running turn: its request, live progress lines, a moving clock, Stop.
    turn = "#call-turns li.turn"
    await page.wait_for_selector(f"{turn}[data-status='running'] .turn-progress li", timeout=T)
    assert await page.text_content(f"{turn} .turn-message") == REQUEST
    assert await page.text_content(f"{turn} .turn-status") == "Working"
    assert await page.is_visible(f"{turn} button.turn-stop")
    first = clock_s(await page.text_content(f"{turn} .turn-elapsed") or "")
    await page.wait_for_selector(
        f"{turn} .turn-progress li:has-text('step 3 of {STEPS}')", timeout=T
    )
    await asyncio.sleep(1.1)
    assert clock_s(await page.text_content(f"{turn} .turn-elapsed") or "") > first
    await shot(page, "working")

    # The model has the progress as system items, without being asked to speak for them, so
    # "how is it going?" is answered from the truth. That answer runs long: the work ends while
    # the model still speaks, and the telling must wait for it.
    await call.wait_for(
        lambda c: any("step" in line for line in system_lines(c)), what="a progress item"
    )
    call.script.delta_gap = 0.05
    call.start_turn(Turn.say(how_it_goes, user="How is it going?"))
    await page.wait_for_selector("#call-caption:has-text('Last I heard: Progress')", timeout=T)
    await page.wait_for_selector(f"{turn}[data-status='done']", timeout=T)
    assert call.busy, "the work should end while the model is still speaking"
    assert len(call.response_requests) == 2  # the greeting and the tool's output only
    notes = [line for line in system_lines(call) if line.startswith("Progress of the computer")]
    assert notes and all(REQUEST in n and re.search(rf"step \d of {STEPS}", n) for n in notes)

    # Done: the answer goes in as an item, then a response.create asks the model to tell it
    # (once the answer to "how is it going?" is over: the service refuses a second response).
    await call.wait_for(lambda c: len(c.response_requests) == 3, timeout=30, what="the telling")
    assert call.errors == []
    told = call.response_requests[-1]["instructions"]
    assert "coder" in told and REQUEST in told and "has finished" in told
    assert "parts are fine" not in told  # the agent's words stay out of the instructions
    (answer_item,) = [line for line in system_lines(call) if "has finished" in line]
    assert ANSWER in answer_item and REQUEST in answer_item
    story = [label(e) for e in call.received if label(e)]
    assert story[:3] == ["response.create", "output", "response.create"]  # greeting, "started"
    assert set(story[3:-2]) == {"progress"}  # progress only, never a response asked for it
    assert story[-2:] == ["answer", "response.create"]
    await page.wait_for_selector(f"#call-caption:has-text('{ANSWER}')", timeout=T)

    # The modal keeps the finished turn: its lines, its answer, how long it took; no Stop.
    assert await page.text_content(f"{turn} .turn-status") == "Done"
    assert ANSWER in (await page.text_content(f"{turn} .turn-answer") or "")
    assert await page.is_hidden(f"{turn} button.turn-stop")
    lines = await page.locator(f"{turn} .turn-progress li").all_text_contents()
    assert lines[:STEPS] == [f"step {i} of {STEPS}: checking part {i}" for i in range(1, 9)]
    assert clock_s(await page.text_content(f"{turn} .turn-elapsed") or "") >= 5
    await page.wait_for_selector("#call-working", state="hidden", timeout=T)
    await shot(page, "told")

    # One run of the agent, for the model's tool call (its call_id is the turn's idempotency
    # key); the call's history keeps the turn and its progress.
    assert len(agent_log.read_text().splitlines()) == 1
    (listed,) = httpx.get(f"{live_hub.url}/api/turns", headers=live_hub.headers).json()["turns"]
    stored = await live_hub.run(lambda hub: hub.bridge.get_turn(listed["id"]))
    assert stored is not None and stored.tool_call_id == tool_call_id
    await page.click("#call-end")
    await page.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    await page.click("#call-close")
    await page.click("#calls tr.clickable")
    await page.wait_for_selector("#call-lines .line-turn .turn-progress li", timeout=T)
    history = await page.text_content("#call-lines .line-tool") or ""
    assert REQUEST in history and "Done" in history and f"step {STEPS} of {STEPS}" in history
    await page.screenshot(path=str(ARTIFACTS / "long-call-history.png"), full_page=True)
    assert not [line for line in console if line.startswith(("pageerror", "error"))]
    assert call.errors == []


async def open_phone_app(page: Page, live: LiveHub) -> None:
    """The mobile app, paired: every request it makes carries the device's bearer token."""
    r = httpx.post(f"{live.url}/api/pairing", headers=live.headers)
    code = r.json()["pairing"]["code"]
    r = httpx.post(
        f"{live.url}/api/pairing/claim", json={"code": code, "device_name": "Test phone"}
    )
    assert r.status_code == 201, r.text
    claimed = r.json()
    saved = {"token": claimed["token"], "device": claimed["device"], "hub": live.url}
    await page.set_viewport_size({"width": 375, "height": 812})  # the narrowest phone
    await page.goto(f"{live.url}/m")
    await page.evaluate("(s) => localStorage.setItem('hivecall.device', s)", json.dumps(saved))
    await page.reload()
    await page.wait_for_selector("body[data-screen='home'][data-ready='1']", timeout=T)


@pytest.mark.parametrize("how", ["cancel tool", "stop button on the phone"])
async def test_stopping_the_work_kills_the_agent_and_the_model_knows(
    page: Page,
    live_hub: LiveHub,
    realtime_standin: RealtimeStandin,
    workspace: Path,
    agent_log: Path,
    console: list[str],
    how: str,
) -> None:
    add_agent(live_hub, workspace, agent_log, "sleep")  # works forever, with a child
    realtime_standin.script = Script(
        turns=[
            Turn.say(OPENING),
            Turn.tool("take as long as you like", user="Take as long as you like."),
            Turn.say(agent_says),
        ],
        fallback=Turn.say(tells),
    )
    if how == "cancel tool":
        await page.goto(live_hub.login_url)
        await page.wait_for_selector("body[data-ready='1']", timeout=T)
    else:
        await open_phone_app(page, live_hub)
    await page.click("button.call[data-agent='coder']")
    turn = "#call-turns li.turn"
    await page.wait_for_selector(f"{turn}[data-status='running']", timeout=T)
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await shot(page, how.replace(" ", "-") + "-running")
    call = realtime_standin.last_call
    await call.wait_for(lambda c: len(c.response_requests) == 2, what="the started line spoken")
    [run] = [json.loads(line) for line in agent_log.read_text().splitlines()]
    child = int(Path(f"{agent_log}.child").read_text())
    assert alive(run["pid"]) and alive(child)

    if how == "cancel tool":
        # The person says stop: the model calls cancel_computer_agent.
        call.start_turn(
            Turn(
                outputs=(ToolCall("", name="cancel_computer_agent", arguments="{}"),),
                user="Stop that.",
            )
        )
    else:
        await page.click(f"{turn} button.turn-stop")
    await page.wait_for_selector(f"{turn}[data-status='cancelled']", timeout=T)
    assert await page.text_content(f"{turn} .turn-status") == "Stopped"
    assert await page.is_hidden(f"{turn} button.turn-stop")
    for _ in range(100):  # the whole process group, as /proc sees it
        if not alive(run["pid"]) and not alive(child):
            break
        await asyncio.sleep(0.05)
    assert not alive(run["pid"]) and not alive(child)
    await shot(page, how.replace(" ", "-"))

    turns = httpx.get(f"{live_hub.url}/api/turns", headers=live_hub.headers).json()["turns"]
    assert [(t["status"], t["error_code"]) for t in turns] == [("cancelled", "cancelled")]
    if how == "cancel tool":
        # The tool's output says what stopped; the model is not asked about it a second time.
        await call.wait_for(lambda c: len(c.function_outputs) == 2, what="the cancel output")
        cancel_output = list(call.function_outputs.values())[-1]
        assert "Stopped the work on" in cancel_output and "take as long" in cancel_output
        await call.wait_for(lambda c: len(c.response_requests) == 3, what="its answer")
        await asyncio.sleep(1.0)
        assert len(call.response_requests) == 3
        assert not [line for line in system_lines(call) if "has been stopped" in line]
    else:
        # Stop on the screen: the model is told, and asked to say it stopped.
        await call.wait_for(lambda c: len(c.response_requests) == 3, what="the telling")
        (stopped,) = [line for line in system_lines(call) if "has been stopped" in line]
        assert "Stopped coder" in stopped
        assert "has been stopped" in call.response_requests[-1]["instructions"]
        await page.wait_for_selector("#call-caption:has-text('Stopped coder')", timeout=T)
    assert not [line for line in console if line.startswith(("pageerror", "error"))]
    assert call.errors == []
