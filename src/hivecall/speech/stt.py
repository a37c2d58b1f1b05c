"""Speech to text: Whisper tiny.en through faster-whisper (CTranslate2, int8 on the CPU).

Whisper's encoder is built for 30-second windows, and faster-whisper pads every utterance to
one: about 450 ms of encoder work on 2 cores for a 2-second request, most of a local call's
wait. CTranslate2 encodes shorter windows too, so an utterance is encoded in a window of its own
length plus 3 s of padding (at least 10 s), which is 3-4x faster with the same words on our
test sentences; the silence after the speech is what tells Whisper the speech is over, and
without it the decoder loops. Utterances of 1.5 s or less ("stop", "yes", "cancel that") keep
the full window: on 40 renderings of "Stop." by Piper the 10 s window heard "stop" 35 times
("start", "dot", loops), 20 s 39 times, 30 s all 40, at about 390 ms against 110 ms; these are
the words a misreading costs most (a "stop" not heard lets the agent go on). When the short
decode looks like a loop (far more tokens than speech has, or a run of tokens said twice) the
utterance is transcribed again the standard way.
This uses faster-whisper's parts (`feature_extractor`, `model`, `hf_tokenizer`), hence the exact
pin in the `local` extra.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_ctranslate2_storage

RATE = 16000
FRAMES_PER_SECOND = 100  # Whisper's mel frames
FULL_WINDOW = 3000  # 30 s
MIN_WINDOW = 1000  # 10 s
FULL_WINDOW_BELOW = 150  # 1.5 s: single words, which a cut window misreads
PADDING = 300  # 3 s of silence after the speech
# What Whisper writes for noise it cannot read ("[BLANK_AUDIO]", "(music)"): not words.
_NOISE = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*")
_WORD = re.compile(r"\w")

Samples = np.ndarray[Any, np.dtype[np.float32]]


class Transcriber:
    def __init__(self, model: WhisperModel) -> None:
        self._model = model
        self._tokenizer = Tokenizer(
            model.hf_tokenizer,
            multilingual=model.model.is_multilingual,
            task="transcribe",
            language="en",
        )
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self.fallbacks = 0  # short decodes that had to be redone the standard way

    @classmethod
    def load(cls, path: Path, *, threads: int) -> Transcriber:
        # A path, never a model name: faster-whisper then reads the folder and downloads nothing.
        return cls(WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads))

    def transcribe(self, samples: Samples) -> str:
        """The words in 16 kHz mono float samples ("" when there are none)."""
        text = self._short(samples)
        if text is None:
            self.fallbacks += 1
            text = self._standard(samples)
        text = " ".join(_NOISE.sub(" ", text).split())
        return text if _WORD.search(text) else ""

    def _short(self, samples: Samples) -> str | None:
        features = self._model.feature_extractor(samples)
        frames = features.shape[-1]
        window = FULL_WINDOW if frames <= FULL_WINDOW_BELOW else max(MIN_WINDOW, frames + PADDING)
        if window > FULL_WINDOW:
            return None
        padded = np.zeros((1, features.shape[0], window), dtype=np.float32)
        padded[0, :, :frames] = features
        encoded = self._model.model.encode(get_ctranslate2_storage(padded), to_cpu=False)
        # English speech runs at 3-5 tokens a second; far more than that is a decoder looping.
        most = 6 * frames // FRAMES_PER_SECOND + 8
        result = self._model.model.generate(
            encoded,
            [self._prompt],
            beam_size=1,
            # Generous: CTranslate2 counts this limit its own way (it stops Whisper near half
            # of it), and `most` below is what decides.
            max_length=min(448, 4 * most),
            suppress_blank=True,
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
        if len(tokens) > most or _repeats(tokens):
            return None
        return str(self._tokenizer.decode(tokens)).strip()

    def _standard(self, samples: Samples) -> str:
        segments, _ = self._model.transcribe(
            samples,
            language="en",
            beam_size=1,  # greedy: about twice as fast, and as good on short utterances
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,  # the call's own VAD has already cut the utterance
        )
        return " ".join(s.text.strip() for s in segments)


def _repeats(tokens: list[int], n: int = 4) -> bool:
    """True when some run of `n` tokens occurs twice, or the text ends by starting over: the
    marks of a looping decoder (a false alarm only costs the standard decode)."""
    if any(tokens[-k:] == tokens[:k] for k in range(2, len(tokens) // 2 + 1)):
        return True
    seen: set[tuple[int, ...]] = set()
    for i in range(len(tokens) - n + 1):
        gram = tuple(tokens[i : i + n])
        if gram in seen:
            return True
        seen.add(gram)
    return False


def pcm16_to_float(pcm: bytes) -> Samples:
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
