"""What a browser page hears in a LiveKit room, and when: the Python side of
tests/browser/pages/room_audio_tap.js.

`install_tap(context)` adds the recorder to every page of a playwright context before the page's
own scripts. `await take(page, label)` reads one tap back as a `Take`: 16-bit samples at the
page's AudioContext rate, and the context frame of the first one, so the microphone's tap ("mic")
and a remote participant's ("remote:<identity>") share one clock. `answer_latency(mic, remote)`
is the time from the end of the person's speech (as the page captured it from the fake
microphone) to the first audible sample of the answer; the browser tests report it and a
benchmark can reuse it as it is.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hivecall.speech.tts import resample
from tests.local.speech import RATE as SPEECH_RATE
from tests.local.speech import overlap, transcribe

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

TAP_SCRIPT = Path(__file__).resolve().parents[1] / "browser" / "pages" / "room_audio_tap.js"
LOUD = 600  # |sample| (16-bit) that counts as sound: the fake mic's Piper speech peaks ~10000
WINDOW_S = 0.02  # loudness is judged per 20 ms, so a lone click does not count


@dataclass(frozen=True)
class Take:
    """One tap's recording: `samples` (int16) at `rate`, the first at context frame `frame`."""

    rate: int
    frame: int
    samples: np.ndarray

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    def at(self, index: int) -> float:
        """The context time (s) of sample `index`."""
        return (self.frame + index) / self.rate

    def loud_windows(self) -> np.ndarray:
        """Indices (in samples) of the 20 ms windows whose peak reaches LOUD."""
        size = max(1, int(self.rate * WINDOW_S))
        count = len(self.samples) // size
        if count == 0:
            return np.array([], dtype=np.int64)
        peaks = np.abs(self.samples[: count * size].astype(np.int32)).reshape(count, size).max(1)
        return np.flatnonzero(peaks >= LOUD) * size

    def first_sound(self, after_s: float = float("-inf")) -> float | None:
        """Context time of the first loud window at or after context time `after_s`."""
        for index in self.loud_windows():
            if self.at(int(index)) >= after_s:
                return self.at(int(index))
        return None

    def last_sound(self) -> float | None:
        """Context time of the end of the last loud window."""
        loud = self.loud_windows()
        if not len(loud):
            return None
        return self.at(int(loud[-1]) + int(self.rate * WINDOW_S))

    def since(self, at_s: float) -> Take:
        """The part from context time `at_s` on."""
        skip = min(len(self.samples), max(0, round(at_s * self.rate) - self.frame))
        return Take(self.rate, self.frame + skip, self.samples[skip:])

    def pcm16k(self) -> bytes:
        """The recording as 16 kHz mono 16-bit PCM (what the transcriber takes)."""
        if not len(self.samples):
            return b""
        return resample(self.samples, self.rate, SPEECH_RATE)

    def text(self) -> str:
        """What it says (Whisper tiny.en through hivecall.speech)."""
        if not len(self.samples):
            return ""
        pad = bytes(int(0.3 * SPEECH_RATE) * 2)  # Whisper misses words cut at the very edge
        return transcribe(pad + self.pcm16k() + pad)

    def says(self, expected: str, *, share: float = 0.6) -> bool:
        return overlap(self.text(), expected) >= share


async def install_tap(context: BrowserContext, *, hold_mic: bool = False) -> None:
    """The recorder in every page of `context`; `hold_mic`: getUserMedia waits for
    `open_mic(page)` (the fake microphone's file starts playing when the device opens)."""
    if hold_mic:
        await context.add_init_script("window.__tapOptions = { holdMic: true };")
    await context.add_init_script(path=str(TAP_SCRIPT))


async def open_mic(page: Page) -> None:
    await page.evaluate("window.__tap.openMic()")


async def labels(page: Page) -> list[str]:
    found: list[str] = await page.evaluate("window.__tap.labels()")
    return found


async def take(page: Page, label: str) -> Take:
    raw = await page.evaluate("(l) => window.__tap.take(l)", label)
    samples = np.frombuffer(base64.b64decode(raw["pcm"]), dtype=np.int16)
    return Take(rate=int(raw["rate"]), frame=int(raw["frame"]), samples=samples)


async def wait_for_label(page: Page, label: str, timeout_ms: float = 30_000) -> None:
    """Until the page plays (and the tap records) `label`'s track."""
    await page.wait_for_function(
        "(l) => window.__tap.labels().includes(l)", arg=label, timeout=timeout_ms
    )


async def wait_for_sound(
    page: Page, label: str, *, after_s: float = -1.0, timeout_ms: float = 30_000
) -> float:
    """Until `label` had a loud block ending after context time `after_s`; that block's end."""
    await page.wait_for_function(
        "([l, t]) => window.__tap.loudAt(l) > t",
        arg=[label, after_s],
        timeout=timeout_ms,
        polling=100,
    )
    at: float = await page.evaluate("(l) => window.__tap.loudAt(l)", label)
    return at


async def wait_for_quiet(
    page: Page, label: str, *, seconds: float = 1.5, timeout_ms: float = 30_000
) -> float:
    """Until `label` made a sound and then none for `seconds`; the end of its last sound."""
    await page.wait_for_function(
        """([l, s]) => { const t = window.__tap.loudAt(l);
             return t >= 0 && window.__tap.now() - t >= s; }""",
        arg=[label, seconds],
        timeout=timeout_ms,
        polling=100,
    )
    at: float = await page.evaluate("(l) => window.__tap.loudAt(l)", label)
    return at


async def clock(page: Page) -> float:
    """The page's audio clock now (s), the one taps are timed on."""
    now: float = await page.evaluate("window.__tap.now()")
    return now


def answer_latency(mic: Take, remote: Take) -> float | None:
    """Seconds from the end of the speech the page sent (the last sound on its microphone tap)
    to the first sound of `remote` after it; None when either is silent."""
    spoken = mic.last_sound()
    if spoken is None:
        return None
    heard = remote.first_sound(after_s=spoken)
    return None if heard is None else heard - spoken
