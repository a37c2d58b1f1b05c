"""The websocket form's ears and mouth: the hub's own offline speech pieces on the wire's audio.

The GA API's `audio/pcm` is 24 kHz mono pcm16 both ways. Hearing resamples it to 16 kHz for
`hivecall.speech.vad.Endpointer` (webrtcvad, 20 ms frames) and transcribes each utterance with
Whisper tiny.en; speaking is Piper, 48 kHz resampled to 24 kHz. The models load on first use
(about 2 s each, once per process) and run on hivecall's own speech threads, off the loop.
Whisper and Piper are imported only when first used: a stand-in that neither hears nor speaks
does not pay for them.
"""

from __future__ import annotations

import numpy as np
from av import AudioFrame, AudioResampler

from hivecall.speech import vad, workers
from hivecall.speech.models import shared

RATE = 24000  # the wire's rate, in and out
BYTES_PER_MS = RATE * 2 // 1000  # 48


class Ear:
    """The input audio buffer as server VAD hears it: 24 kHz pcm16 in, utterances out.

    A resampler that keeps its state between appends (the client sends 20-100 ms at a time)
    feeds the endpointer whole 20 ms frames; `vad.Event.at` is then the stream time in seconds.
    """

    def __init__(self, *, silence_ms: int = 500, preroll_ms: int = 300) -> None:
        self.silence_ms, self.preroll_ms = silence_ms, preroll_ms
        self.endpointer = vad.Endpointer(silence_ms=silence_ms, preroll_ms=preroll_ms)
        self._resampler = AudioResampler(format="s16", layout="mono", rate=vad.RATE)
        self._pending = b""  # 16 kHz audio short of a whole frame
        self.buffer = b""  # 16 kHz audio since the last commit or clear (manual turns)
        self._base_ms = 0  # stream time heard before the current endpointer

    def feed(self, pcm24: bytes) -> list[vad.Event]:
        pcm24 = pcm24[: len(pcm24) // 2 * 2]
        if not pcm24:
            return []
        frame = AudioFrame.from_ndarray(
            np.frombuffer(pcm24, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        pcm16 = b"".join(f.to_ndarray().tobytes() for f in self._resampler.resample(frame))
        self.buffer += pcm16
        self._pending += pcm16
        events: list[vad.Event] = []
        while len(self._pending) >= vad.FRAME_BYTES:
            chunk, self._pending = (
                self._pending[: vad.FRAME_BYTES],
                self._pending[vad.FRAME_BYTES :],
            )
            events += self.endpointer.feed(chunk)
        return events

    def ms_at(self, event: vad.Event) -> int:
        """The event's time in the session's input audio, in ms (as audio_*_ms count)."""
        return self._base_ms + round(event.at * 1000)

    def take(self) -> bytes:
        """The buffer's audio (16 kHz), emptied: what a manual commit turns into an item."""
        audio, self.buffer = self.buffer, b""
        return audio

    def clear(self) -> None:
        """input_audio_buffer.clear: forget the buffer and any utterance in progress."""
        self.buffer = self._pending = b""
        self._base_ms += self.endpointer.frames_seen * vad.FRAME_MS
        self.endpointer = vad.Endpointer(silence_ms=self.silence_ms, preroll_ms=self.preroll_ms)


async def transcribe(pcm16k: bytes) -> str:
    """What Whisper hears in 16 kHz pcm16 ("" for none), on the hub's recognition thread."""
    from hivecall.speech.stt import pcm16_to_float

    return await workers.recognise(
        lambda: shared().transcriber().transcribe(pcm16_to_float(pcm16k))
    )


async def synthesize(text: str) -> bytes:
    """`text` spoken by Piper as 24 kHz pcm16, on the hub's synthesis thread."""

    from hivecall.speech.tts import RATE as TTS_RATE
    from hivecall.speech.tts import resample

    def work() -> bytes:
        pcm = shared().synthesizer().pcm(text)
        return resample(np.frombuffer(pcm, dtype=np.int16), TTS_RATE, RATE) if pcm else b""

    return await workers.synthesise(work)


def audio_chunks(pcm: bytes, chunk_ms: int = 100) -> list[bytes]:
    size = chunk_ms * BYTES_PER_MS
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]
