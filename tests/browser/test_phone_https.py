"""A phone on the network, for real: `hivecall serve --https` on a non-loopback address (a dummy
interface of the test namespace), Chromium as a 390 px phone that trusts the hub's CA through its
NSS database (never "ignore HTTPS errors"), paired from the QR code, and a local call heard both
ways from that origin: the hub transcribes the phone's microphone, the phone records the answer."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.browser.conftest import CHROMIUM, chromium_flags, recorded_tab
from tests.browser.test_local_call import RECORD, STOP, decode_webm
from tests.browser.test_mobile import PHONE_UA
from tests.conftest import script
from tests.local.speech import overlap, said, silence, transcribe, write_wav
from tests.netaddr import lan_address
from tests.pairing.qr import decode, from_svg
from tests.test_https_serve import TOKEN, HttpsHub

T = 30_000  # ms: speech recognition on a loaded 2-core machine
REQUEST = "What is the status of the build?"
OWNER = {"authorization": f"Bearer {TOKEN}"}
# When the hub's voice was last heard on the page (window.loudAt, performance.now() ms): its
# level, read every 50 ms from the call's audio element's stream.
LISTEN = """async () => {
  const stream = document.querySelector('#call-audio').srcObject;
  const ctx = new AudioContext();
  await ctx.resume();
  const level = ctx.createAnalyser();
  level.fftSize = 2048;
  ctx.createMediaStreamSource(stream).connect(level);
  const buf = new Float32Array(level.fftSize);
  window.loudAt = 0;
  setInterval(() => {
    level.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    if (Math.sqrt(sum / buf.length) > 0.01) window.loudAt = performance.now();
  }, 50);
  return ctx.state;
}"""
# The answer has played out: the voice was heard after the caption came, then 1.5 s of quiet.
PLAYED_OUT = "(since) => window.loudAt > since && performance.now() - window.loudAt > 1500"


@pytest.fixture
def fake_audio(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "request.wav", silence(3) + said(REQUEST) + silence(25))


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HttpsHub]:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HIVECALL_HOME": str(tmp_path / "hub"),
        "HIVECALL_OWNER_TOKEN": TOKEN,
        "FAKE_AGENT_LOG": str(tmp_path / "agent.log"),
    }
    with lan_address() as address:
        server = HttpsHub(env, tmp_path, address)
        try:
            yield server
        finally:
            server.stop()


def trusting_home(tmp_path: Path, ca: Path) -> Path:
    """A HOME whose NSS database (what Chromium on Linux trusts) holds the hub's CA."""
    home = tmp_path / "phone-home"
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    certutil = ["certutil", "-d", f"sql:{db}"]
    subprocess.run([*certutil, "-N", "--empty-password"], check=True, capture_output=True)
    add = ["-A", "-t", "C,,", "-n", "hivecall hub CA", "-i", str(ca)]
    subprocess.run([*certutil, *add], check=True, capture_output=True)
    return home


async def test_a_phone_on_the_network_pairs_over_https_and_calls_with_its_microphone(
    hub: HttpsHub, tmp_path: Path, fake_audio: Path, console: list[str]
) -> None:
    from playwright.async_api import async_playwright

    r = httpx.post(
        f"{hub.plain}/api/agents",
        headers=OWNER,
        json={
            "name": "coder",
            "command": f"{script('fake_agent.py')} {{message}}",
            "workspace": str(tmp_path),
            "env": ["FAKE_AGENT_LOG"],
        },
    )
    assert r.status_code == 201, r.text
    made = httpx.post(f"{hub.plain}/api/pairing", headers=OWNER).json()
    assert made["https"]["ca_url"] == f"{hub.secure}/ca.crt"
    [link] = decode(from_svg(made["qr_svg"]))  # what the phone's camera reads
    assert link.startswith(f"{hub.secure}/m#pair=")
    home = trusting_home(tmp_path, tmp_path / "hub" / "tls" / "ca.crt")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=chromium_flags("fake", fake_audio),
            env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        )
        try:
            context = await browser.new_context(
                viewport={"width": 390, "height": 844},
                device_scale_factor=3,
                is_mobile=True,
                has_touch=True,
                user_agent=PHONE_UA,
            )
            async with recorded_tab(context, console, "phone-https") as phone:
                await phone.goto(link)
                await phone.wait_for_selector("body[data-screen='pair']", timeout=T)
                origin = await phone.evaluate("location.origin")
                assert origin == hub.secure and await phone.evaluate("isSecureContext")
                assert await phone.is_hidden("#insecure")
                await phone.tap("#pair-submit")
                await phone.wait_for_selector("body[data-screen='home'][data-ready='1']", timeout=T)
                saved = json.loads(await phone.evaluate("localStorage.getItem('hivecall.device')"))
                assert saved["hub"] == hub.secure

                await phone.tap("button.call[data-agent='coder']")
                await phone.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)
                await phone.evaluate(RECORD)
                assert await phone.evaluate(LISTEN) == "running"
                # A real (fake-device) microphone: getUserMedia worked on this origin.
                assert await phone.text_content("#call-mic") == "Mic live"
                await phone.wait_for_selector("#call-user:has-text('status')", timeout=T)
                await phone.wait_for_selector("#call-caption:has-text('handled')", timeout=T)
                # The caption comes as the answer's audio is queued: it plays out after it.
                since = await phone.evaluate("performance.now()")
                await phone.wait_for_function(PLAYED_OUT, arg=since, timeout=T)
                recording = base64.b64decode(await phone.evaluate(STOP))
                await phone.tap("#call-end")
                await phone.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
        finally:
            await browser.close()

    # The hub heard the phone: the agent ran on what the microphone said.
    [run] = [json.loads(line) for line in (tmp_path / "agent.log").read_text().splitlines()]
    assert overlap(run["message"], REQUEST) >= 0.8, run
    # The phone heard the hub: its recording transcribes to the answer.
    pcm = decode_webm(recording)
    assert np.abs(np.frombuffer(pcm, dtype=np.int16)).max() > 1000
    words = transcribe(pcm)
    assert overlap(words, "I handled " + REQUEST) >= 0.6, words
    [call] = httpx.get(f"{hub.plain}/api/calls", headers=OWNER).json()["calls"]
    assert (call["mode"], call["state"], call["started_by"]) == ("local", "ended", "Pixel 8")
    assert not [line for line in console if line.startswith("pageerror")]
