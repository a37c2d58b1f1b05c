"""Speech to text: Whisper tiny.en through faster-whisper (CTranslate2, int8 on the CPU)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import WhisperModel

RATE = 16000
# What Whisper writes for noise it cannot read ("[BLANK_AUDIO]", "(music)"): not words.
_NOISE = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*")
_WORD = re.compile(r"\w")


class Transcriber:
    def __init__(self, model: WhisperModel) -> None:
        self._model = model

    @classmethod
    def load(cls, path: Path, *, threads: int) -> Transcriber:
        # A path, never a model name: faster-whisper then reads the folder and downloads nothing.
        return cls(WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads))

    def transcribe(self, samples: np.ndarray[Any, np.dtype[np.float32]]) -> str:
        """The words in 16 kHz mono float samples ("" when there are none)."""
        segments, _ = self._model.transcribe(
            samples,
            language="en",
            beam_size=1,  # greedy: about twice as fast, and as good on short utterances
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,  # the call's own VAD has already cut the utterance
        )
        text = " ".join(s.text.strip() for s in segments)
        text = " ".join(_NOISE.sub(" ", text).split())
        return text if _WORD.search(text) else ""


def pcm16_to_float(pcm: bytes) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
