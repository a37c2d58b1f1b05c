"""Text to speech: Piper with the Joe (en_US, medium) voice, resampled for the call's track.

Answers are spoken clause by clause, so the first audio leaves while the rest is still being
made: the first clause is cut short (at a comma) because its length is the wait the user hears.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from av import AudioFrame, AudioResampler
from piper import PiperVoice, SynthesisConfig

RATE = 48000  # the call track's rate (Opus's native one)

_SENTENCE = re.compile(r"(?<=[.!?…])\s+")
_CLAUSE = re.compile(r"(?<=[,;:])\s+")
FIRST_CLAUSE_CHARS = 60  # longer first sentences are cut at a comma when they have one


def clauses(text: str) -> list[str]:
    """The pieces an answer is spoken in: sentences, the first one cut at its first comma when
    it is long."""
    sentences = [s.strip() for s in _SENTENCE.split(" ".join(text.split())) if s.strip()]
    if sentences and len(sentences[0]) > FIRST_CLAUSE_CHARS:
        head, *rest = _CLAUSE.split(sentences[0], maxsplit=1)
        sentences[:1] = [head, *rest]
    return sentences


class Synthesizer:
    def __init__(self, voice: PiperVoice) -> None:
        self._voice = voice
        self.source_rate: int = voice.config.sample_rate

    @classmethod
    def load(cls, path: Path) -> Synthesizer:
        return cls(PiperVoice.load(str(path)))

    def pcm(self, text: str, config: SynthesisConfig | None = None) -> bytes:
        """One clause as 48 kHz mono 16-bit PCM (`config`: Piper's, e.g. its noise scales)."""
        chunks = [c.audio_int16_array for c in self._voice.synthesize(text, config)]
        if not chunks:
            return b""
        return resample(np.concatenate(chunks), self.source_rate, RATE)

    def speak(self, text: str) -> Iterator[tuple[str, bytes]]:
        """(clause, its audio) for each clause of `text`, made one at a time."""
        for clause in clauses(text):
            if audio := self.pcm(clause):
                yield clause, audio


def resample(samples: np.ndarray[Any, Any], source: int, target: int) -> bytes:
    """Mono int16 samples from one rate to another (FFmpeg's resampler, through PyAV)."""
    frame = AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = source
    resampler = AudioResampler(format="s16", layout="mono", rate=target)
    out = [f.to_ndarray().tobytes() for f in resampler.resample(frame)]
    out += [f.to_ndarray().tobytes() for f in resampler.resample(None)]
    return b"".join(out)
