"""The media side of a stand-in call: loopback ICE, the model's voice, the caller's microphone.

In a loopback-only network namespace aioice finds no candidate at all (it skips 127.0.0.1), so
the stand-in uses the hub's own `allow_loopback_ice()` (hivecall.voice.local.ice), which the
hub's local calls need for the same reason.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fractions
import math
import time
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from hivecall.voice.local.ice import allow_loopback_ice

__all__ = ["AudioSink", "VoiceTrack", "allow_loopback_ice"]

RATE = 48000
PTIME = 0.02
SAMPLES = int(RATE * PTIME)  # 960 samples, 20 ms


def _tone(frequency: int = 440, amplitude: float = 0.1) -> array.array[int]:
    """One second of a sine tone (a whole number of periods, so it loops cleanly)."""
    peak = int(32767 * amplitude)
    return array.array(
        "h", (int(peak * math.sin(2 * math.pi * frequency * i / RATE)) for i in range(RATE))
    )


class VoiceTrack(MediaStreamTrack):
    """The model's voice: a quiet 440 Hz tone while `speaking`, silence otherwise (48 kHz mono)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.speaking = False
        self.frames_sent = 0
        self._tone = _tone().tobytes()
        self._silence = bytes(SAMPLES * 2)
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            self._pts += SAMPLES
            await asyncio.sleep(self._start + self._pts / RATE - time.time())
        if self.speaking:
            offset = (self._pts % RATE) * 2
            data = self._tone[offset : offset + SAMPLES * 2]
        else:
            data = self._silence
        frame = AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(data)
        frame.pts = self._pts
        frame.sample_rate = RATE
        frame.time_base = fractions.Fraction(1, RATE)
        self.frames_sent += 1
        return frame


class AudioSink:
    """Reads the caller's audio track: counts frames and samples, tracks the loudest sample."""

    def __init__(self) -> None:
        self.frames = 0
        self.samples = 0
        self.peak = 0  # loudest absolute sample, 0..32768
        self.loud_frames = 0  # frames whose peak is above -40 dBFS
        self._task: asyncio.Task[None] | None = None

    @property
    def seconds(self) -> float:
        return self.samples / RATE

    def consume(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.ensure_future(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame: Any = await track.recv()
                self.frames += 1
                self.samples += frame.samples
                peak = _peak(frame)
                self.peak = max(self.peak, peak)
                if peak > 327:
                    self.loud_frames += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _peak(frame: Any) -> int:
    if frame.format.name != "s16":
        return 0
    size = frame.samples * len(frame.layout.channels) * 2
    samples = array.array("h", bytes(frame.planes[0])[:size])
    return max((abs(s) for s in samples), default=0)
