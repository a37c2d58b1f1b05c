"""A local call from the dashboard, end to end with no key: Chromium's fake microphone says a
request (made with Piper), the hub hears it over WebRTC, the agent process runs one turn, and the
answer comes back as audio that the page records and that transcribes to the answer's words."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import httpx
import numpy as np
import pytest

from tests.browser.test_dashboard_call import add_coder, open_dashboard, shot
from tests.live import LiveHub
from tests.local.speech import overlap, said, silence, transcribe, write_wav

if TYPE_CHECKING:
    from playwright.async_api import Page

T = 30_000  # ms: speech recognition on a loaded 2-core machine
REQUEST = "What is the status of the build?"
SECOND = "Thanks, that is all for now."

RECORD = """() => {
  const stream = document.querySelector('#call-audio').srcObject;
  const rec = new MediaRecorder(stream, { mimeType: 'audio/webm;codecs=opus' });
  window.recorded = [];
  rec.ondataavailable = (e) => window.recorded.push(e.data);
  rec.start(200);
  window.recorder = rec;
}"""

STOP = """async () => {
  await new Promise((resolve) => { window.recorder.onstop = resolve; window.recorder.stop(); });
  const bytes = new Uint8Array(await new Blob(window.recorded).arrayBuffer());
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return btoa(s);
}"""


@pytest.fixture
def live_hub_settings() -> dict[str, Any]:
    return {"openai_api_key": ""}  # no key: calls are local


@pytest.fixture
def agent_log(tmp_path: Path) -> Path:
    return tmp_path / "agent.log"


@pytest.fixture
def environ(environ: dict[str, str], agent_log: Path) -> dict[str, str]:
    return {**environ, "FAKE_AGENT_LOG": str(agent_log)}


@pytest.fixture
def fake_audio(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Two requests far enough apart that the first answer plays out before the second."""
    if "silence" in request.node.name:
        return write_wav(tmp_path / "silence.wav", silence(20))
    speech = silence(2.5) + said(REQUEST) + silence(12) + said(SECOND) + silence(20)
    return write_wav(tmp_path / "requests.wav", speech)


def decode_webm(data: bytes) -> bytes:
    """The page's recording (WebM/Opus) as 16 kHz mono PCM."""
    out = bytearray()
    with av.open(io.BytesIO(data)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        for frame in container.decode(audio=0):
            for piece in resampler.resample(frame):
                out += piece.to_ndarray().tobytes()
    return bytes(out)


async def test_a_local_call_hears_the_request_and_speaks_the_answer(
    page: Page, live_hub: LiveHub, workspace: Path, agent_log: Path, console: list[str]
) -> None:
    add_coder(live_hub, workspace)
    await open_dashboard(page, live_hub)
    note = await page.text_content("#call-mode-note") or ""
    assert "local" in note, note
    await page.click("button.call[data-agent='coder']")
    await page.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)
    await page.evaluate(RECORD)
    assert await page.text_content("#call-mic") == "Mic live"
    await page.wait_for_selector("#call-caption:has-text('Go ahead')", timeout=T)

    # The request is heard, runs as a turn ("working on it"), and the answer is captioned.
    await page.wait_for_selector("#call-user:has-text('status')", timeout=T)
    heard = (await page.text_content("#call-user") or "").removeprefix("You: ")
    assert overlap(heard, REQUEST) >= 0.8, heard
    await page.wait_for_selector("#call-caption:has-text('handled')", timeout=T)
    await shot(page, "local-answer")
    # The second request comes after the first answer has played out: stop recording there.
    await page.wait_for_selector("#call-user:has-text('all for now')", timeout=T)
    recording = base64.b64decode(await page.evaluate(STOP))
    await page.wait_for_function(
        "() => (document.querySelector('#call-caption').textContent || '').includes('all for now')",
        timeout=T,
    )

    runs = [json.loads(line) for line in agent_log.read_text().splitlines()]
    assert len(runs) == 2, runs
    assert overlap(runs[0]["message"], REQUEST) >= 0.8
    assert overlap(runs[1]["message"], SECOND) >= 0.8

    # What the browser received, transcribed: the greeting and the agent's answer.
    pcm = decode_webm(recording)
    assert np.abs(np.frombuffer(pcm, dtype=np.int16)).max() > 1000  # real sound, not silence
    words = transcribe(pcm)
    assert overlap(words, "I handled " + REQUEST + " all tests pass") >= 0.6, words

    await page.click("#call-end")
    await page.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    calls = httpx.get(f"{live_hub.url}/api/calls", headers=live_hub.headers).json()["calls"]
    assert [(c["mode"], c["state"]) for c in calls] == [("local", "ended")]
    body = httpx.get(f"{live_hub.url}/api/calls/{calls[0]['id']}", headers=live_hub.headers).json()
    assert len(body["turns"]) == 2
    assert [ln["text"] for ln in body["lines"] if ln["kind"] == "phase"] == [
        "connecting",
        "talking",
        "ended",
    ]
    assert not [line for line in console if line.startswith("pageerror")]


async def test_silence_makes_no_turn(
    page: Page, live_hub: LiveHub, workspace: Path, agent_log: Path, console: list[str]
) -> None:
    add_coder(live_hub, workspace)
    await open_dashboard(page, live_hub)
    await page.click("button.call[data-agent='coder']")
    await page.wait_for_selector("#call-caption:has-text('Go ahead')", timeout=T)
    await page.wait_for_timeout(4000)  # four seconds of a silent microphone
    assert await page.is_hidden("#call-working")
    assert (await page.text_content("#call-user") or "") == ""
    await page.click("#call-end")
    await page.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    assert not agent_log.exists()
    calls = httpx.get(f"{live_hub.url}/api/calls", headers=live_hub.headers).json()["calls"]
    body = httpx.get(f"{live_hub.url}/api/calls/{calls[0]['id']}", headers=live_hub.headers).json()
    assert body["turns"] == []
    assert [ln["kind"] for ln in body["lines"] if ln["kind"] in ("user", "tool")] == []
