"""The call's audio in both directions, as aiortc sees it.

`SpeechTrack` is what the hub sends: the agent's voice when there is some, silence otherwise,
paced in real time in 20 ms frames. `read_microphone` turns the caller's decoded Opus frames into
the 16 kHz mono 20 ms frames the endpointer wants.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler

from hivecall.speech.tts import RATE
from hivecall.speech.vad import FRAME_BYTES
from hivecall.speech.vad import RATE as VAD_RATE

SAMPLES = RATE // 50  # 20 ms
FRAME = SAMPLES * 2  # bytes of 16-bit mono
TIME_BASE = fractions.Fraction(1, RATE)


class SpeechTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        self._silence = bytes(FRAME)
        self._start: float | None = None
        self._pts = 0
        self._was_playing = False
        # Called with time.monotonic() when the first frame of a stretch of speech leaves.
        self.on_first_audio: Callable[[float], None] | None = None

    @property
    def playing(self) -> bool:
        return bool(self._pending)

    @property
    def queued_seconds(self) -> float:
        return len(self._pending) / 2 / RATE

    def play(self, pcm: bytes) -> None:
        """Queue 48 kHz mono 16-bit audio after what is already queued."""
        self._pending += pcm

    def flush(self) -> bool:
        """Drop everything queued (barge-in); True if something was still to be heard."""
        had = bool(self._pending)
        self._pending.clear()
        return had

    def next_frame(self) -> bytes:
        """The next 20 ms of sound (what `recv` sends, without the pacing)."""
        if not self._pending:
            self._was_playing = False
            return self._silence
        chunk = bytes(self._pending[:FRAME])
        del self._pending[:FRAME]
        if not self._was_playing:
            self._was_playing = True
            if self.on_first_audio is not None:
                self.on_first_audio(time.monotonic())
        return chunk.ljust(FRAME, b"\0")

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += SAMPLES
            delay = self._start + self._pts / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        frame = AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(self.next_frame())
        frame.pts = self._pts
        frame.sample_rate = RATE
        frame.time_base = TIME_BASE
        return frame


async def read_microphone(track: MediaStreamTrack, feed: Callable[[bytes], None]) -> None:
    """Feed the caller's audio to `feed` in 20 ms frames of 16 kHz mono until the track ends."""
    resampler = AudioResampler(format="s16", layout="mono", rate=VAD_RATE)
    pending = bytearray()
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        for out in resampler.resample(frame):  # type: ignore[arg-type]
            pending += out.to_ndarray().tobytes()
        while len(pending) >= FRAME_BYTES:
            feed(bytes(pending[:FRAME_BYTES]))
            del pending[:FRAME_BYTES]
