"""Whisper on a window cut to the utterance gives the words the standard 30 s window gives."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from hivecall.speech import stt
from hivecall.speech.models import shared
from hivecall.speech.stt import pcm16_to_float
from hivecall.speech.tts import RATE as TTS_RATE
from hivecall.speech.tts import resample
from tests.local.speech import overlap, said, silence, words

SENTENCES = [
    "What is the status of the build?",
    "Stop.",
    "Could you check whether the nightly backup on the file server finished, "
    "and tell me how big it was?",
]


@pytest.mark.parametrize("text", SENTENCES)
def test_the_short_window_hears_what_the_standard_one_hears(text: str) -> None:
    transcriber = shared().transcriber()
    samples = pcm16_to_float(said(text) + silence(0.2))
    short = transcriber.transcribe(samples)
    assert words(short) == words(transcriber._standard(samples))
    assert overlap(short, text) >= 0.8


@pytest.mark.parametrize("text", ["Stop.", "Yes."])
def test_single_words_are_heard_in_every_rendering(text: str) -> None:
    # Piper says a word differently each time; a cut window misread about one "stop" in eight.
    transcriber = shared().transcriber()
    synthesizer = shared().synthesizer()
    heard = []
    for _ in range(12):
        pcm = resample(np.frombuffer(synthesizer.pcm(text), dtype=np.int16), TTS_RATE, stt.RATE)
        heard.append(words(transcriber.transcribe(pcm16_to_float(silence(0.3) + pcm))))
    assert heard == [words(text)] * 12


def test_the_marks_of_a_loop() -> None:
    sentence = [10, 11, 12, 13, 14, 15, 16]
    assert not stt._repeats(sentence)
    assert stt._repeats([*sentence, *sentence])  # said twice
    assert stt._repeats([*sentence, 10, 11])  # starting over at its end
    assert not stt._repeats([10, 11, 12, 10, 13, 14, 15])  # one word again is speech


class Looping:
    """Whisper's CTranslate2 model, except that the short decode says its sentence twice
    (faster-whisper's own decode, which asks for scores, is left alone)."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, *args: Any, **kwargs: Any) -> list[Any]:
        if kwargs.get("return_scores"):
            return list(self._model.generate(*args, **kwargs))
        real = self._model.generate(*args, **kwargs)[0]
        tokens = real.sequences_ids[0]
        return [SimpleNamespace(sequences_ids=[tokens + tokens])]


def test_a_looping_decode_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    transcriber = shared().transcriber()
    samples = pcm16_to_float(said(SENTENCES[0]) + silence(0.2))
    monkeypatch.setattr(transcriber._model, "model", Looping(transcriber._model.model))
    before = transcriber.fallbacks
    assert transcriber._short(samples) is None  # the loop is seen
    text = transcriber.transcribe(samples)
    assert transcriber.fallbacks == before + 1
    assert words(text) == words(transcriber._standard(samples))  # the standard path's words
    assert len(words(text)) <= len(words(SENTENCES[0])) + 1  # no looping output got through


def test_utterances_longer_than_the_window_use_the_standard_way() -> None:
    transcriber = shared().transcriber()
    samples = pcm16_to_float(silence(28.0) + said("Hello there."))
    assert transcriber._short(samples) is None
    assert overlap(transcriber.transcribe(samples), "hello there") == 1.0
