"""Voice satellites: the hub's ears and mouth for HiveMind clients that send audio.

What upstream's satellites send and expect (hivemind-core's binary dispatch, the
hivemind-audio-binary-protocol plugin and hivemind-mic-satellite):
- a `bin` frame carries headerless 16-bit mono PCM; its metadata may name `sample_rate`
  (default 16000), `sample_width` (default 2) and `lang`;
- RAW_AUDIO is a microphone stream in chunks: the hub cuts it into utterances with its VAD,
  tells the satellite `recognizer_loop:record_begin` / `record_end`, and runs each utterance;
- STT_AUDIO_HANDLE is one utterance: transcribed and run as a turn;
- STT_AUDIO_TRANSCRIBE is one utterance to transcribe only: answered with a bus
  `recognizer_loop:transcribe.response` {transcriptions: [[text, confidence]], lang};
- TTS_AUDIO goes to the satellite: a WAV file, metadata {lang, file_name, utterance}. A
  satellite asks for it with a bus `speak:synth` {utterance} when it hears `speak`; for a turn
  that came as audio the hub sends it unasked (and then skips the satellite's own request for
  the same words, so nothing is played twice).

The speech models (the `local` extra) load lazily, once per process, and run in worker threads
of their own (one for STT, one for TTS): the event loop never waits on them.
"""

from __future__ import annotations

import hashlib
import io
import wave
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hivecall.hivemind_protocol import binary
from hivecall.hivemind_protocol.wire import MsgType, WireError
from hivecall.speech import workers

if TYPE_CHECKING:
    from hivecall.speech.vad import Endpointer

RATE = 16000  # what the hub's STT and VAD take
TTS_RATE = 22050  # the WAV sent back: Piper's own rate, half the bytes of the call track's 48 kHz
MIN_RATE, MAX_RATE = 8000, 48000
SATELLITE_SILENCE_MS = 600  # silence that ends a satellite's utterance


class AudioRefused(ValueError):
    """Audio the hub will not take (wrong format, too long): the client is told why."""


def _problem() -> str | None:
    from hivecall.speech import models

    reason = models.problem()
    return f"satellite audio is not available on this hub: {reason}" if reason else None


def audio_format(metadata: dict[str, Any]) -> tuple[int, str | None]:
    """(sample rate, language) a bin frame's metadata names; AudioRefused when unusable."""
    rate = metadata.get("sample_rate", RATE)
    width = metadata.get("sample_width", 2)
    lang = metadata.get("lang")
    if not isinstance(rate, int) or isinstance(rate, bool) or not MIN_RATE <= rate <= MAX_RATE:
        raise AudioRefused(f"sample_rate must be a whole number from {MIN_RATE} to {MAX_RATE}")
    if width != 2:
        raise AudioRefused("audio must be 16-bit PCM (sample_width 2)")
    return rate, lang if isinstance(lang, str) and 0 < len(lang) <= 16 else None


def pcm_of(payload: bytes, rate: int) -> tuple[bytes, int]:
    """Headerless PCM and its rate; a WAV file (some senders send one) is unwrapped."""
    if payload[:4] == b"RIFF" and payload[8:12] == b"WAVE":
        try:
            with wave.open(io.BytesIO(payload)) as w:
                if w.getsampwidth() != 2 or w.getnchannels() != 1:
                    raise AudioRefused("a WAV payload must be 16-bit mono")
                rate = w.getframerate()
                if not MIN_RATE <= rate <= MAX_RATE:
                    raise AudioRefused("the WAV payload's sample rate is out of range")
                return w.readframes(w.getnframes()), rate
        except (wave.Error, EOFError) as e:
            raise AudioRefused("the WAV payload is malformed") from e
    if len(payload) % 2:
        payload = payload[:-1]
    return payload, rate


def wav(pcm: bytes, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def tts_frame(audio_wav: bytes, utterance: str, lang: str) -> bytes:
    """The binarized TTS_AUDIO frame (metadata fits upstream's 255-byte limit: a long
    utterance is shortened there; the whole text travels in `speak`)."""
    name = hashlib.sha256(utterance.encode()).hexdigest()[:32] + ".wav"
    text = utterance
    while True:
        meta = {"lang": lang, "file_name": name, "utterance": text}
        try:
            return binary.encode(
                MsgType.BIN, audio_wav, metadata=meta, bin_type=binary.BinType.TTS_AUDIO
            )
        except WireError:
            if not text:
                raise
            text = text[: len(text) * 3 // 4]


class Speech:
    """Transcribe and synthesize for satellites, off the event loop. `problem` says why the
    models cannot run here (None when they can); tests may inject another."""

    def __init__(self, problem: Callable[[], str | None] = _problem) -> None:
        self.problem = problem

    async def transcribe(self, pcm: bytes, rate: int) -> str:
        def work() -> str:
            import numpy as np

            from hivecall.speech.models import shared
            from hivecall.speech.stt import pcm16_to_float
            from hivecall.speech.tts import resample

            audio = pcm
            if rate != RATE:
                audio = resample(np.frombuffer(pcm, dtype=np.int16), rate, RATE)
            return shared().transcriber().transcribe(pcm16_to_float(audio))

        return await workers.recognise(work)

    async def synthesize(self, text: str) -> bytes:
        """`text` spoken, as a WAV file (b"" when there is nothing to say)."""

        def work() -> bytes:
            import numpy as np

            from hivecall.speech.models import shared
            from hivecall.speech.tts import RATE as TRACK_RATE
            from hivecall.speech.tts import resample

            pcm = shared().synthesizer().pcm(text)
            if not pcm:
                return b""
            return wav(resample(np.frombuffer(pcm, dtype=np.int16), TRACK_RATE, TTS_RATE), TTS_RATE)

        return await workers.synthesise(work)


class Stream:
    """One connection's RAW_AUDIO: chunks in, ("start" | "end" | "drop", audio) events out."""

    __slots__ = ("_endpointer", "_pending")

    def __init__(self) -> None:
        from hivecall.speech.vad import Endpointer

        self._endpointer: Endpointer = Endpointer(silence_ms=SATELLITE_SILENCE_MS)
        self._pending = b""

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        from hivecall.speech.vad import FRAME_BYTES

        data = self._pending + chunk
        out: list[tuple[str, bytes]] = []
        whole = len(data) - len(data) % FRAME_BYTES
        for i in range(0, whole, FRAME_BYTES):
            for event in self._endpointer.feed(data[i : i + FRAME_BYTES]):
                if event.kind in ("start", "end", "drop"):
                    out.append((event.kind, event.audio))
        self._pending = data[whole:]
        return out
