"""The `fake_audio` fixture: Chromium's microphone plays a WAV file, and it reaches the far end."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import StaticSite
from tests.browser.test_standin_webrtc import mint
from tests.standins.realtime import RealtimeStandin

if TYPE_CHECKING:
    from playwright.async_api import Page

RATE = 16000


def write_wav(path: Path, *, amplitude: float, seconds: float = 6.0) -> Path:
    """A mono 16-bit WAV of a 440 Hz tone (amplitude 0: silence)."""
    peak = int(32767 * amplitude)
    samples = (
        int(peak * math.sin(2 * math.pi * 440 * i / RATE)) for i in range(int(RATE * seconds))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


@pytest.fixture(params=["tone", "silence"])
def fake_audio(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return write_wav(
        tmp_path / f"{request.param}.wav", amplitude=0.5 if request.param == "tone" else 0
    )


async def test_the_wav_file_is_what_the_far_end_hears(
    page: Page, realtime_standin: RealtimeStandin, static_site: StaticSite, fake_audio: Path
) -> None:
    await page.goto(static_site.add_page("standin_call.html"))
    await page.evaluate(
        "([base, secret]) => startCall(base, secret, 'ok')",
        [realtime_standin.base_url, await mint(realtime_standin)],
    )
    call = await realtime_standin.wait_for_call()
    await call.wait_for(lambda c: c.audio.frames >= 50, what="a second of microphone audio")
    if fake_audio.stem == "tone":
        assert call.audio.peak > 8000
    else:
        # Chromium's own fake device beeps at full scale: silence proves the file was used.
        assert call.audio.peak < 100
